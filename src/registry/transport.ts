// HTTP to registries on undici: each request bounded by one deadline (the wait for a connection slot
// included), redirects followed by hand so that credentials never cross to another host, and an
// insecure host tried over plain HTTP when it does not speak TLS. Through an HTTP proxy when the
// proxy rules say so (proxy.ts): CONNECT tunnels for https, the absolute-URI form for plain http.
// What is held open lives in connections.ts, the link-local guard in address-guard.ts, and the
// words for failures in failures.ts; their names are exported here too, where callers found them.

import type { Dispatcher } from 'undici';
import { raceAbort } from '../abort.ts';
import { AddressGuard, type LookupFunction } from './address-guard.ts';
import { Connections, type ConnectionOptions } from './connections.ts';
import {
  classify,
  classifyProxied,
  cutOff,
  PROXY_REFUSALS,
  proxyRefusal,
  TransportError,
  type TransportErrorKind,
} from './failures.ts';
import { displayProxy, ProxyRules, type ProxySettings } from './proxy.ts';

export { MAX_GUARDED, type LookupFunction } from './address-guard.ts';
export { MAX_IDLE_HOSTS } from './connections.ts';
export { classify, TransportError, type TransportErrorKind } from './failures.ts';

export type Headers = Record<string, string | string[] | undefined>;

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Buffer;
  /** the URL that answered, after redirects */
  url: URL;
  /** the proxy it went through (scheme://host:port, never credentials) */
  proxy?: string;
  /** how it was reached when that is not the usual way, for the evidence */
  note?: string;
}

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** bytes of body to keep at most; more is an error (manifests) or cut (error bodies) */
  maxBody?: number;
  truncateBody?: boolean;
  /**
   * The request carries credentials (a password in the body or header): a redirect that leaves
   * the origin is not followed at all, rather than followed without them.
   */
  credentialed?: boolean;
}

export interface TransportOptions extends ConnectionOptions {
  allowLinkLocal: readonly string[];
  /**
   * called for every answer (metrics); host is host[:port]; proxy as in HttpResponse; registryLike:
   * the answer came from a registry (its API version header, or a /v2/ answer only a registry gives)
   */
  onResponse?: (host: string, method: string, status: number, proxy: string | undefined, registryLike: boolean) => void;
  /** called for every transport failure (metrics) */
  onFailure?: (host: string, method: string, kind: TransportErrorKind) => void;
  /** name resolution (default dns.lookup); tests resolve names without asking a DNS server */
  lookup?: LookupFunction;
  /** HTTP proxies (registry.proxy or HTTPS_PROXY/HTTP_PROXY/NO_PROXY); none: always direct */
  proxy?: ProxySettings;
}

const MAX_REDIRECTS = 5;

export class RegistryTransport {
  readonly #options: TransportOptions;
  readonly #connections: Connections;
  readonly #guard: AddressGuard;
  readonly #proxies: ProxyRules | undefined;
  /** insecure hosts found to speak plain HTTP */
  readonly #plainHttp = new Set<string>();
  /** insecure hosts whose proxy refused to tunnel to them: asked over plain HTTP through it */
  readonly #proxyRefusedTls = new Set<string>();

  constructor(options: TransportOptions) {
    this.#options = options;
    this.#proxies = options.proxy ? new ProxyRules(options.proxy).assertSupported() : undefined;
    this.#guard = new AddressGuard(options.allowLinkLocal, options.lookup);
    this.#connections = new Connections(options, this.#guard);
  }

  /** A host whose configured endpoint is http:// is never tried over TLS. */
  usePlainHttp(host: string): void {
    this.#plainHttp.add(host);
  }

  isInsecure(host: string): boolean {
    return this.#connections.isInsecure(host);
  }

  /** The base URL for a registry host: https, or http for an insecure host that does not speak TLS. */
  baseUrl(host: string): URL {
    return new URL(`${this.#plainHttp.has(host) ? 'http' : 'https'}://${host}`);
  }

  /**
   * A request to a registry host path; an insecure host falls back to plain HTTP as containerd does,
   * and, when a proxy refuses to tunnel to it (squid allows CONNECT to port 443 only), to plain HTTP
   * through the proxy as Docker does; that answer says so.
   */
  async registryRequest(host: string, path: string, req: HttpRequest): Promise<HttpResponse> {
    const url = new URL(path, this.baseUrl(host));
    try {
      const r = await this.request(url, req);
      return this.#proxyRefusedTls.has(host) && url.protocol === 'http:' ? { ...r, note: refusedNote(host) } : r;
    } catch (err) {
      if (!(err instanceof TransportError) || url.protocol !== 'https:' || !this.isInsecure(host)) throw err;
      const refused = err.kind === 'proxy' && /refused the request/.test(err.message);
      if (err.kind !== 'tls' && err.kind !== 'reset' && !refused) throw err;
      this.#plainHttp.add(host);
      if (refused) this.#proxyRefusedTls.add(host);
      const r = await this.request(new URL(path, this.baseUrl(host)), req);
      return refused ? { ...r, note: refusedNote(host) } : r;
    }
  }

  /**
   * Any URL (token realms are absolute), following redirects. Credentials never leave the origin
   * they were first sent to: Authorization is dropped when a redirect leaves it, and a credentialed
   * request (a password form or Basic header) is not followed there at all.
   */
  async request(url: URL, req: HttpRequest): Promise<HttpResponse> {
    let current = url;
    let hop: HttpRequest = { ...req, headers: { ...req.headers } };
    for (let n = 0; n <= MAX_REDIRECTS; n++) {
      const res = await this.#once(current, hop);
      if (res.status < 300 || res.status >= 400 || res.status === 304) return res;
      const location = first(res.headers.location);
      if (!location) return res;
      const next = new URL(location, current);
      if (next.origin !== url.origin) {
        if (req.credentialed)
          throw new TransportError(
            'redirect',
            `${url.host} redirected a request carrying credentials to ${next.protocol === url.protocol ? next.host : `${next.protocol}//${next.host}`}; pullguard sends credentials only to the host they are for`,
          );
        // The OCI spec: a client MUST NOT forward Authorization when a redirect leaves the host.
        const { authorization: _dropped, Authorization: _dropped2, ...rest } = hop.headers ?? {};
        hop = { ...hop, headers: rest };
      }
      // 301/302/303 turn a POST into a GET without its body (as browsers and curl do); 307/308 keep both.
      if (hop.method === 'POST' && res.status !== 307 && res.status !== 308) {
        const { body: _body, ...rest } = hop;
        const { 'content-type': _type, ...headers } = rest.headers ?? {};
        hop = { ...rest, method: 'GET', headers };
      }
      current = next;
    }
    throw new TransportError('redirect', `more than ${MAX_REDIRECTS} redirects from ${url.host}`);
  }

  /** How many hosts' slots and connection pools are held (tests; at most about MAX_IDLE_HOSTS plus those in use). */
  get held(): { hosts: number; pools: number } {
    return this.#connections.held;
  }

  close(): Promise<void> {
    return this.#connections.close();
  }

  async #once(url: URL, req: HttpRequest): Promise<HttpResponse> {
    const host = url.host;
    const { requestTimeoutMs, concurrency } = this.#options;
    this.#guard.assertAllowedLiteral(url);
    const proxy = this.#proxies?.proxyFor(url.protocol.slice(0, -1), host);
    const via = proxy ? displayProxy(proxy) : undefined;
    // One bound for the whole request, the wait for a slot included: undici's bodyTimeout is per
    // chunk (a trickling registry would never end), and against a dead registry the queue for slots
    // must not outgrow the deadline.
    const limit = AbortSignal.timeout(requestTimeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, limit]) : limit;
    const timedOut = () => limit.aborted && !req.signal?.aborted;
    let release: () => void;
    try {
      release = await this.#connections.slot(host).acquire(signal);
    } catch (err) {
      this.#options.onFailure?.(host, req.method, 'timeout');
      throw timedOut()
        ? new TransportError(
            'timeout',
            `no free connection to ${host} in time (${concurrency} requests already in flight)`,
          )
        : err;
    }
    try {
      if (proxy) await this.#guard.assertAllowedName(url, signal);
      const sent = this.#connections.agent(url, proxy).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: req.method,
        headers: { 'user-agent': 'pullguard', ...req.headers },
        ...(req.body === undefined ? {} : { body: req.body }),
        signal,
        // undici closes the connection after every HEAD unless told otherwise (for servers that
        // send a body anyway); registries do not, and a new TLS connection per HEAD costs more.
        reset: false,
        headersTimeout: requestTimeoutMs,
        bodyTimeout: requestTimeoutMs,
      });
      // undici leaves a request whose connection is still in its handshake pending after an abort,
      // until the connect timeout: the request and its slot end at the abort here; the connection
      // ends at its timeout, or at close().
      const res = await untilAborted(sent, signal);
      const body = await readBody(res.body, req.maxBody ?? 1024 * 1024, req.truncateBody ?? false);
      // Plain http through a proxy: a refusal is the proxy's own answer, which a registry never
      // sends without its API version header.
      if (via && url.protocol === 'http:' && PROXY_REFUSALS.has(res.statusCode)) {
        if (!res.headers['docker-distribution-api-version']) throw proxyRefusal(via, host, res.statusCode);
      }
      this.#options.onResponse?.(host, req.method, res.statusCode, via, registryLike(url, res.statusCode, res.headers));
      return { status: res.statusCode, headers: res.headers as Headers, body, url, ...(via ? { proxy: via } : {}) };
    } catch (err) {
      const failure = timedOut()
        ? new TransportError('timeout', `${host} did not answer in time (${requestTimeoutMs} ms)`)
        : req.signal?.aborted
          ? cutOff(host)
          : via
            ? classifyProxied(err, url, via)
            : classify(err, url);
      this.#options.onFailure?.(host, req.method, failure.kind);
      throw failure;
    } finally {
      release();
    }
  }
}

function refusedNote(host: string): string {
  return `the proxy refused CONNECT to ${host}, an insecure registry: asked over plain HTTP through it, as Docker does`;
}

/** The response, or the signal's abort if that comes first; a response that comes later is dropped. */
function untilAborted(sent: Promise<Dispatcher.ResponseData>, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
  return raceAbort(sent, signal, () =>
    sent.then(
      (r) => r.body.destroy(),
      () => undefined,
    ),
  );
}

async function readBody(body: Dispatcher.ResponseData['body'], max: number, truncate: boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (size + buf.length > max) {
      body.destroy();
      if (!truncate) throw new TransportError('too-large', `the answer is larger than ${max} bytes`);
      chunks.push(buf.subarray(0, max - size));
      return Buffer.concat(chunks);
    }
    chunks.push(buf);
    size += buf.length;
  }
  return Buffer.concat(chunks);
}

/**
 * An answer only a registry gives: the distribution API version header (every registry sends it on
 * /v2/), or, on a /v2/ path, a challenge (401 with WWW-Authenticate) or a manifest's digest header.
 */
function registryLike(url: URL, status: number, headers: Dispatcher.ResponseData['headers']): boolean {
  if (headers['docker-distribution-api-version']) return true;
  if (!url.pathname.startsWith('/v2/')) return false;
  return (status === 401 && Boolean(headers['www-authenticate'])) || Boolean(headers['docker-content-digest']);
}

/** One header's value; the first where it came more than once. */
export function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
