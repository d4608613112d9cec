import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';
import { fromRoot, ROOT } from '../../formation/paths.js';

// The docs promise links, make targets and environment variables; this file
// holds them to the repository. What counts as "named by the docs":
// - a link: every relative `[text](target)` / `![alt](target)` outside code,
//   with its `#anchor` checked against GitHub's heading slugs;
// - a make target: the first word after `make` (skipping NAME=value) inside
//   inline code or a code block;
// - an environment variable: inline code that is exactly an UPPER_SNAKE name
//   with an underscore (`LB_PORT`), a `NAME=value` or `$NAME_WITH_UNDERSCORE`
//   inside code, or any name in the first column of a table headed
//   "variable". Such a name must be read by the code: an identifier or string
//   in the TypeScript of web/, admin/, formation/, loadtest/ (comments do not
//   count), or a non-comment word of the Makefile, docker-compose*.yml,
//   lb/ or redis/. Prose words and Redis commands (`INCR`) do not count.
// And the other way round: every key of a config schema (z.object) is in the
// table of docs/configuration.md, and every Makefile target with a `## help`
// in the table of docs/operations.md. The first block below shows that each
// check names a made-up target, variable, file and anchor.

// Parsing every TypeScript file of the code takes about a second, several on a
// busy machine: the tests that read the code get more than vitest's 5 s.
const READS_CODE = { timeout: 30_000 };

const DOCS = ['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md', 'loadtest/README.md', ...mdIn('docs')];

/** Variables other programs read, so no code of ours does: name -> who reads it. */
const READ_BY_OTHER_PROGRAMS: Record<string, string> = {
  DOCKER_HOST: 'the docker client (and the Docker test tier through it)',
};

function mdIn(dir: string): string[] {
  return readdirSync(fromRoot(dir))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `${dir}/${name}`);
}

// ---------------------------------------------------------------- markdown

interface Markdown {
  /** Text outside code blocks; inline code replaced by its content (headings, link text). */
  prose: string;
  /** Text outside code blocks; inline code blanked out (where links are looked for). */
  proseWithoutCode: string;
  spans: string[];
  blocks: string[];
  /** Cells of the first column of tables whose header's first cell is "variable", raw. */
  variableCells: string[];
}

const SPAN = /(`+)([\s\S]*?[^`])\1(?!`)/g;

export function parseMarkdown(text: string): Markdown {
  const outside: string[] = [];
  const blocks: string[] = [];
  let fence: string | undefined;
  let block: string[] = [];
  for (const line of text.split('\n')) {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && marker) {
      fence = marker;
      block = [];
    } else if (fence !== undefined && marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length && line.trim() === marker) {
      blocks.push(block.join('\n'));
      fence = undefined;
    } else if (fence !== undefined) block.push(line);
    else {
      outside.push(line);
      continue;
    }
    outside.push('');
  }
  if (fence !== undefined) throw new Error('a code block is never closed');
  const raw = outside.join('\n');
  const spans = [...raw.matchAll(SPAN)].map((m) => m[2]!.trim());
  const variableCells: string[] = [];
  let inVariableTable = false;
  for (const line of outside) {
    if (!line.startsWith('|')) {
      inVariableTable = false;
      continue;
    }
    const first = splitRow(line)[0] ?? '';
    if (/^variable$/i.test(first)) inVariableTable = true;
    else if (inVariableTable && !/^[-: ]+$/.test(first)) variableCells.push(first);
  }
  return {
    prose: raw.replace(SPAN, (_m, _ticks, content: string) => content),
    proseWithoutCode: raw.replace(SPAN, (m) => ' '.repeat(m.length)),
    spans,
    blocks,
    variableCells,
  };
}

/** A table row's cells; a `|` inside inline code does not split. */
function splitRow(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let ticks = false;
  for (const ch of line.trim().replace(/^\||\|$/g, '')) {
    if (ch === '`') ticks = !ticks;
    if (ch === '|' && !ticks) {
      cells.push(cell.trim());
      cell = '';
    } else cell += ch;
  }
  cells.push(cell.trim());
  return cells;
}

/** GitHub's heading anchors (github-slugger): lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function headingSlugs(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const slugs = new Set<string>();
  for (const line of parseMarkdown(markdown).prose.split('\n')) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const text = heading
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]+>/g, '')
      .replace(/[*]/g, '');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    slugs.add(n === 0 ? base : `${base}-${n}`);
  }
  return slugs;
}

// ---------------------------------------------------------------- checks

interface Link {
  file: string;
  target: string;
}

export function linksIn(file: string, markdown: string): Link[] {
  const { proseWithoutCode } = parseMarkdown(markdown);
  const inline = [...proseWithoutCode.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
  const definitions = [...proseWithoutCode.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => m[1]!);
  return [...inline, ...definitions].map((target) => ({ file, target }));
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target);

/** What is wrong with a relative link, or undefined. `read` gives a repository file's text. */
export function brokenLink({ file, target }: Link, read: (repoPath: string) => string | undefined, exists: (repoPath: string) => boolean) {
  if (isExternal(target)) return undefined;
  const [rawPath = '', anchor] = target.split('#', 2) as [string, string | undefined];
  if (rawPath.startsWith('/')) return `${file}: ${target}: a path from the site root does not resolve on GitHub's file view; use a relative one`;
  const repoPath = rawPath === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), decodeURI(rawPath)));
  if (repoPath.startsWith('..')) return `${file}: ${target} points outside the repository`;
  if (!exists(repoPath)) return `${file}: ${target}: no file ${repoPath}`;
  if (anchor === undefined) return undefined;
  if (!repoPath.endsWith('.md')) return `${file}: ${target}: an anchor into a file that is not markdown`;
  const slugs = headingSlugs(read(repoPath) ?? '');
  if (!slugs.has(decodeURIComponent(anchor))) return `${file}: ${target}: no heading #${anchor} in ${repoPath}`;
  return undefined;
}

/** Make targets the docs name, and `make ...` uses the check cannot read (so a typo cannot hide). */
export function makeTargetsIn(markdown: string): { targets: Set<string>; unreadable: string[] } {
  const { spans, blocks } = parseMarkdown(markdown);
  const targets = new Set<string>();
  const unreadable: string[] = [];
  for (const code of [...spans, ...blocks]) {
    for (const m of code.matchAll(/(?<![\w./-])make(?=[ \t]|$)([^\n#;&|)]*)/gm)) {
      const target = m[1]!.trim().split(/\s+/).filter(Boolean).find((word) => !word.includes('='));
      if (target === undefined) continue;
      if (/^[a-z][a-z0-9-]*$/.test(target)) targets.add(target);
      else unreadable.push(`make${m[1]}`);
    }
  }
  return { targets, unreadable };
}

const NAME = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/;
const SNAKE_NAME = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;

export function variablesIn(markdown: string): Set<string> {
  const { spans, blocks, variableCells } = parseMarkdown(markdown);
  const names = new Set<string>();
  for (const span of spans) if (SNAKE_NAME.test(span)) names.add(span);
  for (const code of [...spans, ...blocks]) {
    for (const m of code.matchAll(/(?<![\w.\-/$])([A-Z][A-Z0-9_]*)=/g)) if (NAME.test(m[1]!)) names.add(m[1]!);
    for (const m of code.matchAll(/\$\{?([A-Z][A-Z0-9_]*)/g)) if (SNAKE_NAME.test(m[1]!)) names.add(m[1]!);
  }
  for (const cell of variableCells) {
    for (const m of cell.matchAll(SPAN)) if (NAME.test(m[2]!.trim())) names.add(m[2]!.trim());
  }
  return names;
}

// ---------------------------------------------------------------- the repository

const readRepo = (repoPath: string) => (existsSync(fromRoot(repoPath)) ? readFileSync(fromRoot(repoPath), 'utf8') : undefined);
const existsInRepo = (repoPath: string) => existsSync(fromRoot(repoPath));

/** The Makefile's rule names (not variables, not special targets such as .PHONY). */
export function makefileTargets(makefile: string): Set<string> {
  const targets = new Set<string>();
  for (const line of makefile.split('\n')) {
    const m = /^([A-Za-z0-9][A-Za-z0-9_-]*(?:[ \t]+[A-Za-z0-9][A-Za-z0-9_-]*)*)[ \t]*:(?![=:])/.exec(line);
    if (m) for (const name of m[1]!.split(/\s+/)) targets.add(name);
  }
  return targets;
}

function filesUnder(dir: string, keep: (file: string) => boolean): string[] {
  if (!existsSync(fromRoot(dir))) return [];
  return readdirSync(fromRoot(dir), { recursive: true, encoding: 'utf8' })
    .map((rel) => `${dir}/${rel}`)
    .filter((file) => !file.includes('/results/') && statSync(fromRoot(file)).isFile() && keep(file));
}

/** Identifiers, strings and template text of a TypeScript file: its code without comments. */
function typescriptWords(file: string, text: string): string {
  const parts: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isIdentifier(node) || ts.isLiteralExpression(node) || ts.isTemplateLiteralToken(node)) parts.push(node.text);
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS));
  return parts.join('\n');
}

/** A shell, make, YAML or nginx file without its `#` comments (a `#` inside quotes or a word stays). */
const withoutHashComments = (text: string) => text.replace(/(^|[\s@])#.*$/gm, '$1');

/** The text in which a variable must appear for the code to read it (parsed once). */
let parsedCode: string | undefined;
function codeText(): string {
  parsedCode ??= readCodeText();
  return parsedCode;
}

function readCodeText(): string {
  const tsFiles = ['web', 'admin', 'formation', 'loadtest'].flatMap((dir) => filesUnder(dir, (f) => f.endsWith('.ts')));
  const other = [
    ...filesUnder('loadtest', (f) => f.endsWith('.sh')),
    ...filesUnder('lb', () => true),
    ...filesUnder('redis', () => true),
    ...readdirSync(ROOT).filter((f) => /^docker-compose.*\.ya?ml$/.test(f)),
    'Makefile',
  ];
  return [
    ...tsFiles.map((file) => typescriptWords(file, readRepo(file)!)),
    ...other.map((file) => withoutHashComments(readRepo(file)!)),
  ].join('\n');
}

const readBy = (code: string) => (name: string) => new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`).test(code);

/** Every key of a `z.object({...})` in the non-test TypeScript of web/, admin/, formation/, loadtest/. */
function schemaVariables(): Set<string> {
  const names = new Set<string>();
  const files = ['web', 'admin', 'formation', 'loadtest'].flatMap((dir) => filesUnder(dir, (f) => f.endsWith('.ts') && !f.includes('/k6/')));
  for (const file of files) {
    const visit = (node: ts.Node) => {
      if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        node.expression.name.text === 'object' &&
        ts.isIdentifier(node.expression.expression) &&
        node.expression.expression.text === 'z'
      ) {
        const shape = node.arguments[0];
        if (shape && ts.isObjectLiteralExpression(shape)) {
          for (const property of shape.properties) {
            const name = property.name && (ts.isIdentifier(property.name) || ts.isStringLiteral(property.name)) ? property.name.text : '';
            if (NAME.test(name)) names.add(name);
          }
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(ts.createSourceFile(file, readRepo(file)!, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS));
  }
  return names;
}

const docs = DOCS.map((file) => ({ file, text: readRepo(file)! }));

// ---------------------------------------------------------------- the checker can fail

describe('the docs checker itself', () => {
  const sample = [
    '# A sample: does the checker catch what is wrong?',
    '## Real heading',
    'See [ok](#real-heading), [gone](#no-such-heading), [missing](no-such-file.md) and [web](https://example.com).',
    'Run `make up REPLICAS=6`, then `make frobnicate`; set `HEADCOUNT_MADE_UP`.',
    '```sh',
    'HEADCOUNT_ALSO_MADE_UP=1 make up',
    '```',
  ].join('\n');

  test('When GitHub slugs a heading, then code, punctuation and case go and repeats are numbered', () => {
    const slugs = headingSlugs('# Node.js too old\n## `error setting rlimit type 7`\n## 429s: from the *Docker* host?\n## Logs\n## Logs\n');

    expect([...slugs]).toEqual(['nodejs-too-old', 'error-setting-rlimit-type-7', '429s-from-the-docker-host', 'logs', 'logs-1']);
  });

  test('When a doc links to a file or heading that does not exist, then the check names each broken link, and only those', () => {
    const read = (p: string) => (p === 'sample.md' ? sample : undefined);

    const broken = linksIn('sample.md', sample)
      .map((link) => brokenLink(link, read, (p) => p === 'sample.md'))
      .filter(Boolean);

    expect(broken).toEqual(['sample.md: #no-such-heading: no heading #no-such-heading in sample.md', 'sample.md: no-such-file.md: no file no-such-file.md']);
  });

  test('When a doc names a make target the Makefile lacks, then the check names it', () => {
    const { targets } = makeTargetsIn(sample);

    expect([...targets].filter((t) => !makefileTargets(readRepo('Makefile')!).has(t))).toEqual(['frobnicate']);
  });

  test('When a doc names a variable no code reads, then the check names it', READS_CODE, () => {
    const named = variablesIn(sample);

    expect([...named].filter((name) => !readBy(codeText())(name)).sort()).toEqual(['HEADCOUNT_ALSO_MADE_UP', 'HEADCOUNT_MADE_UP']);
    expect(named.has('REPLICAS')).toBe(true);
  });
});

// ---------------------------------------------------------------- the docs

describe('the docs', () => {
  test('When a newcomer opens the README, then it is at most about 200 lines', () => {
    expect(readRepo('README.md')!.split('\n').length).toBeLessThanOrEqual(210);
  });

  test('When a page in docs/ opens, then its first line is a title that asks the question it answers', () => {
    const titles = mdIn('docs').map((file) => [file, readRepo(file)!.split('\n')[0]] as const);

    expect(titles.filter(([, first]) => !/^# .+\?$/.test(first ?? ''))).toEqual([]);
    expect(titles.length).toBeGreaterThanOrEqual(7);
  });

  test('When the docs link to a file, a folder or a heading, then it exists', () => {
    const links = docs.flatMap(({ file, text }) => linksIn(file, text));
    const relative = links.filter((link) => !isExternal(link.target));

    expect(relative.map((link) => brokenLink(link, readRepo, existsInRepo)).filter(Boolean)).toEqual([]);
    // A parser that found nothing would pass the line above: it must see the links there are.
    expect(relative.length).toBeGreaterThan(60);
    expect(relative.filter((link) => link.target.includes('#')).length).toBeGreaterThan(15);
  });

  test('When the README shows the live page, then the image is a small PNG', () => {
    const image = readFileSync(fromRoot('docs/images/live-page.png'));
    const readme = readRepo('README.md')!;

    expect(image.subarray(1, 4).toString('ascii')).toBe('PNG');
    expect(image.length).toBeLessThan(64_000);
    expect(readme).toMatch(/<img src="docs\/images\/live-page\.png" alt="[^"]+" width="\d+">/);
  });

  test('When the docs name a make target, then the Makefile has a rule for it', () => {
    const makefile = makefileTargets(readRepo('Makefile')!);
    const named = docs.map(({ file, text }) => ({ file, ...makeTargetsIn(text) }));

    const missing = named.flatMap(({ file, targets }) => [...targets].filter((t) => !makefile.has(t)).map((t) => `${file}: make ${t}`));
    expect(missing).toEqual([]);
    expect(named.flatMap(({ file, unreadable }) => unreadable.map((u) => `${file}: ${u}`))).toEqual([]);
    expect(new Set(named.flatMap(({ targets }) => [...targets])).size).toBeGreaterThan(15);
  });

  test('When the Makefile has a target with help, then docs/operations.md lists it', () => {
    const documented = makeTargetsIn(readRepo('docs/operations.md')!).targets;
    const withHelp = [...readRepo('Makefile')!.matchAll(/^([a-z][a-z0-9-]*):.*## /gm)].map((m) => m[1]!).filter((t) => t !== 'help');

    expect(withHelp.filter((target) => !documented.has(target))).toEqual([]);
    expect(withHelp.length).toBeGreaterThan(15);
  });

  test('When the docs name an environment variable, then the code reads it', READS_CODE, () => {
    const isRead = readBy(codeText());
    const named = docs.map(({ file, text }) => ({ file, names: [...variablesIn(text)] }));

    const unread = named.flatMap(({ file, names }) =>
      names.filter((name) => !(name in READ_BY_OTHER_PROGRAMS) && !isRead(name)).map((name) => `${file}: ${name}`),
    );
    expect(unread).toEqual([]);
    expect(new Set(named.flatMap(({ names }) => names)).size).toBeGreaterThan(30);
  });

  test('When a config schema reads a variable, then the table in docs/configuration.md lists it', READS_CODE, () => {
    const listed = new Set(parseMarkdown(readRepo('docs/configuration.md')!).variableCells.flatMap((cell) => [...cell.matchAll(SPAN)].map((m) => m[2]!.trim())));
    const read = schemaVariables();

    expect([...read].filter((name) => !listed.has(name))).toEqual([]);
    expect(read.size).toBeGreaterThan(20);
  });
});
