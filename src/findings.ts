// The shared vocabulary of docs/design.md: one finding per image use, with a stable reason word that
// JSON output, metrics labels and configuration all use.

import { cut, oneLine, quote } from './text.ts';

export const VERDICTS = ['ok', 'risk', 'fail'] as const;
export type Verdict = (typeof VERDICTS)[number];

export const FAIL_REASONS = [
  'invalid-reference',
  'repository-not-found',
  'tag-not-found',
  'digest-not-found',
  'access-denied',
  'platform-not-found',
  // what the runtime fetches after the tag: the manifest by digest or a platform's own manifest,
  // a config or layer blob, is not served (a stale or partly synced cache)
  'manifest-missing',
  'blob-missing',
  // the nodes' runtime refuses to pull it: registries.conf blocks the registry, or an ambiguous short name
  'blocked',
] as const;
export const RISK_REASONS = [
  'rate-limited',
  'registry-unreachable',
  'registry-error',
  'timeout',
  'unverifiable',
  // `pullguard check --offline`: the reference is valid, the registry was not asked
  'not-checked',
] as const;
export const REASONS = [...FAIL_REASONS, ...RISK_REASONS, 'available'] as const;
export type Reason = (typeof REASONS)[number];

export function verdictOf(reason: Reason): Verdict {
  if ((FAIL_REASONS as readonly string[]).includes(reason)) return 'fail';
  if ((RISK_REASONS as readonly string[]).includes(reason)) return 'risk';
  return 'ok';
}

/** Where an image is used: the object and the field path inside it. */
export interface ImageUse {
  object: { kind: string; namespace?: string; name?: string };
  /** container (or volume) name */
  container: string;
  /** JSON path of the image field, e.g. spec.template.spec.initContainers[0].image */
  field: string;
  image: string;
  pullPolicy?: string;
  /** where the image field is written, for images read from manifest files */
  source?: SourcePosition;
}

/** A place in a manifest file; lines and columns count from 1. stdin is the file `-`. */
export interface SourcePosition {
  file: string;
  line: number;
  column: number;
}

export interface Finding {
  image: string;
  /** the normalized reference actually pulled (empty when it does not parse) */
  reference: string;
  container: string;
  field: string;
  object: ImageUse['object'];
  verdict: Verdict;
  reason: Reason;
  /** what happens, one line */
  message: string;
  /** what to do, one line */
  hint: string;
  /** facts behind the verdict: HTTP statuses, hosts, which credentials were tried */
  evidence: string[];
  digest?: string;
  suggestions?: string[];
  source?: SourcePosition;
}

/**
 * The one line a person reads: where, what happens, what to do. With `max`, a line too long is
 * shortened in the cause (whose start names the image), never by dropping the fix.
 */
export function describe(f: Pick<Finding, 'container' | 'message' | 'hint'>, max = Infinity): string {
  const head = `container ${quote(f.container, 63)}: `;
  // Messages may end a sentence of their own ("… Did you mean "nginx"?"): never "?. Fix".
  const message = oneLine(f.message).replace(/\.+$/, '');
  const fix = f.hint ? `Fix: ${oneLine(f.hint)}` : '';
  const whole = `${head}${message}${fix ? `${/[?!]$/.test(message) ? ' ' : '. '}${fix}` : ''}`;
  const length = (t: string) => [...t].length;
  if (length(whole) <= max) return whole;
  const fixPart = fix ? ` ${cut(fix, Math.floor(max / 2))}` : '';
  return `${head}${cut(message, Math.max(20, max - length(head) - length(fixPart)))}${fixPart}`;
}
