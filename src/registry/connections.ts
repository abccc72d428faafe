// The connections to registries: one keep-alive pool per origin (direct, or a tunnel through a
// proxy), a cap on requests in flight per registry host, TLS verified unless the host is configured
// insecure, and bounded memory however many hosts pod authors name. Kept apart from the sending so
// that what is held open, and for how long, is decided in one place.

import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import { Agent, buildConnector, ProxyAgent, type Dispatcher } from 'undici';
import type { AddressGuard } from './address-guard.ts';
import { TransportError } from './failures.ts';
import { hostListed } from './hosts.ts';

/** A host's own TLS settings (containerd's hosts.toml: skip_verify, ca, client). */
export interface HostTls {
  /** undefined: as registry.insecure says */
  skipVerify?: boolean;
  caPems: readonly string[];
  clients: readonly { cert: string; key: string }[];
}

export interface ConnectionOptions {
  insecure: readonly string[];
  caPems: readonly string[];
  /** per host[:port]: its own TLS settings, besides the global ones */
  hostTls?: ReadonlyMap<string, HostTls>;
  concurrency: number;
  /** per request: connect, first byte and between body chunks */
  requestTimeoutMs: number;
}

/**
 * Hosts whose connection pool and slots are kept while idle; past this the least recently used idle
 * ones are closed and dropped. A pod author names any host: their number must not make memory grow.
 */
export const MAX_IDLE_HOSTS = 64;
/** how long an idle kept-alive connection stays open */
const KEEP_ALIVE_MS = 30_000;

/** A counting semaphore: at most `size` holders at once, the rest wait in order. */
export class Semaphore {
  #active = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #size: number;
  constructor(size: number) {
    this.#size = size;
  }
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.#active < this.#size) {
      this.#active++;
      return () => this.#release();
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.#waiting.indexOf(grant);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(new TransportError('aborted', 'the deadline passed while waiting for a connection slot'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(grant);
    });
    this.#active++;
    return () => this.#release();
  }
  /** no request holds or waits for a slot */
  get idle(): boolean {
    return this.#active === 0 && this.#waiting.length === 0;
  }
  #release(): void {
    this.#active--;
    this.#waiting.shift()?.();
  }
}

export class Connections {
  readonly #options: ConnectionOptions;
  readonly #guard: AddressGuard;
  // Per origin and per host, in order of last use (an entry moves to the end when used): eviction of
  // idle ones starts at the front.
  readonly #agents = new Map<string, Dispatcher>();
  readonly #slots = new Map<string, Semaphore>();
  /** every connection, connecting ones included: close() ends them all, so nothing outlives it */
  readonly #sockets = new Set<Socket>();
  /** with extra CAs: built once, since building a trust store for every connection is costly */
  readonly #secureContext: SecureContext | undefined;
  /** per host with its own CAs or client certificate: built once too */
  readonly #hostContexts = new Map<string, SecureContext>();

  constructor(options: ConnectionOptions, guard: AddressGuard) {
    this.#options = options;
    this.#guard = guard;
    this.#secureContext = options.caPems.length ? withExtraCas(options.caPems) : undefined;
  }

  isInsecure(host: string): boolean {
    return hostListed(host, this.#options.insecure);
  }

  /** How many hosts' slots and connection pools are held (tests; at most about MAX_IDLE_HOSTS plus those in use). */
  get held(): { hosts: number; pools: number } {
    return { hosts: this.#slots.size, pools: this.#agents.size };
  }

  /** The host's request slots (at most `concurrency` in flight); marks the host as just used. */
  slot(host: string): Semaphore {
    let s = this.#slots.get(host);
    if (s) this.#slots.delete(host);
    else s = new Semaphore(this.#options.concurrency);
    this.#slots.set(host, s);
    this.#evictIdle(host);
    return s;
  }

  /** The pool for the URL's origin, through `proxy` when given; made on first use. */
  agent(url: URL, proxy: URL | undefined): Dispatcher {
    const key = url.origin;
    let agent = this.#agents.get(key);
    if (agent) {
      this.#agents.delete(key);
      this.#agents.set(key, agent);
      return agent;
    }
    agent = proxy ? this.#proxied(url, proxy) : this.#direct(url);
    this.#agents.set(key, agent);
    this.#evictIdle(url.host);
    return agent;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#agents.values()].map((a) => a.destroy().catch(() => undefined)));
    this.#agents.clear();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }

  /** the TLS options for a registry host: verified unless insecure, with the configured CAs */
  #tls(host: string) {
    const own = this.#options.hostTls?.get(host);
    const context = own ? this.#hostContext(host, own) : this.#secureContext;
    return {
      rejectUnauthorized: !(own?.skipVerify ?? this.isInsecure(host)),
      ...(context ? { secureContext: context } : {}),
    };
  }

  /** A host's trust (the configured CAs and its own) and client certificate, as containerd adds them to the system pool. */
  #hostContext(host: string, own: HostTls): SecureContext | undefined {
    if (!own.caPems.length && !own.clients.length) return this.#secureContext;
    let context = this.#hostContexts.get(host);
    if (!context) {
      // Go's TLS client offers the first pair the server accepts; one certificate is offered here.
      const client = own.clients[0];
      context = withExtraCas([...this.#options.caPems, ...own.caPems], client);
      this.#hostContexts.set(host, context);
    }
    return context;
  }

  // One tunnel per connection, kept alive and reused like a direct one; the proxy's credentials
  // (from its URL) go only to the proxy, the registry's only inside the tunnel.
  #proxied(url: URL, proxy: URL): Dispatcher {
    return new ProxyAgent({
      uri: proxy.href,
      connections: this.#options.concurrency,
      keepAliveTimeout: KEEP_ALIVE_MS,
      allowH2: false,
      connectTimeout: this.#options.requestTimeoutMs,
      requestTls: this.#tls(url.host),
      ...(this.#secureContext ? { proxyTls: { secureContext: this.#secureContext } } : {}),
    });
  }

  #direct(url: URL): Dispatcher {
    return new Agent({
      connections: this.#options.concurrency,
      keepAliveTimeout: KEEP_ALIVE_MS,
      allowH2: false,
      connect: this.#tracked(
        buildConnector({
          // the connector offers ALPN itself: without this it offers h2, whatever the Agent says
          allowH2: false,
          timeout: this.#options.requestTimeoutMs,
          ...this.#tls(url.host),
          lookup: this.#guard.lookupFor(url.host),
        } as buildConnector.BuildOptions),
      ),
    });
  }

  /**
   * Drops the least recently used per-host state beyond MAX_IDLE_HOSTS: a host's slots once no
   * request holds or waits for one, its pools (closed, their idle connections with them) likewise.
   * Never `current`, whose request is about to take a slot, nor a host with requests in flight.
   */
  #evictIdle(current: string): void {
    if (this.#slots.size > MAX_IDLE_HOSTS)
      for (const [host, s] of this.#slots) {
        if (this.#slots.size <= MAX_IDLE_HOSTS) break;
        if (host !== current && s.idle) this.#slots.delete(host);
      }
    if (this.#agents.size > MAX_IDLE_HOSTS)
      for (const [origin, agent] of this.#agents) {
        if (this.#agents.size <= MAX_IDLE_HOSTS) break;
        const host = new URL(origin).host;
        if (host === current || this.#slots.get(host)?.idle === false) continue;
        this.#agents.delete(origin);
        agent.close().catch(() => undefined);
      }
  }

  // undici's destroy() leaves a connection still in its TLS handshake to its connect timeout (a
  // registry that accepts and never answers): the CLI would wait that long to exit.
  #tracked(connect: buildConnector.connector): buildConnector.connector {
    return (opts, callback) => {
      const socket = connect(opts, callback) as unknown as Socket;
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      return socket;
    };
  }
}

/**
 * Node's default trust (its bundled roots, NODE_EXTRA_CA_CERTS, the system's with --use-system-ca)
 * plus the configured CAs. Added to a default context, as Node's own tests do: a `ca` option would
 * replace the default trust, and passing the ~140 bundled roots along parses every one of them again
 * (~10 ms of a CLI start). Where the context has no addCACert (not Node), the roots go along.
 */
function withExtraCas(pems: readonly string[], client?: { cert: string; key: string }): SecureContext {
  const context = createSecureContext(client ? { cert: client.cert, key: client.key } : {});
  const native = (context as { context?: { addCACert?: (pem: string) => void } }).context;
  if (typeof native?.addCACert !== 'function')
    return createSecureContext({
      ca: [...rootCertificates, ...pems],
      ...(client ? { cert: client.cert, key: client.key } : {}),
    });
  for (const pem of pems) native.addCACert(pem);
  return context;
}
