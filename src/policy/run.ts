// What a finding means for a run of `pullguard check`: verified, failed, risky or unverified, and the
// exit status they add up to under --strict and --allow-unverified. The webhook's counterpart is
// policy.ts (deny, warn or only record).

import type { Finding, Reason } from '../findings.ts';

/** Reasons that say nothing certain about the image: it could not be verified either way. */
export const UNVERIFIED_REASONS: ReadonlySet<Reason> = new Set<Reason>([
  'registry-unreachable',
  'registry-error',
  'timeout',
  'unverifiable',
  'not-checked',
]);

/** What a finding means for the run: pullable, would fail, might fail, or not known. */
export type RunOutcome = 'verified' | 'failed' | 'risky' | 'unverified';

export function outcomeOf(f: Pick<Finding, 'verdict' | 'reason'>): RunOutcome {
  if (f.verdict === 'ok') return 'verified';
  if (f.verdict === 'fail') return 'failed';
  return UNVERIFIED_REASONS.has(f.reason) ? 'unverified' : 'risky';
}

export interface RunPolicy {
  /** risks fail the run (unverified ones too, unless allowUnverified) */
  strict: boolean;
  /** images that could not be verified do not turn the exit status into 3 */
  allowUnverified: boolean;
}

/** 0 all verified (or risks accepted), 1 some image would fail, 3 some could not be verified */
export type ExitCode = 0 | 1 | 3;

/** A finding as the run counts it: with --strict a risk fails, unless it is only unverified and that is allowed. */
export function underPolicy(f: Finding, policy: RunPolicy): Finding {
  if (f.verdict !== 'risk' || !policy.strict) return f;
  if (policy.allowUnverified && UNVERIFIED_REASONS.has(f.reason)) return f;
  return { ...f, verdict: 'fail' };
}

export function exitCodeFor(counts: { failed: number; unverified: number }, policy: RunPolicy): ExitCode {
  return counts.failed ? 1 : counts.unverified && !policy.allowUnverified ? 3 : 0;
}
