// The output formats of `pullguard check`, each rendered from the one report; several may be asked
// for at once (`--output sarif=results.sarif --output text`), at most one of them on stdout (and github).

import type { Report } from '../report.ts';
import { renderGithub } from './github.ts';
import { renderJson } from './json.ts';
import { renderJunit } from './junit.ts';
import { renderSarif } from './sarif.ts';
import { renderText, type TextOptions } from './text.ts';

export const FORMATS = ['text', 'json', 'sarif', 'junit', 'github'] as const;
export type Format = (typeof FORMATS)[number];

export interface OutputTarget {
  format: Format;
  /** a file to write; none: stdout */
  path?: string;
}

/** `--output` values: `FORMAT` or `FORMAT=PATH`. Throws an Error whose message is for people. */
export function parseOutputs(values: readonly string[]): OutputTarget[] {
  const targets = values.map((v): OutputTarget => {
    const eq = v.indexOf('=');
    const format = eq < 0 ? v : v.slice(0, eq);
    const path = eq < 0 ? undefined : v.slice(eq + 1);
    if (!(FORMATS as readonly string[]).includes(format))
      throw new Error(
        `--output must be ${FORMATS.slice(0, -1).join(', ')} or ${FORMATS.at(-1)} (optionally FORMAT=FILE), not "${v}"`,
      );
    if (path === '') throw new Error(`--output ${format}= needs a file name after "="`);
    return { format: format as Format, ...(path ? { path } : {}) };
  });
  // GitHub Actions takes its workflow commands out of the log, so they may share stdout with one other.
  if (targets.filter((t) => !t.path && t.format !== 'github').length > 1)
    throw new Error(
      'only one --output can go to stdout (besides github); give the others a file: --output FORMAT=FILE',
    );
  return targets.length ? targets : [{ format: 'text' }];
}

export function render(format: Format, report: Report, ctx: { version: string; text: TextOptions }): string {
  switch (format) {
    case 'text':
      return renderText(report, ctx.text);
    case 'json':
      return renderJson(report, ctx.version);
    case 'sarif':
      return renderSarif(report, ctx.version);
    case 'junit':
      return renderJunit(report);
    case 'github':
      return renderGithub(report);
  }
}
