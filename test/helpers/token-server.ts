// An in-process token server implementing the distribution token spec (GET with optional Basic
// credentials) and its OAuth2 POST variant, issuing RS256 JWTs with an x5c chain that the
// registry verifies against auth.token.rootcertbundle. It counts every request for benchmarks.
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes, sign, timingSafeEqual } from 'node:crypto';

export interface RegistryUser {
  username: string;
  password: string;
}

/** A string is a glob where `*` matches any run of characters, `/` included. */
export type RepoPattern = string | RegExp;

export interface TokenAcl {
  /** Anyone, anonymous included, may pull these. */
  public?: RepoPattern[];
  /** username -> repositories that user may pull. */
  pull?: Record<string, RepoPattern[]>;
  /** username -> repositories that user may push (and pull). */
  push?: Record<string, RepoPattern[]>;
}

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenServerOptions {
  users: RegistryUser[];
  acl: TokenAcl;
  service: string;
  issuer: string;
  /** RSA private key and the certificate chain (base64 DER, leaf first) for the x5c header. */
  signer: { keyPem: string; x5c: string[] };
  /** Token lifetime in seconds. Default 300. */
  expiresIn?: number;
  /** Accept the OAuth2 POST form. Default true; false answers POST with 404 as GCR once did. */
  oauthPost?: boolean;
  /** Users allowed `registry:catalog:*`. */
  catalogUsers?: string[];
  tls?: { cert: string; key: string };
}

export interface TokenRequestRecord {
  method: string;
  username: string | undefined;
  grantType?: string;
  scopes: string[];
  granted: Access[];
  status: number;
  at: number;
}

export interface TokenCounts {
  total: number;
  get: number;
  post: number;
  /** Tokens issued. */
  issued: number;
  /** 401 answers (bad credentials). */
  unauthorized: number;
  /** 400/404 answers. */
  rejected: number;
  anonymous: number;
  byUser: Record<string, number>;
}

export interface TokenServer {
  url: string;
  /** The realm to put in the registry config: url + '/token'. */
  realm: string;
  service: string;
  issuer: string;
  counts: TokenCounts;
  log: TokenRequestRecord[];
  resetCounters(): void;
  /** Sign a token without an HTTP round trip (for tests that need one ready-made). */
  mint(subject: string, access: Access[], expiresIn?: number): string;
  stop(): Promise<void>;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
}

function anyMatch(patterns: RepoPattern[] | undefined, repo: string): boolean {
  return (patterns ?? []).some((p) => (typeof p === 'string' ? globToRegExp(p) : p).test(repo));
}

/** `repository:host:5000/name:pull,push` — the name may contain ':' so split at the ends only. */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(',')
      .filter(Boolean),
  };
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const expiresDefault = opts.expiresIn ?? 300;
  const refreshTokens = new Map<string, string>();
  const log: TokenRequestRecord[] = [];
  const fresh = (): TokenCounts => ({
    total: 0,
    get: 0,
    post: 0,
    issued: 0,
    unauthorized: 0,
    rejected: 0,
    anonymous: 0,
    byUser: {},
  });
  const counts = fresh();
  const sockets = new Set<Socket>();

  function mint(subject: string, access: Access[], expiresIn = expiresDefault): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: opts.signer.x5c };
    const claims = {
      iss: opts.issuer,
      sub: subject,
      aud: opts.service,
      exp: now + expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(sign('sha256', Buffer.from(input), opts.signer.keyPem))}`;
  }

  function grant(username: string | undefined, scopes: string[]): Access[] {
    const out: Access[] = [];
    for (const s of scopes) {
      const a = parseScope(s);
      if (!a) continue;
      if (a.type === 'registry' && a.name === 'catalog') {
        if (username && opts.catalogUsers?.includes(username)) out.push({ ...a, actions: ['*'] });
        continue;
      }
      if (a.type !== 'repository') continue;
      const mayPush = username !== undefined && anyMatch(opts.acl.push?.[username], a.name);
      const mayPull =
        mayPush ||
        anyMatch(opts.acl.public, a.name) ||
        (username !== undefined && anyMatch(opts.acl.pull?.[username], a.name));
      const actions = a.actions.filter((x) => (x === 'pull' && mayPull) || (x === 'push' && mayPush));
      // Missing access is not an error: the token just carries less (spec), the registry then says no.
      if (actions.length) out.push({ type: a.type, name: a.name, actions });
    }
    return out;
  }

  function checkUser(username: string, password: string): boolean {
    const u = opts.users.find((x) => x.username === username);
    return u !== undefined && safeEqual(u.password, password);
  }

  function send(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  function record(r: Omit<TokenRequestRecord, 'at'>): void {
    log.push({ ...r, at: Date.now() });
    if (r.status === 200) counts.issued++;
    else if (r.status === 401) counts.unauthorized++;
    else counts.rejected++;
    if (r.username === undefined) counts.anonymous++;
    else counts.byUser[r.username] = (counts.byUser[r.username] ?? 0) + 1;
  }

  const unauthorized = { errors: [{ code: 'UNAUTHORIZED', message: 'incorrect username or password' }] };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    counts.total++;
    if (url.pathname !== '/token') {
      send(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'no such endpoint' }] });
      return;
    }
    const issuedAt = new Date().toISOString();

    if (req.method === 'GET') {
      counts.get++;
      const scopes = url.searchParams
        .getAll('scope')
        .flatMap((s) => s.split(' '))
        .filter(Boolean);
      let username: string | undefined;
      const auth = req.headers.authorization;
      if (auth) {
        const m = /^Basic\s+(.+)$/i.exec(auth);
        const decoded = m?.[1] ? Buffer.from(m[1], 'base64').toString('utf8') : '';
        const colon = decoded.indexOf(':');
        const user = colon >= 0 ? decoded.slice(0, colon) : '';
        if (colon < 0 || !checkUser(user, decoded.slice(colon + 1))) {
          record({ method: 'GET', username: user || undefined, scopes, granted: [], status: 401 });
          send(res, 401, unauthorized, { 'www-authenticate': 'Basic realm="pullguard-test-token"' });
          return;
        }
        username = user;
      }
      const granted = grant(username, scopes);
      const token = mint(username ?? '', granted);
      const body: Record<string, unknown> = {
        token,
        access_token: token,
        expires_in: expiresDefault,
        issued_at: issuedAt,
      };
      if (username && url.searchParams.get('offline_token') === 'true') {
        const rt = randomBytes(16).toString('hex');
        refreshTokens.set(rt, username);
        body.refresh_token = rt;
      }
      record({ method: 'GET', username, scopes, granted, status: 200 });
      send(res, 200, body);
      return;
    }

    if (req.method === 'POST') {
      counts.post++;
      const form = new URLSearchParams(await readBody(req));
      const grantType = form.get('grant_type') ?? undefined;
      const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      const reject = (status: number, body: object, username?: string): void => {
        record({ method: 'POST', username, grantType, scopes, granted: [], status });
        send(res, status, body);
      };
      if (opts.oauthPost === false)
        return reject(404, { errors: [{ code: 'NOT_FOUND', message: 'POST not supported' }] });
      if (!form.get('client_id')) {
        return reject(
          400,
          { error: 'invalid_request', error_description: 'missing client_id' },
          form.get('username') || undefined,
        );
      }
      let username: string | undefined;
      if (grantType === 'password') {
        const user = form.get('username') ?? '';
        if (!checkUser(user, form.get('password') ?? ''))
          return reject(401, { error: 'invalid_grant', ...unauthorized }, user || undefined);
        username = user;
      } else if (grantType === 'refresh_token') {
        username = refreshTokens.get(form.get('refresh_token') ?? '');
        if (!username) return reject(401, { error: 'invalid_grant', ...unauthorized });
      } else {
        return reject(400, { error: 'unsupported_grant_type' });
      }
      const granted = grant(username, scopes);
      const token = mint(username, granted);
      const body: Record<string, unknown> = {
        access_token: token,
        expires_in: expiresDefault,
        issued_at: issuedAt,
        scope: granted.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' '),
      };
      if (form.get('access_type') === 'offline') {
        const rt = randomBytes(16).toString('hex');
        refreshTokens.set(rt, username);
        body.refresh_token = rt;
      }
      record({ method: 'POST', username, grantType, scopes, granted, status: 200 });
      send(res, 200, body);
      return;
    }

    res.writeHead(405, { allow: 'GET, POST', 'content-length': '0' });
    res.end();
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: String(err) });
      else res.destroy();
    });
  };
  const server = opts.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest)
    : http.createServer(onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    realm: `${url}/token`,
    service: opts.service,
    issuer: opts.issuer,
    counts,
    log,
    resetCounters() {
      Object.assign(counts, fresh());
      log.splice(0, log.length);
    },
    mint,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
