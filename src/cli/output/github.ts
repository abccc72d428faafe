// GitHub Actions workflow commands: an inline annotation per image use that is not ok, at its
// file and line. Escaping as the runner documents it: in the message %, CR and LF; in property
// values also ':' and ','. And the other way round: no other line pullguard prints may pass for a
// command (notACommand).

import type { Finding } from '../../findings.ts';
import { oneLine } from '../../text.ts';
import type { Report } from '../report.ts';
import { objectText } from '../report.ts';
import { outcomeOf } from '../../policy/run.ts';

export function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

export function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** Leading whitespace as the runner's TrimStart() sees it (.NET's White_Space, and a few more to be safe). */
const LEADING_SPACE = '[\\s\\u0085\\u180e\\u200b]*';
const COMMAND_START = new RegExp(`^(${LEADING_SPACE})::`, 'u');

/**
 * A line of output the GitHub Actions runner cannot take for a workflow command. The runner reads
 * a line as one when it starts with "::" after leading whitespace, or when it holds "##[" anywhere
 * (the older syntax). Data in a line (an image, a file name, a registry's words) that would make
 * one gets a backslash that breaks the marker: \::error::…, ##\[error]…. pullguard's own
 * commands (annotation()) are never passed through this.
 */
export function notACommand(line: string): string {
  return line.replace(COMMAND_START, '$1\\::').replace(/##\[/g, '##\\[');
}

/**
 * Text for a format that is not line-based (JSON, XML) but may be printed to a runner's log:
 * "##[" inside a string becomes "#" plus the format's own escape of "#", which reads back the same.
 */
export function withoutOldCommands(text: string, escapedHash: string): string {
  return text.replace(/##\[/g, `#${escapedHash}[`);
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
