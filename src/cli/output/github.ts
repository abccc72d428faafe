// GitHub Actions workflow commands: an inline annotation per image use that is not ok, at its
// file and line. Escaping as the runner documents it: in the message %, CR and LF; in property
// values also ':' and ','.

import { oneLine, type Finding } from '../../findings.ts';
import type { Report } from '../report.ts';
import { objectText, outcomeOf } from '../report.ts';

export function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

export function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export function annotation(f: Finding): string {
  const command = outcomeOf(f) === 'failed' ? 'error' : 'warning';
  const props: [string, string | number][] = [];
  if (f.source && f.source.file !== '-')
    props.push(['file', f.source.file], ['line', f.source.line], ['col', f.source.column]);
  props.push(['title', `pullguard ${f.reason}: ${f.image}`]);
  const message = `${objectText(f)}: ${f.message}${f.hint ? `\nfix: ${f.hint}` : ''}`;
  // Control characters other than the line breaks would end or corrupt the command.
  const clean = message.replace(/[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
  const list = props.map(([k, v]) => `${k}=${escapeProperty(oneLine(String(v)))}`).join(',');
  return `::${command} ${list}::${escapeData(clean)}`;
}

export function renderGithub(report: Report): string {
  const lines = report.findings.filter((f) => f.verdict !== 'ok').map(annotation);
  return lines.length ? `${lines.join('\n')}\n` : '';
}
