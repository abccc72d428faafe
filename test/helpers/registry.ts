// Starts a real CNCF distribution registry (Debian's docker-registry, 2.8.x) on loopback for a test,
// in one of the three set-ups users meet: anonymous HTTP, htpasswd over TLS, token auth.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { sharedPki, type TestPki } from './pki.ts';
import { startTokenServer, type RegistryUser, type TokenAcl, type TokenServer } from './token-server.ts';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';
import {
  pushImage,
  pushIndex,
  pushTags,
  type PushImageOptions,
  type PushIndexOptions,
  type PushedImage,
  type PushedIndex,
} from './images.ts';

export type { RegistryUser, TokenAcl } from './token-server.ts';

export const REGISTRY_BIN = process.env.PULLGUARD_REGISTRY_BIN ?? '/usr/bin/docker-registry';

export interface StartRegistryOptions {
  /** Default 'none'. */
  auth?: 'none' | 'htpasswd' | 'token';
  /** Serve TLS with the test CA's server certificate. Default: true for htpasswd, false otherwise. */
  tls?: boolean;
  /** Users for htpasswd or the token server (an admin that may push everything is always added). */
  users?: RegistryUser[];
  /**
   * Token mode only. Default: every configured user may pull everything, anonymous nothing.
   * Anonymous pulls are allowed on `acl.public`.
   */
  acl?: TokenAcl;
  token?: { service?: string; issuer?: string; expiresIn?: number; oauthPost?: boolean; catalogUsers?: string[] };
  /** Put a pass-through fault proxy in front; `host`/`url` then point at the proxy. */
  proxy?: boolean;
  /** Token mode: put a fault proxy in front of the token server too; the realm then points at it. */
  proxyToken?: boolean;
  /** Reuse a PKI; default the process-wide shared one. */
  pki?: TestPki;
  /** Extra names for the server certificate (a dedicated certificate is issued). */
  extraNames?: string[];
  /** Default 20 s: CI runners with 2 cores can be slow. */
  startTimeoutMs?: number;
}

export interface TestRegistry {
  /** '127.0.0.1:PORT' — the proxy's when `proxy` is set. */
  host: string;
  /** 'http(s)://127.0.0.1:PORT' — the proxy's when `proxy` is set. */
  url: string;
  /** The registry itself, bypassing any proxy (used for pushes so they stay out of the counts). */
  direct: { host: string; url: string };
  auth: 'none' | 'htpasswd' | 'token';
  tls: boolean;
  caFile?: string;
  caPem?: string;
  pki: TestPki;
  /** The users from opts (without the admin). */
  users: RegistryUser[];
  /** Pushes everything; used by the push helpers. */
  admin: RegistryUser;
  tokenServer?: TokenServer;
  proxy?: FaultProxy;
  /** With `proxyToken`: the proxy the realm points at (token requests can be faulted too). */
  tokenProxy?: FaultProxy;
  /** undici dispatcher that trusts the test CA (plain Agent for HTTP registries). */
  dispatcher: Agent;
  /** Temp dir with config.yml, storage, registry.log, htpasswd. */
  dir: string;
  logFile: string;
  logTail(lines?: number): string;
  pid: number;
  /** Zero the token server counters and the proxy log (e.g. after pushing fixtures). */
  resetCounters(): void;
  pushImage(repo: string, tag: string | undefined, opts?: PushImageOptions): Promise<PushedImage>;
  pushIndex(repo: string, tag: string | undefined, platforms: string[], opts?: PushIndexOptions): Promise<PushedIndex>;
  pushTags(repo: string, tags: string[], opts?: PushImageOptions): Promise<PushedImage>;
  stop(): Promise<void>;
}

// --- process hygiene: no registry outlives the test process ---------------------------------

const live = new Set<{ proc: ChildProcess; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const r of live) {
      try {
        r.proc.kill('SIGKILL');
      } catch {
        // already gone
      }
      rmSync(r.dir, { recursive: true, force: true });
    }
  });
}

// setpriv --pdeathsig makes the kernel kill the registry even if node dies by SIGKILL.
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

// --- helpers -------------------------------------------------------------------------------

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

function htpasswdLine(u: RegistryUser): string {
  // -B bcrypt (the only format distribution accepts), -C 4 keeps start-up fast.
  return execFileSync('htpasswd', ['-nbB', '-C', '4', u.username, u.password], { encoding: 'utf8' }).trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A net for a registry that never starts, not a speed limit: on a busy machine start-up takes long. */
const START_TIMEOUT_MS = 90_000;

interface Running {
  proc: ChildProcess;
  exited: () => boolean;
}

function spawnRegistry(configFile: string, logFile: string): Running {
  const out = openSync(logFile, 'a');
  // Drop REGISTRY_* from the environment: distribution reads them as config overrides.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_')) env[k] = v;
  const [cmd, args] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'KILL', REGISTRY_BIN, 'serve', configFile]]
    : [REGISTRY_BIN, ['serve', configFile]];
  const proc = spawn(cmd, args, { stdio: ['ignore', out, out], env });
  closeSync(out);
  let gone = false;
  proc.on('exit', () => (gone = true));
  proc.on('error', () => (gone = true));
  return { proc, exited: () => gone };
}

async function waitReady(
  r: Running,
  logFile: string,
  port: number,
  scheme: string,
  dispatcher: Agent,
  deadline: number,
): Promise<'ready' | 'bind-failed' | 'exited' | 'timeout'> {
  const listening = `listening on 127.0.0.1:${port}`;
  while (Date.now() < deadline) {
    if (r.exited()) {
      return /address already in use/i.test(tail(logFile, 20)) ? 'bind-failed' : 'exited';
    }
    // Only trust the port once our own process says it bound it (another process may own it).
    if (tail(logFile, 200).includes(listening)) {
      try {
        const res = await request(`${scheme}://127.0.0.1:${port}/v2/`, {
          dispatcher,
          headersTimeout: 2_000,
          bodyTimeout: 2_000,
        });
        await res.body.dump();
        if (res.statusCode === 200 || res.statusCode === 401) return 'ready';
      } catch {
        // not yet
      }
    }
    await sleep(50);
  }
  return 'timeout';
}

// --- main ----------------------------------------------------------------------------------

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  installExitHook();
  const auth = opts.auth ?? 'none';
  const tls = opts.tls ?? auth === 'htpasswd';
  const pki = opts.pki ?? (await sharedPki());
  const serverCert = opts.extraNames?.length
    ? await pki.issue(`server-${randomBytes(4).toString('hex')}`, {
        names: ['127.0.0.1', '::1', 'localhost', ...opts.extraNames],
      })
    : pki.server;
  const users = opts.users ?? [];
  const admin: RegistryUser = { username: 'pullguard-admin', password: randomBytes(12).toString('hex') };
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-registry-'));
  const logFile = join(dir, 'registry.log');
  const configFile = join(dir, 'config.yml');
  const storage = join(dir, 'storage');
  mkdirSync(storage);
  const dispatcher = new Agent({ connect: tls ? { ca: pki.caPem } : {}, keepAliveTimeout: 1_000 });
  const scheme = tls ? 'https' : 'http';

  let tokenServer: TokenServer | undefined;
  let proxy: FaultProxy | undefined;
  let tokenProxy: FaultProxy | undefined;
  let running: Running | undefined;
  const cleanup = async () => {
    if (running) {
      running.proc.kill('SIGKILL');
      for (const r of live) if (r.proc === running.proc) live.delete(r);
    }
    await proxy?.stop();
    await tokenProxy?.stop();
    await tokenServer?.stop();
    await dispatcher.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const authConfig: Record<string, unknown> = {};
    if (auth === 'htpasswd') {
      const file = join(dir, 'htpasswd');
      writeFileSync(file, `${[admin, ...users].map(htpasswdLine).join('\n')}\n`);
      authConfig.htpasswd = { realm: 'pullguard-test', path: file };
    } else if (auth === 'token') {
      const service = opts.token?.service ?? 'pullguard-test-registry';
      const issuer = opts.token?.issuer ?? 'pullguard-test-issuer';
      const acl: TokenAcl = opts.acl ?? { pull: Object.fromEntries(users.map((u) => [u.username, ['*']])) };
      tokenServer = await startTokenServer({
        users: [admin, ...users],
        acl: { ...acl, push: { ...acl.push, [admin.username]: ['*'] } },
        catalogUsers: [admin.username, ...(opts.token?.catalogUsers ?? [])],
        service,
        issuer,
        signer: { keyPem: pki.tokenSigner.keyPem, x5c: [pki.tokenSigner.certDerBase64] },
        ...(opts.token?.expiresIn !== undefined ? { expiresIn: opts.token.expiresIn } : {}),
        ...(opts.token?.oauthPost !== undefined ? { oauthPost: opts.token.oauthPost } : {}),
        ...(tls ? { tls: { cert: serverCert.certPem, key: serverCert.keyPem } } : {}),
      });
      let realm = tokenServer.realm;
      if (opts.proxyToken) {
        tokenProxy = await startFaultProxy({
          upstream: tokenServer.url,
          ...(tls ? { upstreamCa: pki.caPem, tls: { cert: serverCert.certPem, key: serverCert.keyPem } } : {}),
        });
        realm = `${tokenProxy.url}/token`;
      }
      authConfig.token = { realm, service, issuer, rootcertbundle: pki.caFile };
    }

    const deadline = Date.now() + (opts.startTimeoutMs ?? START_TIMEOUT_MS);
    let port = 0;
    let lastOutcome = '';
    for (let attempt = 1; attempt <= 5; attempt++) {
      port = await freePort();
      // JSON is valid YAML; distribution reads it as its config.yml.
      const config = {
        version: '0.1',
        log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
        storage: {
          filesystem: { rootdirectory: storage },
          delete: { enabled: true },
          maintenance: { uploadpurging: { enabled: false } },
        },
        http: {
          addr: `127.0.0.1:${port}`,
          secret: randomBytes(16).toString('hex'),
          headers: { 'X-Content-Type-Options': ['nosniff'] },
          ...(tls ? { tls: { certificate: serverCert.certFile, key: serverCert.keyFile } } : {}),
        },
        ...(Object.keys(authConfig).length ? { auth: authConfig } : {}),
      };
      writeFileSync(configFile, JSON.stringify(config, null, 2));
      writeFileSync(logFile, `--- attempt ${attempt}, port ${port}\n`, { flag: 'a' });
      running = spawnRegistry(configFile, logFile);
      const entry = { proc: running.proc, dir };
      live.add(entry);
      const outcome = await waitReady(running, logFile, port, scheme, dispatcher, deadline);
      if (outcome === 'ready') break;
      running.proc.kill('SIGKILL');
      live.delete(entry);
      running = undefined;
      lastOutcome = outcome;
      if (outcome !== 'bind-failed') break;
    }
    if (!running) {
      // The temp dir is removed on failure, so the error carries what is needed to debug.
      throw new Error(
        `${REGISTRY_BIN} did not start (${lastOutcome}) within ${opts.startTimeoutMs ?? START_TIMEOUT_MS} ms\n` +
          `config: ${readFileSync(configFile, 'utf8').replace(/\s+/g, ' ')}\nlog tail:\n${tail(logFile)}`,
      );
    }

    const directHost = `127.0.0.1:${port}`;
    const direct = { host: directHost, url: `${scheme}://${directHost}` };
    if (opts.proxy) {
      proxy = await startFaultProxy({
        upstream: direct.url,
        ...(tls ? { upstreamCa: pki.caPem, tls: { cert: serverCert.certPem, key: serverCert.keyPem } } : {}),
      });
    }

    const proc = running;
    const reg: TestRegistry = {
      host: proxy?.host ?? direct.host,
      url: proxy?.url ?? direct.url,
      direct,
      auth,
      tls,
      ...(tls ? { caFile: pki.caFile, caPem: pki.caPem } : {}),
      pki,
      users,
      admin,
      ...(tokenServer ? { tokenServer } : {}),
      ...(proxy ? { proxy } : {}),
      ...(tokenProxy ? { tokenProxy } : {}),
      dispatcher,
      dir,
      logFile,
      logTail: (n) => tail(logFile, n),
      pid: proc.proc.pid ?? -1,
      resetCounters() {
        tokenServer?.resetCounters();
        proxy?.resetLog();
        tokenProxy?.resetLog();
      },
      pushImage: (repo, tag, o) => pushImage(reg, repo, tag, o),
      pushIndex: (repo, tag, platforms, o) => pushIndex(reg, repo, tag, platforms, o),
      pushTags: (repo, tags, o) => pushTags(reg, repo, tags, o),
      async stop() {
        if (!proc.exited()) {
          // Storage is thrown away, so there is nothing to shut down gracefully.
          const gone = new Promise<void>((resolve) => proc.proc.once('exit', () => resolve()));
          proc.proc.kill('SIGKILL');
          await gone;
        }
        await cleanup();
      },
    };
    return reg;
  } catch (err) {
    await cleanup();
    throw err;
  }
}
