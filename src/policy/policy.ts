// From findings to what the API server is told: deny, warn, or only record. The mode comes from the
// configuration, or per namespace from the pullguard.io/mode label, which the webhook configuration
// turns into the path it calls (/validate/enforce, /validate/warn, /validate/audit).

import type { Action, Config, Mode } from '../config/schema.ts';
import { MODES } from '../config/schema.ts';
import type { Finding } from '../findings.ts';

/** What is done about one finding: a configured action, or in audit mode only a record. */
export type Decision = Action | 'record';

export function isMode(value: unknown): value is Mode {
  return typeof value === 'string' && (MODES as readonly string[]).includes(value);
}

/** The action for one finding under a mode: enforce denies `fail` and warns `risk` unless configured otherwise. */
export function actionFor(
  finding: Pick<Finding, 'verdict' | 'reason'>,
  mode: Mode,
  actions: Config['actions'],
): Decision {
  if (finding.verdict === 'ok') return 'ignore';
  if (mode === 'audit') return 'record';
  const configured = actions[finding.reason] ?? (finding.verdict === 'fail' ? 'deny' : 'warn');
  if (mode === 'warn' && configured === 'deny') return 'warn';
  return configured;
}
