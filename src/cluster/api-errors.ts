// A failed Kubernetes API call in one line for people. client-node's ApiException message is a dump
// ("HTTP-Code: 404\nMessage: Unknown API Status Code!\nBody: {…}\nHeaders: {…}"), and a failed
// connection is undici's "fetch failed" with the cause underneath. Here it becomes what was asked
// (verb and object), the HTTP status, the API server's own Status message, and, where pullguard
// knows it, the setting that named what was asked for:
//
//   cannot create Lease "pullguard-watch" in namespace "nope": 404 Not Found: namespaces "nope" not
//   found; the namespace "nope" does not exist: change watch.leaseNamespace
//
// Nothing else from the response is used: no headers, and of the body only a Status's message
// (a body that is no Status may quote anything, a secret's values included).

import { STATUS_CODES } from 'node:http';
import { PullguardError } from '../errors.ts';
import { cut, oneLine, redact } from '../text.ts';
import { systemErrorText, tlsErrorText } from '../system-errors.ts';

/** One API call, as a person would name it. */
export interface ApiCall {
  /** as RBAC names it: get, list, watch, create, update */
  verb: string;
  /** what was asked for: `Lease "pullguard-watch" in namespace "x"`, `pods in all namespaces` */
  what: string;
  /** the namespace asked for, and the setting or flag that chose it (named when it does not exist) */
  namespace?: string;
  namespaceSetting?: string;
  /** the setting that chose the object's name (named when the API server finds the name invalid) */
  nameSetting?: string;
  /** the request's own timeout, for the words of one that ran out */
  timeoutMs?: number;
}

/** A failed Kubernetes API call; `status` is the HTTP status, when the API server answered. */
export class KubeApiError extends PullguardError {
  readonly code = 'kube-api';
  readonly status: number | undefined;
  constructor(message: string, status: number | undefined, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
  }
}

/** What of a Status object (the body of every API server error) is used. */
interface Status {
  message?: string;
  reason?: string;
  details?: { kind?: string; name?: string; causes?: { field?: string }[] };
}

/**
 * client-node's ApiException, known by its shape (a numeric code, a body and headers): this module
 * must not load client-node to ask instanceof (`pullguard check` without a cluster never loads it).
 */
export function isApiException(err: unknown): err is Error & { code: number; body: unknown } {
  return (
    err instanceof Error && typeof (err as { code?: unknown }).code === 'number' && 'body' in err && 'headers' in err
  );
}

/** The HTTP status of a failed call, when the API server answered (KubeApiError or ApiException). */
export function apiStatus(err: unknown): number | undefined {
  if (err instanceof KubeApiError) return err.status;
  return isApiException(err) ? err.code : undefined;
}

/** The failure as a KubeApiError whose message is the one line (one already made is kept). */
export function kubeApiError(err: unknown, call: ApiCall): KubeApiError {
  if (err instanceof KubeApiError) return err;
  return new KubeApiError(apiErrorText(err, call), apiStatus(err), { cause: err });
}

/** The one line: `cannot <verb> <what>: <why>[; <what to change>]`. */
export function apiErrorText(err: unknown, call: ApiCall): string {
  if (err instanceof KubeApiError) return err.message;
  const text = `cannot ${call.verb} ${call.what}: ${why(err, call)}`;
  // Status messages name objects and users, never credentials; redact guards the rest.
  return cut(redact(oneLine(text)), 600);
}

function why(err: unknown, call: ApiCall): string {
  if (isApiException(err)) return answered(err.code, statusOf(err.body), call);
  const e = err as { name?: unknown; message?: unknown; cause?: unknown } | undefined;
  const cause = e?.cause as { name?: unknown; code?: unknown } | undefined;
  if (e?.name === 'TimeoutError' || cause?.name === 'TimeoutError')
    return call.timeoutMs
      ? `the API server did not answer within ${call.timeoutMs}ms`
      : 'the API server did not answer in time';
  if (e?.name === 'AbortError') return 'the request was aborted';
  // undici's fetch fails with "fetch failed" and the socket's or TLS's error as the cause; its
  // request API (list-watch.ts) throws the socket's or TLS's error itself.
  const socket =
    cause && typeof cause.code === 'string'
      ? cause
      : typeof (e as { code?: unknown } | undefined)?.code === 'string' && !(err instanceof KubeApiError)
        ? (e as { code: string })
        : undefined;
  if (socket)
    return `cannot reach the API server: ${tlsErrorText(socket)?.words ?? systemErrorText(socket, 'connect')}`;
  // Anything else by its name only: a parse error's message may quote the body (a secret's values).
  return `the request failed (${typeof e?.name === 'string' ? e.name : 'unknown error'})`;
}

/** An answer of the API server: its HTTP status, its Status message, what to change. */
function answered(code: number, status: Status | undefined, call: ApiCall): string {
  const phrase = STATUS_CODES[code] ?? 'error';
  // a message that only repeats the status ("Unauthorized") says nothing more
  const said = status?.message && status.message !== phrase ? `: ${cut(oneLine(status.message), 300)}` : '';
  return `${code} ${phrase}${said}${fixFor(code, status, call)}`;
}

/**
 * A watch's ERROR event (its object is a Status; the stream itself answered 200) as the failure it
 * reports, in the same words as a failed call.
 */
export function watchErrorEvent(object: unknown, call: ApiCall): KubeApiError {
  // A watch's Status may come without its kind: its message is still the API server's.
  const message = (object as { message?: unknown } | undefined)?.message;
  const status = statusOf(object) ?? (typeof message === 'string' ? { message } : undefined);
  const code =
    typeof (object as { code?: unknown } | undefined)?.code === 'number' ? (object as { code: number }).code : 0;
  const why = code
    ? answered(code, status, call)
    : `an error event${status?.message ? `: ${cut(oneLine(status.message), 300)}` : ''}`;
  return new KubeApiError(cut(redact(oneLine(`cannot ${call.verb} ${call.what}: ${why}`)), 600), code || undefined);
}

/** What to change, where the answer says it and pullguard knows it. */
function fixFor(code: number, status: Status | undefined, call: ApiCall): string {
  if (code === 401)
    return "; the API server refused the credentials (the kubeconfig user's, or the service account token)";
  if (code === 404 && status?.details?.kind === 'namespaces') {
    const ns = status.details.name ?? call.namespace;
    const named = ns ? ` "${ns}"` : '';
    return `; the namespace${named} does not exist${call.namespaceSetting ? `: change ${call.namespaceSetting}` : ''}`;
  }
  if (code === 422 && call.nameSetting && status?.details?.causes?.some((c) => c.field === 'metadata.name'))
    return `; change ${call.nameSetting}`;
  return '';
}

/** The Status in an error body (client-node leaves it as text), or undefined for any other body. */
function statusOf(body: unknown): Status | undefined {
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const s = parsed as { kind?: unknown; message?: unknown; reason?: unknown; details?: unknown };
  if (s.kind !== 'Status') return undefined;
  const details = typeof s.details === 'object' && s.details !== null ? (s.details as Status['details']) : undefined;
  return {
    ...(typeof s.message === 'string' ? { message: s.message } : {}),
    ...(typeof s.reason === 'string' ? { reason: s.reason } : {}),
    ...(details ? { details } : {}),
  };
}

/** The Status message of an error body, one line and cut to 300 characters; undefined for any other body. */
export function statusMessage(body: unknown): string | undefined {
  const message = statusOf(body)?.message;
  return message === undefined ? undefined : cut(oneLine(message), 300);
}

/** For a log line: the one line of a KubeApiError or a failed call, else the error's own message, one line. */
export function errorLine(err: unknown): string {
  if (err instanceof KubeApiError) return err.message;
  if (isApiException(err)) return apiErrorText(err, { verb: 'call', what: 'the Kubernetes API' });
  const e = err as { message?: unknown; name?: unknown } | undefined;
  return cut(oneLine(typeof e?.message === 'string' ? e.message : String(err)), 300);
}
