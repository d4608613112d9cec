import Table from 'cli-table3';
import type { Status } from './verdict.js';

/**
 * Colour only on a terminal, and never when NO_COLOR is set to anything
 * (https://no-color.org). cli-table3 colours through @colors/colors, which
 * does not look at whether stdout is a terminal, so pipes and files got
 * escape codes: every table here sets its style from this instead.
 */
export function colourOn(stream: { isTTY?: boolean } = process.stdout, env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR ?? '') === '';
}

const SGR = { bold: 1, red: 31, green: 32, yellow: 33, grey: 90 } as const;
const paint = (code: number, text: string, colour: boolean) => (colour ? `\u001b[${code}m${text}\u001b[0m` : text);

/** PASS green, FAIL red, NOT CHECKED yellow; plain text off a terminal. */
export function statusText(status: Status, colour = colourOn()): string {
  return paint(status === 'PASS' ? SGR.green : status === 'FAIL' ? SGR.red : SGR.yellow, status, colour);
}

/** The verdict line's leading status word coloured like statusText. */
export function verdictText(line: string, colour = colourOn()): string {
  const match = /^(PASS|FAIL|NOT CHECKED)(.*)$/s.exec(line);
  return match ? `${statusText(match[1] as Status, colour)}${match[2]}` : line;
}

/**
 * A cli-table3 table: headers bold (not cli-table3's default red, which reads
 * as an error) and grey borders on a terminal; no escape codes elsewhere.
 */
export function newTable(head: string[], options: { colWidths?: (number | null)[]; colour?: boolean } = {}): Table.Table {
  const { colWidths, colour = colourOn() } = options;
  return new Table({
    head,
    style: colour ? { head: ['bold'], border: ['grey'] } : { head: [], border: [] },
    ...(colWidths ? { colWidths, wordWrap: true } : {}),
  });
}
