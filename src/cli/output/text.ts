// What `pullguard check` prints: a table a person reads at a glance, or JSON for machines.

import type { Finding, Verdict } from '../findings.ts';
import { oneLine } from '../findings.ts';

export interface Summary {
  ok: number;
  risk: number;
  fail: number;
}

export function summarize(findings: readonly Finding[]): Summary {
  const s: Summary = { ok: 0, risk: 0, fail: 0 };
  for (const f of findings) s[f.verdict]++;
  return s;
}

export function toJson(findings: readonly Finding[]): string {
  const out = findings.map((f) => ({
    object: { kind: f.object.kind, namespace: f.object.namespace ?? '', name: f.object.name ?? '' },
    container: f.container,
    field: f.field,
    image: f.image,
    reference: f.reference,
    verdict: f.verdict,
    reason: f.reason,
    message: f.message,
    hint: f.hint,
    ...(f.digest ? { digest: f.digest } : {}),
    ...(f.suggestions?.length ? { suggestions: f.suggestions } : {}),
  }));
  return `${JSON.stringify({ findings: out, summary: summarize(findings) }, null, 2)}\n`;
}

const COLORS: Record<Verdict, string> = { ok: '\u001b[32m', risk: '\u001b[33m', fail: '\u001b[31m' };
const RESET = '\u001b[0m';
const DIM = '\u001b[2m';

function where(f: Finding): string {
  const o = f.object;
  const name = [o.namespace, o.name].filter(Boolean).join('/');
  const holder = f.field.includes('.volumes[') ? f.container : `container "${f.container}"`;
  return `${o.kind}${name ? ` ${name}` : ''}${f.container ? `, ${holder}` : ''}`;
}

/** The table: one row per finding, the message and the fix under every row that is not ok. */
export function toText(findings: readonly Finding[], color: boolean): string {
  const paint = (v: Verdict, s: string) => (color ? `${COLORS[v]}${s}${RESET}` : s);
  const dim = (s: string) => (color ? `${DIM}${s}${RESET}` : s);
  const rows = findings.map((f) => [f.verdict, f.reason, oneLine(f.image), where(f)] as const);
  const widths = [7, 20, 40].map((min, i) =>
    Math.min(Math.max(min, ...rows.map((r) => r[i]!.length)), i === 2 ? 60 : 24),
  );
  const pad = (s: string, w: number) => (s.length >= w ? s : s + ' '.repeat(w - s.length));
  const lines = [['VERDICT', 'REASON', 'IMAGE', 'WHERE'].map((h, i) => (i < 3 ? pad(h, widths[i]!) : h)).join('  ')];
  findings.forEach((f, n) => {
    const r = rows[n]!;
    lines.push(
      [paint(f.verdict, pad(r[0], widths[0]!)), pad(r[1], widths[1]!), pad(r[2], widths[2]!), r[3]].join('  '),
    );
    if (f.verdict !== 'ok') {
      lines.push(`    ${oneLine(f.message)}`);
      if (f.hint) lines.push(dim(`    fix: ${oneLine(f.hint)}`));
    }
  });
  const s = summarize(findings);
  lines.push(
    '',
    `${findings.length} image use${findings.length === 1 ? '' : 's'}: ${paint('ok', `${s.ok} ok`)}, ${paint('risk', `${s.risk} risk`)}, ${paint('fail', `${s.fail} fail`)}`,
  );
  return `${lines.join('\n')}\n`;
}
