// The table a person reads at a glance: one row per group of identical findings with every place
// it was found, the cause and the fix under every row that is not ok. It fits the width it is given
// (wrapping at word boundaries); without a width (piped, no COLUMNS) nothing is wrapped. Its first
// column says the outcome in the summary's words (verified, failed, risky, unverified). No line
// can pass for a GitHub Actions workflow command, however an image or file is named.

import { oneLine } from '../../text.ts';
import type { Report } from '../report.ts';
import type { RunOutcome } from '../../policy/run.ts';
import { objectText, placeText, summaryLine } from '../report.ts';
import { notACommand } from './github.ts';

export interface TextOptions {
  color: boolean;
  /** terminal columns; undefined: do not wrap */
  width?: number | undefined;
  /** only what is not ok */
  quiet?: boolean;
}

const COLORS: Record<RunOutcome, string> = {
  verified: '\u001b[32m',
  risky: '\u001b[33m',
  unverified: '\u001b[33m',
  failed: '\u001b[31m',
};
const RESET = '\u001b[0m';
const DIM = '\u001b[2m';
const GAP = '  ';
/** the outcome column: as wide as its longest word, "unverified" */
const OUTCOME_W = 10;
/** below this, the places go under the row instead of into a column of their own */
const MIN_WHERE_WIDTH = 30;

const length = (s: string) => [...s].length;
const pad = (s: string, w: number) => s + ' '.repeat(Math.max(0, w - length(s)));

/** Words to lines of at most `width` characters; a word longer than a line is cut into pieces. */
export function wrap(text: string, width: number | undefined): string[] {
  if (width === undefined) return [text];
  const w = Math.max(1, width);
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ').filter(Boolean)) {
    const candidate = line ? `${line} ${word}` : word;
    if (length(candidate) <= w) {
      line = candidate;
      continue;
    }
    if (line) lines.push(line);
    let rest = [...word];
    while (rest.length > w) {
      lines.push(rest.slice(0, w).join(''));
      rest = rest.slice(w);
    }
    line = rest.join('');
  }
  if (line || !lines.length) lines.push(line);
  return lines;
}

export function renderText(report: Report, opts: TextOptions): string {
  const paint = (o: RunOutcome, s: string) => (opts.color ? `${COLORS[o]}${s}${RESET}` : s);
  const dim = (s: string) => (opts.color ? `${DIM}${s}${RESET}` : s);
  const groups = report.groups.filter((g) => !opts.quiet || g.outcome !== 'verified');
  const summary = summaryLine(report.summary);
  if (opts.quiet && !groups.length) return '';

  const width = opts.width;
  const reasonW = Math.max(6, ...groups.map((g) => length(g.finding.reason)));
  const imageW = Math.max(5, ...groups.map((g) => length(oneLine(g.finding.image))));
  const fixed = OUTCOME_W + GAP.length + reasonW + GAP.length;
  const whereText = (f: (typeof groups)[number]['places'][number]) =>
    [placeText(f), objectText(f)].filter(Boolean).join(' ');
  // Column layout when the places fit beside the image; else under it.
  const whereW = width === undefined ? undefined : width - fixed - imageW - GAP.length;
  const columns = whereW === undefined || whereW >= MIN_WHERE_WIDTH;
  const imageCol = columns ? (width === undefined ? Math.min(imageW, 60) : imageW) : Math.max(10, (width ?? 0) - fixed);
  const indent = '    ';
  const body = (s: string) => wrap(oneLine(s), width === undefined ? undefined : width - indent.length);

  const lines: string[] = [
    columns
      ? [pad('OUTCOME', OUTCOME_W), pad('REASON', reasonW), pad('IMAGE', imageCol), 'WHERE'].join(GAP)
      : [pad('OUTCOME', OUTCOME_W), pad('REASON', reasonW), 'IMAGE'].join(GAP),
  ];
  for (const g of groups) {
    const f = g.finding;
    const image = wrap(oneLine(f.image), columns && width === undefined ? undefined : imageCol);
    const where = columns ? g.places.flatMap((p) => wrap(whereText(p), whereW)) : [];
    const height = Math.max(image.length, where.length, 1);
    for (let i = 0; i < height; i++) {
      const outcome = i === 0 ? paint(g.outcome, pad(g.outcome, OUTCOME_W)) : pad('', OUTCOME_W);
      const reason = pad(i === 0 ? f.reason : '', reasonW);
      const cells = [outcome, reason, where.length ? pad(image[i] ?? '', imageCol) : (image[i] ?? '')];
      if (where.length) cells.push(where[i] ?? '');
      lines.push(cells.join(GAP).trimEnd());
    }
    if (!columns)
      for (const p of g.places) {
        const [first, ...rest] = wrap(`at ${whereText(p)}`, (width ?? 0) - indent.length - 3);
        lines.push(`${indent}${first}`, ...rest.map((r) => `${indent}   ${r}`));
      }
    if (f.verdict !== 'ok') {
      lines.push(...body(f.message).map((l) => `${indent}${l}`));
      if (f.hint) lines.push(...body(`fix: ${f.hint}`).map((l) => dim(`${indent}${l}`)));
    }
  }
  lines.push('', summary);
  // A wrapped image or message can put data at the start of a line ("::error::…" in an image):
  // GitHub Actions would run it, so it is escaped, whatever the width.
  return `${lines.map(notACommand).join('\n')}\n`;
}
