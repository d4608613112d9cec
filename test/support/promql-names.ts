/**
 * The metric names a PromQL expression selects, without a PromQL parser:
 * strings, label matchers, range and offset durations, and grouping clauses
 * are removed first; what is left that is an identifier not followed by `(`
 * (a function or aggregation) and not a keyword is a metric name. Enough for
 * the expressions this project writes; `promtool check rules` parses them for
 * real (test/support/promtool.ts: checkExpressions).
 */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan']);

export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call || KEYWORDS.has(name!.toLowerCase())) continue;
    names.add(name!);
  }
  return [...names].sort();
}

/** The names Grafana's own macros stand for, replaced so promtool can parse a panel's query. */
export const withoutGrafanaMacros = (expr: string) => expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '1m').replaceAll('$__range', '1h');
