// Docker Hub's pull quota headers: `ratelimit-limit: 100;w=21600`, `ratelimit-remaining: 76;w=21600`.
// They come on HEAD and GET alike; their absence means no limit applies.

export interface RateLimit {
  limit: number;
  remaining: number;
  /** window in seconds, when given */
  window?: number;
}

function parseQuota(value: string | undefined): { n: number; w?: number } | undefined {
  if (!value) return undefined;
  const [count, ...params] = value.split(';');
  const n = Number.parseInt((count ?? '').trim(), 10);
  if (!Number.isFinite(n) || n < 0) return undefined;
  let w: number | undefined;
  for (const p of params) {
    const m = /^\s*w\s*=\s*(\d+)\s*$/.exec(p);
    if (m) w = Number(m[1]);
  }
  return w === undefined ? { n } : { n, w };
}

export function parseRateLimit(headers: Record<string, string | string[] | undefined>): RateLimit | undefined {
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  const limit = parseQuota(first(headers['ratelimit-limit']));
  const remaining = parseQuota(first(headers['ratelimit-remaining']));
  if (!limit || !remaining) return undefined;
  const window = remaining.w ?? limit.w;
  return window === undefined
    ? { limit: limit.n, remaining: remaining.n }
    : { limit: limit.n, remaining: remaining.n, window };
}

/** Retry-After is either seconds or an HTTP date; returns seconds from now. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}
