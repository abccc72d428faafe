// HTTP to registries on undici: one keep-alive pool per origin, a cap on requests in flight per
// registry host, TLS verified unless the host is configured insecure, redirects followed by hand so
// that credentials never cross to another host, and a resolver that refuses link-local addresses.

import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { cut, oneLine } from '../findings.ts';
import { hostListed, isForbiddenAddress, hostAndPort } from './hosts.ts';
import { PullguardError } from '../errors.ts';

export type TransportErrorKind =
  | 'dns'
  | 'connect'
  | 'tls'
  | 'reset'
  | 'timeout'
  | 'aborted'
  | 'forbidden-address'
  | 'too-large'
  | 'redirect';

export class TransportError extends PullguardError {
  readonly code = 'transport';
  readonly kind: TransportErrorKind;
  constructor(kind: TransportErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

export type Headers = Record<string, string | string[] | undefined>;

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Buffer;
  /** the URL that answered, after redirects */
  url: URL;
}

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** bytes of body to keep at most; more is an error (manifests) or cut (error bodies) */
  maxBody?: number;
  truncateBody?: boolean;
}

export interface TransportOptions {
  insecure: readonly string[];
  caPems: readonly string[];
  concurrency: number;
  allowLinkLocal: readonly string[];
  /** per request: connect, first byte and between body chunks */
  requestTimeoutMs: number;
  /** called for every answer (metrics); host is host[:port] */
  onResponse?: (host: string, method: string, status: number) => void;
  /** called for every transport failure (metrics) */
  onFailure?: (host: string, method: string, kind: TransportErrorKind) => void;
  /** name resolution (default dns.lookup); tests resolve names without asking a DNS server */
  lookup?: LookupFunction;
}

export type LookupFunction = (
  hostname: string,
  options: { all: true },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

const MAX_REDIRECTS = 5;

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
  private release(): void {
    this.active--;
    this.waiting.shift()?.();
  }
}

export class RegistryTransport {
  private readonly options: TransportOptions;
  private readonly agents = new Map<string, Agent>();
  private readonly slots = new Map<string, Semaphore>();
  /** insecure hosts found to speak plain HTTP */
  private readonly plainHttp = new Set<string>();
  /** every connection, connecting ones included: close() ends them all, so nothing outlives it */
  private readonly sockets = new Set<Socket>();
  /** with extra CAs: built once, since parsing ~140 roots again for every connection is costly */
  private readonly secureContext: SecureContext | undefined;

  constructor(options: TransportOptions) {
    this.options = options;
    // A given `ca` replaces Node's bundle, so the public roots go along with the configured ones.
    this.secureContext = options.caPems.length
      ? createSecureContext({ ca: [...rootCertificates, ...options.caPems] })
      : undefined;
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

  /** Any URL (token realms are absolute), following redirects without carrying Authorization across hosts. */
  async request(url: URL, req: HttpRequest): Promise<HttpResponse> {
    let current = url;
    let headers = { ...req.headers };
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await this.once(current, { ...req, headers });
      if (res.status < 300 || res.status >= 400 || res.status === 304) return res;
      const location = first(res.headers.location);
      if (!location) return res;
      const next = new URL(location, current);
      if (next.host !== current.host || next.protocol !== current.protocol) {
        // The OCI spec: a client MUST NOT forward Authorization when a redirect leaves the host.
        const { authorization: _dropped, Authorization: _dropped2, ...rest } = headers;
        headers = rest;
      }
      current = next;
    }
    throw new TransportError('redirect', `more than ${MAX_REDIRECTS} redirects from ${url.host}`);
  }

  private async once(url: URL, req: HttpRequest): Promise<HttpResponse> {
    const host = url.host;
    this.assertAllowedLiteral(url);
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
      const sent = this.agent(url).request({
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
      this.options.onResponse?.(host, req.method, res.statusCode);
      return { status: res.statusCode, headers: res.headers as Headers, body, url };
    } catch (err) {
      const failure =
        limit.aborted && !req.signal?.aborted
          ? new TransportError('timeout', `${host} did not answer in time (${this.options.requestTimeoutMs} ms)`)
          : req.signal?.aborted
            ? new TransportError('aborted', `request to ${host} was cut off by the deadline`)
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

  private slot(host: string): Semaphore {
    let s = this.slots.get(host);
    if (!s) this.slots.set(host, (s = new Semaphore(this.options.concurrency)));
    return s;
  }

  private agent(url: URL): Agent {
    const key = url.origin;
    let agent = this.agents.get(key);
    if (agent) return agent;
    const insecure = this.isInsecure(url.host);
    const allowed = hostListed(url.host, this.options.allowLinkLocal);
    agent = new Agent({
      connections: this.options.concurrency,
      keepAliveTimeout: 30_000,
      allowH2: false,
      connect: this.tracked(
        buildConnector({
          timeout: this.options.requestTimeoutMs,
          rejectUnauthorized: !insecure,
          ...(this.secureContext ? { secureContext: this.secureContext } : {}),
          lookup: guardedLookup(this.options.lookup ?? (dnsLookup as unknown as LookupFunction), allowed),
        } as buildConnector.BuildOptions),
      ),
    });
    this.agents.set(key, agent);
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
  if (signal.aborted) {
    sent.then(
      (r) => r.body.destroy(),
      () => undefined,
    );
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      sent.then(
        (r) => r.body.destroy(),
        () => undefined,
      );
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    sent.then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
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

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Turns whatever undici or Node threw into one of a few kinds a person can act on. */
export function classify(err: unknown, url: URL): TransportError {
  if (err instanceof TransportError) return err;
  const chain: (Error & { code?: string })[] = [];
  for (
    let e = err as (Error & { code?: string; cause?: unknown }) | undefined;
    e && chain.length < 5;
    e = e.cause as typeof e
  )
    chain.push(e);
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
  if (codes.some((c) => /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO|EPROTO|HOSTNAME|ALTNAME/.test(c))) {
    return new TransportError('tls', `TLS with ${host} failed: ${short(text)}`);
  }
  if (has(CONNECT_CODES))
    return new TransportError('connect', `cannot connect to ${host} (${codes.find((c) => CONNECT_CODES.has(c))})`);
  if (has(RESET_CODES))
    return new TransportError('reset', `${host} closed the connection (${codes.find((c) => RESET_CODES.has(c))})`);
  return new TransportError('connect', `request to ${host} failed: ${short(text)}`);
}

/** An error text from Node or a peer, fit for a one-line message. */
function short(text: string): string {
  return cut(oneLine(text), 200);
}
