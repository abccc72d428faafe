// JSON for machines: one entry per image use with its place, the counts and the exit status.

import type { Report } from '../report.ts';
import { outcomeOf } from '../../policy/run.ts';
import { withoutOldCommands } from './github.ts';

export function renderJson(report: Report, version: string): string {
  const findings = report.findings.map((f) => ({
    object: { kind: f.object.kind, namespace: f.object.namespace ?? '', name: f.object.name ?? '' },
    container: f.container,
    field: f.field,
    ...(f.source ? { source: f.source } : {}),
    image: f.image,
    reference: f.reference,
    verdict: f.verdict,
    outcome: outcomeOf(f),
    reason: f.reason,
    message: f.message,
    hint: f.hint,
    ...(f.digest ? { digest: f.digest } : {}),
    ...(f.suggestions?.length ? { suggestions: f.suggestions } : {}),
    // what was asked and answered, which credential source and proxy: never a secret
    ...(f.evidence?.length ? { evidence: f.evidence } : {}),
  }));
  const json = JSON.stringify({ version, findings, summary: report.summary, exitCode: report.exitCode }, null, 2);
  // On stdout in GitHub Actions, "##[" in an image would be a workflow command: \u0023 is "#".
  return `${withoutOldCommands(json, '\\u0023')}\n`;
}
