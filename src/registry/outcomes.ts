// What a registry's answer means for a finding: an HTTP status, the registry's error body, an
// authentication failure or a transport failure, reduced to one Outcome. The engine decides from
// outcomes alone, so this is the one place where statuses are read.

import { oneLine } from '../text.ts';
import type { TlsProblem } from '../system-errors.ts';
import { parseRetryAfter, type RateLimit } from './ratelimit.ts';
import { first, TransportError, type HttpResponse } from './transport.ts';

/** The registry's answer, reduced to what decides a finding. */
export type Outcome =
  | { kind: 'found'; digest: string; mediaType: string }
  | { kind: 'not-found'; code?: string }
  | { kind: 'unauthorized'; insufficientScope: boolean; rejected: boolean; noCredentials: boolean }
  | { kind: 'denied' }
  | { kind: 'rate-limited'; retryAfter?: number }
  | { kind: 'error'; status?: number }
  | { kind: 'unreachable'; transport: string; tls?: TlsProblem }
  | { kind: 'timeout' }
  /** the nodes' runtime refuses to pull it (registries.conf `blocked`, an ambiguous short name) */
  | { kind: 'blocked'; why: string };

export interface Answer<T extends Outcome = Outcome> {
  outcome: T;
  /** one-line facts for people: statuses, hosts, error codes; never a credential */
  evidence: string[];
  rateLimit?: RateLimit;
  /** the host that served it, when the nodes' configuration gives more than one */
  servedBy?: string;
  /** what people should know though it is found: a mirror that lacks it (routes.ts) */
  note?: string;
}

/** Why a 401 stayed a 401: what the authentication step found. */
export interface AuthFailure {
  insufficientScope: boolean;
  rejected: boolean;
  noCredentials: boolean;
}

export const NO_AUTH_FAILURE: AuthFailure = Object.freeze({
  insufficientScope: false,
  rejected: false,
  noCredentials: false,
});

/** The first entry of a distribution error body (`{"errors":[{"code","message"}]}`). */
export interface ErrorBody {
  code?: string;
  message?: string;
}

/** The outcome of an answer that is not a success. */
export function outcomeOfStatus(r: HttpResponse, authFailure?: AuthFailure): Outcome {
  const err = errorBody(r.body);
  switch (r.status) {
    case 401:
      return { kind: 'unauthorized', ...(authFailure ?? NO_AUTH_FAILURE) };
    case 403:
      return err?.code === 'TOOMANYREQUESTS' ? { kind: 'rate-limited' } : { kind: 'denied' };
    case 404:
      return err?.code ? { kind: 'not-found', code: err.code } : { kind: 'not-found' };
    case 429: {
      const after = parseRetryAfter(header(r, 'retry-after'));
      return after === undefined ? { kind: 'rate-limited' } : { kind: 'rate-limited', retryAfter: after };
    }
    default:
      return { kind: 'error', status: r.status };
  }
}

/** The outcome of a request that got no answer; its message goes to the evidence. Anything else is a bug: rethrown. */
export function transportOutcome(err: unknown, evidence: string[]): Outcome {
  if (!(err instanceof TransportError)) throw err;
  evidence.push(err.message);
  if (err.kind === 'aborted' || err.kind === 'timeout') return { kind: 'timeout' };
  if (err.kind === 'too-large' || err.kind === 'redirect') return { kind: 'error' };
  return err.tls
    ? { kind: 'unreachable', transport: err.kind, tls: err.tls }
    : { kind: 'unreachable', transport: err.kind };
}

export function errorBody(body: Buffer): ErrorBody | undefined {
  if (!body.length) return undefined;
  try {
    const json = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    const first = Array.isArray(json.errors) ? (json.errors[0] as ErrorBody | undefined) : undefined;
    if (!first || typeof first !== 'object') return undefined;
    return {
      ...(typeof first.code === 'string' ? { code: first.code } : {}),
      ...(typeof first.message === 'string' ? { message: oneLine(first.message) } : {}),
    };
  } catch {
    return undefined;
  }
}

export function header(r: HttpResponse, name: string): string | undefined {
  return first(r.headers[name]);
}

export function headerAll(r: HttpResponse, name: string): string[] {
  const v = r.headers[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}
