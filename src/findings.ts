// The shared vocabulary of docs/design.md: one finding per image use, with a stable reason word that
// JSON output, metrics labels and configuration all use.

export const VERDICTS = ['ok', 'risk', 'fail'] as const;
export type Verdict = (typeof VERDICTS)[number];

export const FAIL_REASONS = [
  'invalid-reference',
  'repository-not-found',
  'tag-not-found',
  'digest-not-found',
  'access-denied',
  'platform-not-found',
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

/** Quotes text for a message: control characters escaped (the API server drops warnings with them), length capped. */
export function quote(text: string, max = 200): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return `"${cut.replace(/["\\]/g, (c) => `\\${c}`).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

/**
 * Text for a log field: control characters (C0, C1, U+2028/2029) escaped as \uXXXX, as in warnings
 * (a log pipeline may split lines on them), and cut to `max` characters.
 */
export function logText(text: string, max = 256): string {
  return cut(text, max).replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * Text from elsewhere (a registry's error body) made safe to show: whatever looks like a credential
 * — an Authorization value, a JWT, a password=… or token: … pair — and the given secrets (the
 * passwords and tokens actually sent, in plain, form-encoded and base64 form) become [redacted], wherever
 * they appear.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  // Longest first: a password inside a longer secret (its Basic pair) must not break that one's match.
  for (const s of [...secrets].sort((x, y) => y.length - x.length))
    if (s.length >= 4) out = out.split(s).join('[redacted]');
  return out
    .replace(/\b(basic|bearer|token)(\s+)[A-Za-z0-9+/=._~-]{8,}/gi, '$1$2[redacted]')
    .replace(/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, '[redacted]')
    .replace(
      /\b(password|passwd|pwd|secret|token|access_token|refresh_token|api[_-]?key|auth)("?\s*[=:]\s*"?)[^\s"&,;}]+/gi,
      '$1$2[redacted]',
    );
}

/** Removes control characters from text meant for one line. */
export function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
}

/** Cuts text to `max` characters (code points), marking the cut with an ellipsis. */
export function cut(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`;
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
