// A real podman (Debian's `podman`, rootful) for ground truth on what a CRI-O node does with its
// registries.conf: podman and CRI-O read it with the same library (containers/image). Private
// storage (vfs, `--root`/`--runroot` in a temporary folder), its own HOME, containers.conf and
// storage.conf, and the registries.conf a test gives through CONTAINERS_REGISTRIES_CONF; pulls only
// reach what that file names (loopback registries). Every pull is removed after it, so none is a
// cache hit. Where podman cannot run (not root, not installed) startPodman() throws: a test must
// fail then, never pass without the runtime.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const PODMAN_BIN = process.env.PULLGUARD_PODMAN_BIN ?? '/usr/bin/podman';

export interface PodmanPull {
  pulled: boolean;
  /** podman's last error line, without "Error: "; null when pulled */
  error: string | null;
  class: 'ok' | 'not-found' | 'blocked' | 'short-name' | 'unreachable' | 'other';
}

export interface Podman {
  dir: string;
  version: string;
  /** pulls `ref` with `registriesConf` (a file) as the node's registries.conf */
  pull(ref: string, registriesConf: string): Promise<PodmanPull>;
  stop(): Promise<void>;
}

export function classifyPodmanError(e: string | null): PodmanPull['class'] {
  if (!e) return 'ok';
  if (/is blocked in|registry .* is blocked/i.test(e)) return 'blocked';
  if (/short-name/i.test(e)) return 'short-name';
  if (/manifest unknown|not found|name unknown/i.test(e)) return 'not-found';
  if (/connection refused|no such host|dial tcp|i\/o timeout/i.test(e)) return 'unreachable';
  return 'other';
}

export async function startPodman(): Promise<Podman> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    throw new Error(
      'cannot run podman: it needs root here (rootful, private storage): run the test as root, as CI does',
    );
  if (!existsSync(PODMAN_BIN)) throw new Error(`cannot run podman: ${PODMAN_BIN} not found: apt-get install podman`);
  const dir = mkdtempSync('/tmp/pg-podman-');
  const root = join(dir, 'root');
  const runroot = join(dir, 'run');
  writeFileSync(join(dir, 'containers.conf'), '');
  writeFileSync(
    join(dir, 'storage.conf'),
    `[storage]\ndriver = "vfs"\nrunroot = "${runroot}"\ngraphroot = "${root}"\n`,
  );
  const env = (conf: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: dir,
    CONTAINERS_REGISTRIES_CONF: conf,
    CONTAINERS_CONF: join(dir, 'containers.conf'),
    CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
  });
  const podman = (args: string[], conf: string) =>
    run(PODMAN_BIN, ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs', ...args], {
      env: env(conf),
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  const empty = join(dir, 'empty.conf');
  writeFileSync(empty, '');
  const { stdout } = await podman(['version', '--format', '{{.Client.Version}}'], empty);
  let queue: Promise<unknown> = Promise.resolve();
  const pullOnce = async (ref: string, conf: string): Promise<PodmanPull> => {
    let error: string | null = null;
    try {
      await podman(['pull', '--quiet', ref], conf);
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? err);
      const last = stderr.trim().split('\n').filter(Boolean).at(-1) ?? stderr;
      error = last.replace(/^Error: /, '');
    } finally {
      await podman(['rmi', '--all', '--force'], conf).catch(() => undefined);
    }
    return { pulled: error === null, error, class: classifyPodmanError(error) };
  };
  return {
    dir,
    version: stdout.trim(),
    pull(ref, conf) {
      const p = queue.then(() => pullOnce(ref, conf));
      queue = p.catch(() => undefined);
      return p;
    },
    async stop() {
      await queue.catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
