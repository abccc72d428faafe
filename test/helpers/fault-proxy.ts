// An HTTP(S) proxy in front of a real server (registry or token server) that injects faults per
// request. Pass-through forwards the request untouched (Host included, so the registry builds its
// Location and Link URLs for the proxy) and only drops hop-by-hop headers.
import http from 'node:http';
import https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse, OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

export type HeaderMap = Record<string, string | string[]>;

export type FaultAction =
  /** Forward unchanged (the default when no rule matches). */
  | { kind: 'pass' }
  /** Wait, then forward. */
  | { kind: 'delay'; ms: number }
  /** Wait until `until` settles (the test decides when), then forward. */
  | { kind: 'hold'; until: Promise<unknown> }
  /** Answer without asking upstream. An object body is sent as JSON. */
  | { kind: 'status'; status: number; body?: string | Buffer | object; headers?: HeaderMap }
  /** Forward, then add or override response headers (and optionally the status). */
  | { kind: 'headers'; headers: HeaderMap; status?: number }
  /** Read the request, never answer: no status line, no headers. */
  | { kind: 'hang' }
  /** Forward the upstream headers and the first `bytes` of the body (default: half), then go silent. */
  | { kind: 'hang-body'; bytes?: number }
  /** Forward the upstream answer, the body `chunkBytes` at a time every `intervalMs`. */
  | { kind: 'trickle'; chunkBytes?: number; intervalMs?: number }
  /** Drop the connection: TCP RST on plain sockets, abrupt close on TLS. */
  | { kind: 'reset' }
  /** Redirect. `to` is an origin: the request path and query are kept; `location` is used verbatim. */
  | { kind: 'redirect'; to?: string; location?: string; status?: number; headers?: HeaderMap }
  /**
   * Serve `tags/list` paginated (sorted, `n`/`last`, `Link: <...>; rel="next"`) from the upstream's
   * full list, as distribution 3.x does. distribution 2.8 ignores `n` and `last` entirely.
   */
  | { kind: 'paginate-tags' }
  /** Anything else: the test answers itself. */
  | { kind: 'handler'; handle: (req: IncomingMessage, res: ServerResponse) => void | Promise<void> };

export interface FaultMatch {
  /** One method or several, case-insensitive. */
  method?: string | string[];
  /** Tested against the path with query string. A string must match the pathname exactly. */
  path?: RegExp | string;
}

export interface FaultRule extends FaultMatch {
  action: FaultAction;
  /** Apply this many times, then stop matching. Default: unlimited. */
  times?: number;
}

export interface ActiveRule extends FaultRule {
  hits: number;
  remove(): void;
}

export interface ProxyLogEntry {
  seq: number;
  method: string;
  /** Path with query, as received. */
  url: string;
  pathname: string;
  headers: IncomingHttpHeaders;
  authorization: string | undefined;
  /** Which action handled it. */
  fault: FaultAction['kind'];
  /** Status sent to the client; undefined if none was sent (hang, reset). */
  status?: number;
  at: number;
  /** when the exchange ended: the answer was sent, or the client closed the connection */
  closedAt?: number;
}

export interface FaultProxyOptions {
  /** Base URL of the real server, e.g. http://127.0.0.1:5000 */
  upstream: string;
  /** CA to trust when upstream is https. */
  upstreamCa?: string;
  /** Serve TLS with this certificate (e.g. pki.server, pki.wrongServer, pki.expiredServer). */
  tls?: { cert: string; key: string };
  /** Loopback address to listen on. Default 127.0.0.1. */
  listen?: '127.0.0.1' | '::1';
  port?: number;
  rules?: FaultRule[];
}

export interface FaultProxy {
  host: string;
  url: string;
  port: number;
  upstream: string;
  /** Every request seen, in order. */
  log: ProxyLogEntry[];
  rules: ActiveRule[];
  addRule(rule: FaultRule): ActiveRule;
  /** Shorthand for addRule({ ...match, action }). */
  fault(action: FaultAction, match?: FaultMatch & { times?: number }): ActiveRule;
  clearRules(): void;
  /** Requests matching the filter (all when none). */
  count(filter?: FaultMatch): number;
  requests(filter?: FaultMatch): ProxyLogEntry[];
  /** Counts keyed "METHOD /path" (no query). */
  counts(): Record<string, number>;
  /** Requests still open: neither answered nor given up by the client. */
  open(filter?: FaultMatch): number;
  /** TCP connections accepted so far (a client that reuses its connections opens few). */
  connections(): number;
  resetLog(): void;
  stop(): Promise<void>;
}

// RFC 9110 §7.6.1: these belong to one connection and must not be forwarded.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function matches(m: FaultMatch, method: string, url: string, pathname: string): boolean {
  if (m.method !== undefined) {
    const ms = (Array.isArray(m.method) ? m.method : [m.method]).map((x) => x.toUpperCase());
    if (!ms.includes(method.toUpperCase())) return false;
  }
  if (m.path !== undefined) {
    if (typeof m.path === 'string' ? m.path !== pathname : !m.path.test(url)) return false;
  }
  return true;
}

/** Ready-made actions for the answers real registries give. */
export const faults = {
  /** Docker Hub's answer for a repository that does not exist (or that you may not read). */
  hubMissingRepo(repo: string, o: { realm?: string; service?: string } = {}): FaultAction {
    const realm = o.realm ?? 'https://auth.docker.io/token';
    const service = o.service ?? 'registry.docker.io';
    return {
      kind: 'status',
      status: 401,
      headers: {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="${realm}",service="${service}",scope="repository:${repo}:pull",error="insufficient_scope"`,
      },
      body: {
        errors: [
          {
            code: 'UNAUTHORIZED',
            message: 'authentication required',
            detail: [{ Type: 'repository', Class: '', Name: repo, Action: 'pull' }],
          },
        ],
      },
    };
  },
  /** 429 as Docker Hub words it; Retry-After only when given. */
  tooManyRequests(o: { retryAfter?: number | string; headers?: HeaderMap } = {}): FaultAction {
    const headers: HeaderMap = { 'content-type': 'application/json', ...o.headers };
    if (o.retryAfter !== undefined) headers['retry-after'] = String(o.retryAfter);
    return {
      kind: 'status',
      status: 429,
      headers,
      body: {
        errors: [
          {
            code: 'TOOMANYREQUESTS',
            message:
              'You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limits',
          },
        ],
      },
    };
  },
  /** Docker Hub's rate-limit headers on an otherwise normal answer. */
  rateLimitHeaders(remaining: number, limit = 100, windowSeconds = 21600, source = '127.0.0.1'): FaultAction {
    return {
      kind: 'headers',
      headers: {
        'ratelimit-limit': `${limit};w=${windowSeconds}`,
        'ratelimit-remaining': `${remaining};w=${windowSeconds}`,
        'docker-ratelimit-source': source,
      },
    };
  },
  serverError(status = 500, body?: string | object): FaultAction {
    return {
      kind: 'status',
      status,
      headers: { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' },
      body: body ?? { errors: [{ code: status === 503 ? 'UNAVAILABLE' : 'UNKNOWN', message: 'injected fault' }] },
    };
  },
  /** JSON content type, broken JSON body. */
  paginateTags(): FaultAction {
    return { kind: 'paginate-tags' };
  },
  malformedJson(status = 404): FaultAction {
    return {
      kind: 'status',
      status,
      headers: { 'content-type': 'application/json' },
      body: '{"errors":[{"code":"MANIFEST_UNKNOWN","message":',
    };
  },
};

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(opts.upstream);
  const upstreamTls = upstream.protocol === 'https:';
  const agent = upstreamTls
    ? new https.Agent({ keepAlive: true, ...(opts.upstreamCa ? { ca: opts.upstreamCa } : {}) })
    : new http.Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const log: ProxyLogEntry[] = [];
  const rules: ActiveRule[] = [];
  let seq = 0;
  let stopped = false;

  function later(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });
  }

  function addRule(rule: FaultRule): ActiveRule {
    const active: ActiveRule = {
      ...rule,
      hits: 0,
      remove() {
        const i = rules.indexOf(active);
        if (i >= 0) rules.splice(i, 1);
      },
    };
    rules.push(active);
    return active;
  }
  for (const r of opts.rules ?? []) addRule(r);

  function pickAction(method: string, url: string, pathname: string): FaultAction {
    for (const r of rules) {
      if (r.times !== undefined && r.hits >= r.times) continue;
      if (!matches(r, method, url, pathname)) continue;
      r.hits++;
      return r.action;
    }
    return { kind: 'pass' };
  }

  // Forward the request; resolves with the upstream response (body not yet read).
  function forward(req: IncomingMessage, path = req.url): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const upReq = (upstreamTls ? https : http).request({
        protocol: upstream.protocol,
        hostname: upstream.hostname.replace(/^\[|\]$/g, ''),
        port: upstream.port,
        method: req.method,
        path,
        headers: endToEnd(req.headers),
        agent,
      });
      upReq.on('response', resolve);
      upReq.on('error', reject);
      req.pipe(upReq);
    });
  }

  async function readAll(stream: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  function resetSocket(socket: Socket): void {
    // resetAndDestroy needs a raw TCP handle; a TLS socket can only be closed abruptly.
    if (!(socket instanceof TLSSocket) && typeof socket.resetAndDestroy === 'function') {
      try {
        socket.resetAndDestroy();
        return;
      } catch {
        // fall through
      }
    }
    socket.destroy();
  }

  async function paginateTags(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const u = new URL(url, 'http://proxy.invalid');
    const upRes = await forward(req, u.pathname);
    const text = (await readAll(upRes)).toString('utf8');
    const headers = endToEnd(upRes.headers);
    delete headers['content-length'];
    if (upRes.statusCode !== 200) {
      res.writeHead(upRes.statusCode ?? 502, headers);
      res.end(text);
      return;
    }
    const full = JSON.parse(text) as { name: string; tags: string[] | null };
    let tags = [...(full.tags ?? [])].sort();
    const last = u.searchParams.get('last');
    if (last !== null) tags = tags.filter((t) => t > last);
    const nParam = u.searchParams.get('n');
    const n = nParam === null ? undefined : Number.parseInt(nParam, 10);
    let page = tags;
    if (n !== undefined && n >= 0 && n < tags.length) {
      page = tags.slice(0, n);
      const lastOfPage = page[page.length - 1];
      if (lastOfPage !== undefined) {
        headers.link = `<${u.pathname}?last=${encodeURIComponent(lastOfPage)}&n=${n}>; rel="next"`;
      }
    }
    const body = JSON.stringify({ name: full.name, tags: page });
    headers['content-length'] = String(Buffer.byteLength(body));
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const pathname = url.split('?')[0] ?? url;
    const action = pickAction(method, url, pathname);
    const auth = req.headers.authorization;
    const entry: ProxyLogEntry = {
      seq: ++seq,
      method,
      url,
      pathname,
      headers: { ...req.headers },
      authorization: auth,
      fault: action.kind,
      at: Date.now(),
    };
    log.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));
    res.on('close', () => (entry.closedAt = Date.now()));

    switch (action.kind) {
      case 'reset':
        resetSocket(req.socket);
        return;
      case 'hang':
        req.resume(); // drain the body so the client believes it was sent
        return;
      case 'status': {
        req.resume();
        const body =
          action.body === undefined
            ? Buffer.alloc(0)
            : Buffer.isBuffer(action.body)
              ? action.body
              : Buffer.from(typeof action.body === 'string' ? action.body : JSON.stringify(action.body));
        res.writeHead(action.status, { 'content-length': String(body.length), ...action.headers });
        res.end(method === 'HEAD' ? undefined : body);
        return;
      }
      case 'redirect': {
        req.resume();
        const location = action.location ?? new URL(url, action.to ?? opts.upstream).toString();
        res.writeHead(action.status ?? 307, { location, 'content-length': '0', ...action.headers });
        res.end();
        return;
      }
      case 'handler':
        await action.handle(req, res);
        return;
      case 'paginate-tags': {
        await paginateTags(req, res, url);
        return;
      }
      case 'delay':
        await later(action.ms);
        if (stopped) return;
        break;
      case 'hold':
        await action.until.catch(() => undefined);
        if (stopped) return;
        break;
      default:
        break;
    }

    const upRes = await forward(req);
    const status = action.kind === 'headers' && action.status !== undefined ? action.status : (upRes.statusCode ?? 502);
    const headers: OutgoingHttpHeaders = {
      ...endToEnd(upRes.headers),
      ...(action.kind === 'headers' ? action.headers : {}),
    };

    if (action.kind === 'hang-body' || action.kind === 'trickle') {
      const body = await readAll(upRes);
      // Keep (or set) the full Content-Length so the client keeps waiting for the rest.
      if (method !== 'HEAD') headers['content-length'] = String(body.length);
      res.writeHead(status, headers);
      res.flushHeaders();
      if (method === 'HEAD') {
        if (action.kind === 'trickle') res.end();
        return;
      }
      if (action.kind === 'hang-body') {
        const n = Math.min(body.length, action.bytes ?? Math.floor(body.length / 2));
        if (n > 0) res.write(body.subarray(0, n));
        return; // silence: the socket is destroyed on stop()
      }
      const step = Math.max(1, action.chunkBytes ?? 1);
      for (let off = 0; off < body.length; off += step) {
        if (stopped || res.destroyed) return;
        res.write(body.subarray(off, off + step));
        await later(action.intervalMs ?? 50);
      }
      res.end();
      return;
    }

    res.writeHead(status, headers);
    upRes.pipe(res);
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`fault-proxy: upstream error: ${(err as Error).message}`);
    });
  };

  const server = opts.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest)
    : http.createServer(onRequest);
  // Hung requests must not be cut short by node's own timeouts: the client decides.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 5_000;
  // Track raw TCP sockets (for TLS too) so stop() can end every connection, hung or not.
  let accepted = 0;
  server.on('connection', (s: Socket) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined); // a rejected handshake is the point of some tests

  const listen = opts.listen ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, listen, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = listen === '::1' ? `[::1]:${port}` : `${listen}:${port}`;

  function requests(filter?: FaultMatch): ProxyLogEntry[] {
    return filter ? log.filter((e) => matches(filter, e.method, e.url, e.pathname)) : [...log];
  }

  return {
    host,
    url: `${opts.tls ? 'https' : 'http'}://${host}`,
    port,
    upstream: opts.upstream,
    log,
    rules,
    addRule,
    fault: (action, match = {}) => addRule({ ...match, action }),
    clearRules: () => void rules.splice(0, rules.length),
    count: (filter) => requests(filter).length,
    open: (filter) => requests(filter).filter((e) => e.closedAt === undefined).length,
    connections: () => accepted,
    requests,
    counts() {
      const out: Record<string, number> = {};
      for (const e of log) {
        const k = `${e.method} ${e.pathname}`;
        out[k] = (out[k] ?? 0) + 1;
      }
      return out;
    },
    resetLog: () => void log.splice(0, log.length),
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      agent.destroy();
      await closed;
    },
  };
}
