// HTTP to registries on undici: one keep-alive pool per origin, a cap on requests in flight per
// registry host, TLS verified unless the host is configured insecure, redirects followed by hand so
// that credentials never cross to another host, and a resolver that refuses link-local addresses.
// Through an HTTP proxy when the proxy rules say so (proxy.ts): CONNECT tunnels for https, the
// absolute-URI form for plain http; the link-local guard is then decided here, before the proxy is asked.

import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import { Agent, buildConnector, ProxyAgent, type Dispatcher } from 'undici';
import { PullguardError } from '../errors.ts';
import { cut, oneLine } from '../findings.ts';
import { tlsErrorText, withoutOpenSslInternals, type TlsProblem } from '../system-errors.ts';
import { hostAndPort, hostListed, isForbiddenAddress } from './hosts.ts';
import { displayProxy, ProxyRules, type ProxySettings } from './proxy.ts';
import { raceAbort } from '../abort.ts';

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

export type Headers = Record<string, string | string[] | undefined>;

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Buffer;
  /** the URL that answered, after redirects */
  url: URL;
  /** the proxy it went through (scheme://host:port, never credentials) */
  proxy?: string;
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

export interface TransportOptions {
  insecure: readonly string[];
  caPems: readonly string[];
  concurrency: number;
  allowLinkLocal: readonly string[];
  /** per request: connect, first byte and between body chunks */
  requestTimeoutMs: number;
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

export type LookupFunction = (
  hostname: string,
  options: { all: true },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

const MAX_REDIRECTS = 5;
/**
 * Hosts whose connection pool and slots are kept while idle; past this the least recently used idle
 * ones are closed and dropped. A pod author names any host: their number must not make memory grow.
 */
export const MAX_IDLE_HOSTS = 64;
/** proxied hosts whose guard result is remembered (GUARD_TTL_MS); past this the oldest is asked again */
export const MAX_GUARDED = 1024;
/** how long a proxied host that passed the link-local guard is trusted before DNS is asked again */
const GUARD_TTL_MS = 30_000;
/** a proxy's own refusals of a plain-http request (absolute-URI form) */
const PROXY_REFUSALS = new Set([403, 407, 502, 503, 504]);
const PROXY_STATUS: Record<number, string> = {
  401: 'proxy credentials refused',
  403: 'forbidden by the proxy',
  407: 'proxy authentication required',
  500: 'the proxy failed',
  502: 'bad gateway: the proxy could not reach the registry',
  503: 'the proxy is unavailable',
  504: 'the proxy timed out reaching the registry',
};

/** A counting semaphore: at most `size` holders at once, the rest wait in order. */
class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.active < this.size) {
      this.active++;
      return () => this.release();
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new TransportError('aborted', 'the deadline passed while waiting for a connection slot'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(grant);
    });
    this.active++;
    return () => this.release();
  }
  /** no request holds or waits for a slot */
  get idle(): boolean {
    return this.active === 0 && this.waiting.length === 0;
  }
  private release(): void {
    this.active--;
    this.waiting.shift()?.();
  }
}

export class RegistryTransport {
  private readonly options: TransportOptions;
  // Per origin and per host, in order of last use (an entry moves to the end when used): eviction of
  // idle ones starts at the front.
  private readonly agents = new Map<string, Dispatcher>();
  private readonly slots = new Map<string, Semaphore>();
  /** insecure hosts found to speak plain HTTP */
  private readonly plainHttp = new Set<string>();
  /** every connection, connecting ones included: close() ends them all, so nothing outlives it */
  private readonly sockets = new Set<Socket>();
  /** with extra CAs: built once, since building a trust store for every connection is costly */
  private readonly secureContext: SecureContext | undefined;
  private readonly proxies: ProxyRules | undefined;
  /** per host: when the link-local guard last passed a proxied host (the proxy resolves it, so we ask first) */
  private readonly guarded = new Map<string, number>();

  constructor(options: TransportOptions) {
    this.options = options;
    this.proxies = options.proxy ? new ProxyRules(options.proxy).assertSupported() : undefined;

    this.secureContext = options.caPems.length ? withExtraCas(options.caPems) : undefined;
  }

  /** A host whose configured endpoint is http:// is never tried over TLS. */
  usePlainHttp(host: string): void {
    this.plainHttp.add(host);
  }

  isInsecure(host: string): boolean {
    return hostListed(host, this.options.insecure);
  }

  /** The base URL for a registry host: https, or http for an insecure host that does not speak TLS. */
  baseUrl(host: string): URL {
    return new URL(`${this.plainHttp.has(host) ? 'http' : 'https'}://${host}`);
  }

  /** A request to a registry host path; an insecure host falls back to plain HTTP as containerd does. */
  async registryRequest(host: string, path: string, req: HttpRequest): Promise<HttpResponse> {
    const url = new URL(path, this.baseUrl(host));
    try {
      return await this.request(url, req);
    } catch (err) {
      if (
        err instanceof TransportError &&
        url.protocol === 'https:' &&
        this.isInsecure(host) &&
        (err.kind === 'tls' || err.kind === 'reset')
      ) {
        this.plainHttp.add(host);
        return this.request(new URL(path, this.baseUrl(host)), req);
      }
      throw err;
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
      const res = await this.once(current, hop);
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

  private async once(url: URL, req: HttpRequest): Promise<HttpResponse> {
    const host = url.host;
    this.assertAllowedLiteral(url);
    const proxy = this.proxies?.proxyFor(url.protocol.slice(0, -1), host);
    const via = proxy ? displayProxy(proxy) : undefined;
    // One bound for the whole request, the wait for a slot included: undici's bodyTimeout is per
    // chunk (a trickling registry would never end), and against a dead registry the queue for slots
    // must not outgrow the deadline.
    const limit = AbortSignal.timeout(this.options.requestTimeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, limit]) : limit;
    let release: () => void;
    try {
      release = await this.slot(host).acquire(signal);
    } catch (err) {
      this.options.onFailure?.(host, req.method, 'timeout');
      throw limit.aborted && !req.signal?.aborted
        ? new TransportError(
            'timeout',
            `no free connection to ${host} in time (${this.options.concurrency} requests already in flight)`,
          )
        : err;
    }
    try {
      if (proxy) await this.assertAllowedName(url, signal);
      const sent = this.agent(url, proxy).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: req.method,
        headers: { 'user-agent': 'pullguard', ...req.headers },
        ...(req.body === undefined ? {} : { body: req.body }),
        signal,
        // undici closes the connection after every HEAD unless told otherwise (for servers that
        // send a body anyway); registries do not, and a new TLS connection per HEAD costs more.
        reset: false,
        headersTimeout: this.options.requestTimeoutMs,
        bodyTimeout: this.options.requestTimeoutMs,
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
      this.options.onResponse?.(host, req.method, res.statusCode, via, registryLike(url, res.statusCode, res.headers));
      return { status: res.statusCode, headers: res.headers as Headers, body, url, ...(via ? { proxy: via } : {}) };
    } catch (err) {
      const failure =
        limit.aborted && !req.signal?.aborted
          ? new TransportError('timeout', `${host} did not answer in time (${this.options.requestTimeoutMs} ms)`)
          : req.signal?.aborted
            ? new TransportError('aborted', `request to ${host} was cut off by the deadline`)
            : via
              ? classifyProxied(err, url, via)
              : classify(err, url);
      this.options.onFailure?.(host, req.method, failure.kind);
      throw failure;
    } finally {
      release();
    }
  }

  private assertAllowedLiteral(url: URL): void {
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(hostname) && isForbiddenAddress(hostname) && !hostListed(url.host, this.options.allowLinkLocal)) {
      throw new TransportError(
        'forbidden-address',
        `${url.host} is a link-local or metadata address; pullguard does not contact it unless configured (registry.allowLinkLocal)`,
      );
    }
  }

  /**
   * Through a proxy the proxy resolves the name, so the guard asks DNS first: a name that resolves
   * here to a link-local or metadata address is refused; one that does not resolve here (split DNS,
   * no DNS beyond the proxy) is left to the proxy.
   */
  private async assertAllowedName(url: URL, signal: AbortSignal): Promise<void> {
    const host = url.host;
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(hostname) || hostListed(host, this.options.allowLinkLocal)) return;
    const passed = this.guarded.get(hostname);
    if (passed !== undefined && Date.now() - passed < GUARD_TTL_MS) return;
    const lookup = this.options.lookup ?? (dnsLookup as unknown as LookupFunction);
    const addresses = await new Promise<LookupAddress[]>((resolve) => {
      const onAbort = () => resolve([]);
      signal.addEventListener('abort', onAbort, { once: true });
      lookup(hostname, { all: true }, (err, found) => {
        signal.removeEventListener('abort', onAbort);
        resolve(err ? [] : found);
      });
    });
    if (addresses.some((a) => isForbiddenAddress(a.address))) {
      throw new TransportError(
        'forbidden-address',
        `${host} resolves to a link-local or metadata address; pullguard does not contact it, not even through a proxy, unless configured (registry.allowLinkLocal)`,
      );
    }
    this.guarded.delete(hostname);
    this.guarded.set(hostname, Date.now());
    if (this.guarded.size > MAX_GUARDED) this.guarded.delete(this.guarded.keys().next().value as string);
  }

  /** How many hosts' slots and connection pools are held (tests; at most about MAX_IDLE_HOSTS plus those in use). */
  get held(): { hosts: number; pools: number } {
    return { hosts: this.slots.size, pools: this.agents.size };
  }

  private slot(host: string): Semaphore {
    let s = this.slots.get(host);
    if (s) this.slots.delete(host);
    else s = new Semaphore(this.options.concurrency);
    this.slots.set(host, s);
    this.evictIdle(host);
    return s;
  }

  /**
   * Drops the least recently used per-host state beyond MAX_IDLE_HOSTS: a host's slots once no
   * request holds or waits for one, its pools (closed, their idle connections with them) likewise.
   * Never `current`, whose request is about to take a slot, nor a host with requests in flight.
   */
  private evictIdle(current: string): void {
    if (this.slots.size > MAX_IDLE_HOSTS)
      for (const [host, s] of this.slots) {
        if (this.slots.size <= MAX_IDLE_HOSTS) break;
        if (host !== current && s.idle) this.slots.delete(host);
      }
    if (this.agents.size > MAX_IDLE_HOSTS)
      for (const [origin, agent] of this.agents) {
        if (this.agents.size <= MAX_IDLE_HOSTS) break;
        const host = new URL(origin).host;
        if (host === current || this.slots.get(host)?.idle === false) continue;
        this.agents.delete(origin);
        agent.close().catch(() => undefined);
      }
  }

  private agent(url: URL, proxy: URL | undefined): Dispatcher {
    const key = url.origin;
    let agent = this.agents.get(key);
    if (agent) {
      this.agents.delete(key);
      this.agents.set(key, agent);
      return agent;
    }
    const insecure = this.isInsecure(url.host);
    const allowed = hostListed(url.host, this.options.allowLinkLocal);
    if (proxy) {
      // One tunnel per connection, kept alive and reused like a direct one; the proxy's credentials
      // (from its URL) go only to the proxy, the registry's only inside the tunnel.
      const proxied = new ProxyAgent({
        uri: proxy.href,
        connections: this.options.concurrency,
        keepAliveTimeout: 30_000,
        allowH2: false,
        connectTimeout: this.options.requestTimeoutMs,
        requestTls: {
          rejectUnauthorized: !insecure,
          ...(this.secureContext ? { secureContext: this.secureContext } : {}),
        },
        ...(this.secureContext ? { proxyTls: { secureContext: this.secureContext } } : {}),
      });
      this.agents.set(key, proxied);
      this.evictIdle(url.host);
      return proxied;
    }
    agent = new Agent({
      connections: this.options.concurrency,
      keepAliveTimeout: 30_000,
      allowH2: false,
      connect: this.tracked(
        buildConnector({
          // the connector offers ALPN itself: without this it offers h2, whatever the Agent says
          allowH2: false,
          timeout: this.options.requestTimeoutMs,
          rejectUnauthorized: !insecure,
          ...(this.secureContext ? { secureContext: this.secureContext } : {}),
          lookup: guardedLookup(this.options.lookup ?? (dnsLookup as unknown as LookupFunction), allowed),
        } as buildConnector.BuildOptions),
      ),
    });
    this.agents.set(key, agent);
    this.evictIdle(url.host);
    return agent;
  }

  // undici's destroy() leaves a connection still in its TLS handshake to its connect timeout (a
  // registry that accepts and never answers): the CLI would wait that long to exit.
  private tracked(connect: buildConnector.connector): buildConnector.connector {
    return (opts, callback) => {
      const socket = connect(opts, callback) as unknown as Socket;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      return socket;
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.destroy().catch(() => undefined)));
    this.agents.clear();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }
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

/**
 * Node's default trust (its bundled roots, NODE_EXTRA_CA_CERTS, the system's with --use-system-ca)
 * plus the configured CAs. Added to a default context, as Node's own tests do: a `ca` option would
 * replace the default trust, and passing the ~140 bundled roots along parses every one of them again
 * (~10 ms of a CLI start). Where the context has no addCACert (not Node), the roots go along.
 */
function withExtraCas(pems: readonly string[]): SecureContext {
  const context = createSecureContext();
  const native = (context as { context?: { addCACert?: (pem: string) => void } }).context;
  if (typeof native?.addCACert !== 'function') return createSecureContext({ ca: [...rootCertificates, ...pems] });
  for (const pem of pems) native.addCACert(pem);
  return context;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A lookup that drops link-local and metadata answers (unless allowed) and fails when nothing is left. */
function guardedLookup(lookup: LookupFunction, allowLinkLocal: boolean) {
  return (hostname: string, options: { all?: boolean; family?: number | string }, callback: LookupCallback): void => {
    lookup(hostname, { ...options, all: true } as { all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const usable = allowLinkLocal ? addresses : addresses.filter((a) => !isForbiddenAddress(a.address));
      if (!usable.length) {
        const e: NodeJS.ErrnoException = new Error(`${hostname} resolves only to link-local or metadata addresses`);
        e.code = 'EFORBIDDENADDRESS';
        return callback(e, []);
      }
      if (options.all) return callback(null, usable);
      callback(null, usable[0]!.address, usable[0]!.family);
    });
  };
}

async function readBody(body: Dispatcher.ResponseData['body'], max: number, truncate: boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (size + buf.length > max) {
      if (truncate) {
        chunks.push(buf.subarray(0, max - size));
        body.destroy();
        return Buffer.concat(chunks);
      }
      body.destroy();
      throw new TransportError('too-large', `the answer is larger than ${max} bytes`);
    }
    chunks.push(buf);
    size += buf.length;
  }
  return Buffer.concat(chunks);
}

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
 * An answer only a registry gives: the distribution API version header (every registry sends it on
 * /v2/), or, on a /v2/ path, a challenge (401 with WWW-Authenticate) or a manifest's digest header.
 */
function registryLike(url: URL, status: number, headers: Dispatcher.ResponseData['headers']): boolean {
  if (headers['docker-distribution-api-version']) return true;
  if (!url.pathname.startsWith('/v2/')) return false;
  return (status === 401 && Boolean(headers['www-authenticate'])) || Boolean(headers['docker-content-digest']);
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

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
    return new TransportError('aborted', `request to ${host} was cut off by the deadline`);
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

function proxyRefusal(via: string, host: string, status: number): TransportError {
  const why = PROXY_STATUS[status];
  return new TransportError(
    'proxy',
    `the proxy ${via} refused the request to ${host} (HTTP ${status}${why ? `, ${why}` : ''})`,
  );
}

/** Failures of a proxied request: the proxy's refusals by status, everything else said to be through it. */
function classifyProxied(err: unknown, url: URL, via: string): TransportError {
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
