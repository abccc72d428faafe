// What a failed registry request was, in a few kinds a person can act on: whatever undici or Node
// threw (a cause chain of system errors) becomes one TransportError with a one-line message, and a
// proxy's own refusals are told from the registry's answers. Kept apart from the sending so that
// the words for failures are found and changed in one place.

import { PullguardError } from '../errors.ts';
import { cut, oneLine } from '../text.ts';
import { tlsErrorText, withoutOpenSslInternals, type TlsProblem } from '../system-errors.ts';
import { hostAndPort } from './hosts.ts';

export type TransportErrorKind =
  | 'dns'
  | 'connect'
  | 'tls'
  | 'reset'
  | 'timeout'
  | 'aborted'
  | 'forbidden-address'
  | 'too-large'
  | 'redirect'
  | 'proxy';

export class TransportError extends PullguardError {
  readonly code = 'transport';
  readonly kind: TransportErrorKind;
  /** for kind 'tls': what went wrong, each with its own fix (plain HTTP, an untrusted CA…) */
  readonly tls: TlsProblem | undefined;
  constructor(kind: TransportErrorKind, message: string, tls?: TlsProblem) {
    super(message);
    this.kind = kind;
    this.tls = tls;
  }
}

/** a proxy's own refusals of a plain-http request (absolute-URI form) */
export const PROXY_REFUSALS = new Set([403, 407, 502, 503, 504]);
const PROXY_STATUS: Record<number, string> = {
  401: 'proxy credentials refused',
  403: 'forbidden by the proxy',
  407: 'proxy authentication required',
  500: 'the proxy failed',
  502: 'bad gateway: the proxy could not reach the registry',
  503: 'the proxy is unavailable',
  504: 'the proxy timed out reaching the registry',
};

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'UND_ERR_CONNECT_TIMEOUT',
  'EADDRNOTAVAIL',
]);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/**
 * The error and its causes, outermost first: undici and Node wrap the system error that says what
 * happened. Five at most, so a cause chain that loops back on itself ends too.
 */
function causeChain(err: unknown): (Error & { code?: string })[] {
  const chain: (Error & { code?: string })[] = [];
  for (
    let e = err as (Error & { code?: string; cause?: unknown }) | undefined;
    e && chain.length < 5;
    e = e.cause as typeof e
  )
    chain.push(e);
  return chain;
}

/** Turns whatever undici or Node threw into one of a few kinds a person can act on. */
export function classify(err: unknown, url: URL): TransportError {
  if (err instanceof TransportError) return err;
  const chain = causeChain(err);
  const codes = chain.map((e) => e.code ?? '').filter(Boolean);
  const text = chain.map((e) => e.message).find(Boolean) ?? String(err);
  const host = url.host;
  const has = (set: Set<string>) => codes.some((c) => set.has(c));
  if (chain.some((e) => e.name === 'AbortError') || codes.includes('ABORT_ERR') || codes.includes('UND_ERR_ABORTED')) {
    return cutOff(host);
  }
  if (codes.includes('EFORBIDDENADDRESS'))
    return new TransportError(
      'forbidden-address',
      `${host} resolves only to link-local or metadata addresses; pullguard does not contact them unless configured (registry.allowLinkLocal)`,
    );
  if (has(DNS_CODES))
    return new TransportError('dns', `the name ${hostAndPort(host).hostname} does not resolve (${codes[0]})`);
  if (has(TIMEOUT_CODES))
    return new TransportError('timeout', `${host} did not answer in time (${codes.find((c) => TIMEOUT_CODES.has(c))})`);
  const tls = tlsErrorText(err);
  if (tls) return new TransportError('tls', `TLS with ${host} failed: ${tls.words}`, tls.problem);
  if (codes.some((c) => /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO|EPROTO|HOSTNAME|ALTNAME/.test(c))) {
    return new TransportError('tls', `TLS with ${host} failed: ${short(text)}`, 'handshake');
  }
  if (has(CONNECT_CODES))
    return new TransportError('connect', `cannot connect to ${host} (${codes.find((c) => CONNECT_CODES.has(c))})`);
  if (has(RESET_CODES))
    return new TransportError('reset', `${host} closed the connection (${codes.find((c) => RESET_CODES.has(c))})`);
  return new TransportError('connect', `request to ${host} failed: ${short(text)}`);
}

/** The caller's signal (its deadline) ended the request. */
export function cutOff(host: string): TransportError {
  return new TransportError('aborted', `request to ${host} was cut off by the deadline`);
}

export function proxyRefusal(via: string, host: string, status: number): TransportError {
  const why = PROXY_STATUS[status];
  return new TransportError(
    'proxy',
    `the proxy ${via} refused the request to ${host} (HTTP ${status}${why ? `, ${why}` : ''})`,
  );
}

/** Failures of a proxied request: the proxy's refusals by status, everything else said to be through it. */
export function classifyProxied(err: unknown, url: URL, via: string): TransportError {
  for (const e of causeChain(err)) {
    const m = /Proxy response \((\d{3})\)|Proxy Authentication Required \((\d{3})\)/.exec(e.message ?? '');
    if (m) return proxyRefusal(via, url.host, Number(m[1] ?? m[2]));
  }
  const plain = classify(err, url);
  if (plain.kind === 'aborted' || plain.kind === 'timeout' || plain.kind === 'forbidden-address') return plain;
  return new TransportError(plain.kind, `${plain.message} (through the proxy ${via})`, plain.tls);
}

/** An error text from Node or a peer, fit for a one-line message: never OpenSSL's internals. */
function short(text: string): string {
  return cut(withoutOpenSslInternals(oneLine(text)), 200);
}
