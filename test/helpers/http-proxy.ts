// Starts Debian's tinyproxy on loopback for a test, with a temporary config and, optionally, basic
// proxy authentication. Go's proxy rules never send loopback addresses to a proxy, so the test
// registries get a host name that only the proxy can resolve: tinyproxy runs in its own mount
// namespace (unshare) where a temporary hosts file is bound over /etc/hosts.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './registry.ts';
import { waitFor } from './wait.ts';

export const TINYPROXY_BIN = '/usr/bin/tinyproxy';

/** A name no DNS answers: only the proxy's hosts file maps it (to 127.0.0.1). */
export const PROXY_ONLY_HOST = 'registry.pullguard.test';

export interface TestProxy {
  /** http://127.0.0.1:PORT, without credentials */
  url: string;
  /** with the credentials, when auth is set */
  authUrl: string;
  port: number;
  /** tinyproxy's log */
  log(): string;
  /** the request lines it logged ("CONNECT host:port HTTP/1.1", "GET http://… HTTP/1.1") */
  requests(): string[];
  stop(): Promise<void>;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** Whether this machine lets a test start tinyproxy in a mount namespace of its own. */
export function proxyAvailable(): string | undefined {
  if (!existsSync(TINYPROXY_BIN)) return `${TINYPROXY_BIN} is not installed (bash .ci/install-packages)`;
  const probe = spawnSync('unshare', ['-rm', 'true'], { encoding: 'utf8' });
  if (probe.status !== 0) return `unshare -rm is not permitted here: ${probe.stderr.trim()}`;
  return undefined;
}

export async function startProxy(
  opts: {
    auth?: { username: string; password: string };
    hosts?: string[];
    /** CONNECT only to these ports (squid's usual rule allows 443 alone); default any */
    connectPorts?: number[];
  } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-tinyproxy-'));
  const logFile = join(dir, 'tinyproxy.log');
  const hostsFile = join(dir, 'hosts');
  const configFile = join(dir, 'tinyproxy.conf');
  writeFileSync(
    hostsFile,
    ['127.0.0.1 localhost', ...[PROXY_ONLY_HOST, ...(opts.hosts ?? [])].map((h) => `127.0.0.1 ${h}`), ''].join('\n'),
  );
  writeFileSync(logFile, '');
  const start = async (port: number) => {
    writeFileSync(
      configFile,
      [
        `Port ${port}`,
        'Listen 127.0.0.1',
        'Timeout 30',
        `LogFile "${logFile}"`,
        'LogLevel Info',
        'MaxClients 64',
        'Allow 127.0.0.1',
        'DisableViaHeader Yes',
        ...(opts.auth ? [`BasicAuth ${opts.auth.username} ${opts.auth.password}`] : []),
        ...(opts.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
        '',
      ].join('\n'),
    );
    const script = `mount --bind '${hostsFile}' /etc/hosts && exec ${TINYPROXY_BIN} -d -c '${configFile}'`;
    const args = ['-rm', 'sh', '-c', script];
    const [cmd, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', 'unshare', ...args]] : ['unshare', args];
    const proc: ChildProcess = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += String(d)));
    let exited = false;
    proc.on('exit', () => (exited = true));
    const started = await waitFor(() => exited || readFileSync(logFile, 'utf8').includes('Starting main loop'), {
      what: 'tinyproxy to start',
      timeoutMs: 20_000,
      everyMs: 50,
    }).catch(() => false);
    if (started && !exited) return proc;
    proc.kill('SIGKILL');
    throw new Error(`tinyproxy did not start on port ${port}: ${stderr.trim()} ${readFileSync(logFile, 'utf8')}`);
  };
  let proc: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 3 && !proc; attempt++) {
    port = await freePort();
    try {
      proc = await start(port);
    } catch (err) {
      if (attempt === 2) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  const running = proc!;
  process.once('exit', () => running.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  const log = () => readFileSync(logFile, 'utf8');
  const proxy: TestProxy = {
    url,
    authUrl: opts.auth
      ? `http://${encodeURIComponent(opts.auth.username)}:${encodeURIComponent(opts.auth.password)}@127.0.0.1:${port}`
      : url,
    port,
    log,
    requests: () =>
      log()
        .split('\n')
        .map((l) => /Request \(file descriptor \d+\): (.*)$/.exec(l)?.[1])
        .filter((l): l is string => Boolean(l)),
    async stop() {
      if (running.exitCode === null) {
        const gone = new Promise((r) => running.once('exit', r));
        running.kill('SIGKILL');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return proxy;
}
