// A private, real containerd (Debian's `containerd` package) for ground truth: what the runtime a
// node runs does with an image reference. Its own root, state dir, socket and config in a temporary
// folder; no TCP listener (CRI disabled, metrics and debug off), so it only ever talks to the
// loopback registries a test hands it. Pulls go through `ctr images pull --hosts-dir`, the same
// client code (remotes/docker resolver, config.ConfigureHosts, client.Pull + unpack) the CRI plugin
// runs for the kubelet, and everything a pull left behind is removed after it, so every pull is a
// real one and never a cache hit. Recipe: the containerd oracle (its README records the outcomes
// seen with containerd 1.6.20 and registry 2.8.2), turned into a test helper.
//
// Needs root and the `containerd` package (in .ci/apt-packages.txt). Where it cannot run,
// startContainerd() throws with the reason: a test must fail then, never pass without the runtime.
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { killOnExit } from './children.ts';

const run = promisify(execFile);

export const CONTAINERD_BIN = process.env.PULLGUARD_CONTAINERD_BIN ?? '/usr/bin/containerd';
export const CTR_BIN = process.env.PULLGUARD_CTR_BIN ?? '/usr/bin/ctr';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
const NAMESPACE = 'pullguard';

/** containerd's outcome, classified as the oracle does (first match wins; the order matters). */
export type PullClass =
  | 'ok'
  | 'not-found'
  | 'platform'
  | 'unauthorized'
  | 'rate-limited'
  | 'unreachable'
  | 'invalid-reference'
  | 'other';

export interface PullResult {
  pulled: boolean;
  /** containerd's own error text without ctr's "ctr: " prefix; null when pulled */
  error: string | null;
  class: PullClass;
  /** the digest the reference resolved to, when pulled */
  digest: string | null;
}

export interface PullOptions {
  /** 'os/arch[/variant]' as if the node were that platform; default the machine's own (linux/amd64 here) */
  platform?: string;
  /** a certs.d-style folder (writeHostsDir); default: containerd's defaults (loopback is plain HTTP) */
  hostsDir?: string;
  /** 'user:password', as an imagePullSecret would give it */
  user?: string;
  /** one pull's deadline for ctr (Go duration); default 60s */
  timeout?: string;
}

export interface Containerd {
  /** the folder holding root/, state/, the socket, config.toml and containerd.log */
  dir: string;
  socket: string;
  snapshotter: 'overlayfs' | 'native';
  version: string;
  pid: number;
  pull(ref: string, o?: PullOptions): Promise<PullResult>;
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

export interface HostEntry {
  /** 'host:port' as the image reference names it */
  host: string;
  /** default false: plain HTTP */
  tls?: boolean;
  /** CA file the host's certificate is checked against */
  caFile?: string;
}

/**
 * Writes a certs.d-style hosts dir: `<dir>/<host>/hosts.toml`. The empty `[host]` table is needed:
 * containerd 1.6 rejects a hosts.toml with only root-level keys (containerd#10027) and then acts as
 * if there were none.
 */
export function writeHostsDir(dir: string, hosts: HostEntry[]): string {
  for (const h of hosts) {
    mkdirSync(join(dir, h.host), { recursive: true });
    const lines = [`server = "${h.tls ? 'https' : 'http'}://${h.host}"`];
    if (h.caFile) lines.push(`ca = "${h.caFile}"`);
    writeFileSync(join(dir, h.host, 'hosts.toml'), `${lines.join('\n')}\n\n[host]\n`);
  }
  return dir;
}

/** The oracle's classification of containerd's error text. */
export function classifyPullError(e: string | null): PullClass {
  if (!e) return 'ok';
  const has = (...xs: string[]) => xs.some((x) => e.includes(x));
  if (
    has(
      'invalid reference format',
      'failed to parse image reference',
      'object required',
      'invalid reference',
      'invalid checksum digest',
      'unsupported digest algorithm',
      'invalid digest',
    )
  )
    return 'invalid-reference';
  if (has('no match for platform')) return 'platform';
  if (has(' 429 ', '429 Too Many Requests', 'toomanyrequests', 'TOOMANYREQUESTS')) return 'rate-limited';
  if (
    has(
      '401 Unauthorized',
      'pull access denied',
      'authorization failed',
      'insufficient_scope',
      'failed to fetch anonymous token',
      'failed to fetch oauth token',
      '403 Forbidden',
      'no basic auth credentials',
    )
  )
    return 'unauthorized';
  if (
    has(
      'connection refused',
      'no such host',
      'server misbehaving',
      'TLS handshake timeout',
      'i/o timeout',
      'context deadline exceeded',
      'Client.Timeout',
      'x509:',
      'tls: ',
      'server gave HTTP response to HTTPS client',
      'connection reset by peer',
      'EOF',
      'broken pipe',
      'network is unreachable',
      'no route to host',
    )
  )
    return 'unreachable';
  if (has('not found', 'manifest unknown', 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN')) return 'not-found';
  return 'other';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Why containerd cannot run here, or undefined when it can be tried. */
export function containerdMissing(): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'containerd needs root (mounts, its own root folder): run the test as root, as CI does';
  if (!existsSync(CONTAINERD_BIN)) return `${CONTAINERD_BIN} not found: apt-get install containerd`;
  if (!existsSync(CTR_BIN)) return `${CTR_BIN} not found: apt-get install containerd`;
  return undefined;
}

/** A net for a containerd that never answers, not a speed limit: a busy 2-core machine is slow. */
const START_TIMEOUT_MS = 60_000;

export async function startContainerd(): Promise<Containerd> {
  const missing = containerdMissing();
  if (missing) throw new Error(`cannot start a private containerd: ${missing}`);
  // A short folder: a unix socket path must fit in 108 bytes, and ttrpc appends ".ttrpc".
  const dir = mkdtempSync('/tmp/pg-ctrd-');
  const socket = join(dir, 'c.sock');
  const config = join(dir, 'config.toml');
  const logFile = join(dir, 'containerd.log');
  for (const d of ['root', 'state', 'opt']) mkdirSync(join(dir, d));

  // Only paths under dir. The CRI plugin is off: pulls go through ctr, and without CRI nothing listens on TCP.
  const toml = `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
`;
  writeFileSync(config, toml);

  const out = openSync(logFile, 'a');
  const [cmd, args] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'KILL', CONTAINERD_BIN, '--config', config]]
    : [CONTAINERD_BIN, ['--config', config]];
  const proc = spawn(cmd, args, { stdio: ['ignore', out, out] });
  closeSync(out);
  killOnExit(proc);
  let exited = false;
  proc.on('exit', () => (exited = true));
  proc.on('error', () => (exited = true));

  const ctr = (argv: string[], timeoutMs = 120_000) =>
    run(CTR_BIN, ['--address', socket, '--namespace', NAMESPACE, ...argv], {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });

  const stop = async () => {
    if (!exited) {
      const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(killer);
    }
    // Snapshots may still be mounted (overlayfs): unmount before removing the folder.
    try {
      const mounts = readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1] ?? '')
        .filter((m) => m.startsWith(`${dir}/`))
        .sort((a, b) => b.length - a.length);
      for (const m of mounts) await run('umount', ['-l', m]).catch(() => undefined);
    } catch {
      // no /proc: nothing was mounted by us either
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    let version = '';
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!version) {
      if (exited) throw new Error(`containerd exited at start; log:\n${tail(logFile)}`);
      if (Date.now() > deadline)
        throw new Error(`containerd did not answer within ${START_TIMEOUT_MS} ms; log:\n${tail(logFile)}`);
      try {
        const v = await ctr(['--connect-timeout', '1s', 'version'], 10_000);
        version = /Server:[\s\S]*?Version:\s*(\S+)/.exec(v.stdout)?.[1] ?? 'unknown';
      } catch {
        await sleep(200);
      }
    }
    // overlayfs needs a kernel and filesystem that allow overlay mounts; native works everywhere.
    const plugins = (await ctr(['plugins', 'ls'])).stdout;
    const overlayOk = plugins
      .split('\n')
      .some((l) => /^io\.containerd\.snapshotter\.v1\s+overlayfs\s.*\sok\s*$/.test(l));
    const snapshotter = overlayOk ? 'overlayfs' : 'native';

    // wipe: every image, lease, blob and snapshot in our namespace, so the next pull is a real one.
    const lines = (s: string) =>
      s
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
    const wipe = async () => {
      const quiet = (argv: string[]) =>
        ctr(argv).then(
          (r) => r.stdout,
          () => '',
        );
      const images = lines(await quiet(['images', 'ls', '-q']));
      if (images.length) await quiet(['images', 'rm', '--sync', ...images]);
      const leases = lines(await quiet(['leases', 'ls', '-q']));
      if (leases.length) await quiet(['leases', 'rm', '--sync', ...leases]);
      const content = lines(await quiet(['content', 'ls', '-q']));
      if (content.length) await quiet(['content', 'rm', ...content]);
      const snaps = lines(await quiet(['snapshots', '--snapshotter', snapshotter, 'ls']))
        .slice(1)
        .map((l) => l.split(/\s+/)[0]!);
      if (snaps.length) await quiet(['snapshots', '--snapshotter', snapshotter, 'rm', ...snaps]);
    };

    // One pull at a time: each starts and ends by wiping the namespace.
    let queue: Promise<unknown> = Promise.resolve();
    const pullOnce = async (ref: string, o: PullOptions): Promise<PullResult> => {
      await wipe();
      const argv = ['--timeout', o.timeout ?? '60s', 'images', 'pull', '--snapshotter', snapshotter];
      if (o.hostsDir) argv.push('--hosts-dir', o.hostsDir);
      if (o.user) argv.push('--user', o.user);
      if (o.platform) argv.push('--platform', o.platform);
      argv.push('--', ref);
      let error: string | null = null;
      try {
        await ctr(argv);
      } catch (err) {
        const e = err as { stderr?: string; code?: number; message?: string };
        const stderr = e.stderr ?? '';
        // ctr prints "ctr: <error>" as its last line; keep containerd's text without that prefix.
        error =
          stderr
            .split('\n')
            .filter((l) => l.startsWith('ctr: '))
            .at(-1)
            ?.slice('ctr: '.length) ??
          (stderr.replace(/\s+/g, ' ').trim() || `ctr failed: ${e.message ?? e.code}`);
      }
      let digest: string | null = null;
      if (!error) {
        const ls = (await ctr(['images', 'ls'])).stdout;
        const row = lines(ls).find((l) => l.split(/\s+/)[0] === ref);
        digest = row?.split(/\s+/).find((f) => f.startsWith('sha256:')) ?? null;
      }
      await wipe();
      const cls = error ? classifyPullError(error) : 'ok';
      return { pulled: !error, error, class: error && cls === 'ok' ? 'other' : cls, digest };
    };

    return {
      dir,
      socket,
      snapshotter,
      version,
      pid: proc.pid ?? -1,
      pull(ref, o = {}) {
        const p = queue.then(() => pullOnce(ref, o));
        queue = p.catch(() => undefined);
        return p;
      },
      logTail: (n) => tail(logFile, n),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
