// SARIF 2.1.0 for code scanning: one rule per reason (its help is the reason's usual fix), one
// result per image use that is not ok, located at the image field in its manifest.

import { isAbsolute, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FAIL_REASONS, REASONS, type Finding, type Reason } from '../../findings.ts';
import { oneLine } from '../../text.ts';
import type { Report } from '../report.ts';
import { objectText, REASON_HELP } from '../report.ts';
import { outcomeOf } from '../../policy/run.ts';
import { withoutOldCommands } from './github.ts';

const RULES = REASONS.filter((r) => r !== 'available');

/** A file name as a SARIF artifact URI: relative paths stay relative (to the checkout). */
export function artifactUri(file: string): string {
  if (isAbsolute(file)) return pathToFileURL(file).href;
  return encodeURI(file.split(sep).join('/')).replace(/[?#]/g, encodeURIComponent);
}

function level(f: Finding): 'error' | 'warning' {
  return outcomeOf(f) === 'failed' ? 'error' : 'warning';
}

function result(f: Finding) {
  const located = f.source && f.source.file !== '-';
  return {
    ruleId: f.reason,
    ruleIndex: RULES.indexOf(f.reason as Exclude<Reason, 'available'>),
    level: level(f),
    message: { text: `${objectText(f)}: ${oneLine(f.message)}${f.hint ? `. Fix: ${oneLine(f.hint)}` : ''}` },
    locations: [
      {
        ...(located
          ? {
              physicalLocation: {
                artifactLocation: { uri: artifactUri(f.source!.file) },
                region: { startLine: f.source!.line, startColumn: f.source!.column },
              },
            }
          : {}),
        logicalLocations: [{ fullyQualifiedName: `${objectText(f)} ${f.field}`, kind: 'member' }],
      },
    ],
    properties: { image: f.image, reference: f.reference, verdict: f.verdict, outcome: outcomeOf(f) },
  };
}

export function renderSarif(report: Report, version: string): string {
  const log = {
    $schema: 'https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'pullguard',
            version,
            rules: RULES.map((r) => ({
              id: r,
              shortDescription: { text: REASON_HELP[r].title },
              help: { text: REASON_HELP[r].fix },
              defaultConfiguration: {
                level: report.policy.strict || (FAIL_REASONS as readonly string[]).includes(r) ? 'error' : 'warning',
              },
            })),
          },
        },
        invocations: [{ executionSuccessful: true, exitCode: report.exitCode }],
        results: report.findings.filter((f) => f.verdict !== 'ok').map(result),
      },
    ],
  };
  // On stdout in GitHub Actions, "##[" in an image would be a workflow command: \u0023 is "#".
  return `${withoutOldCommands(JSON.stringify(log, null, 2), '\\u0023')}\n`;
}
