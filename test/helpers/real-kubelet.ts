// A real kubelet (v1.20.2, built by test/kube-lab/build.sh from the same source as the lab's
// kube-apiserver) with its own containerd, registered as a node of a test/kube-lab API server:
// pods bound to it really pull, or really end in ErrImagePull / ImagePullBackOff with the
// kubelet's own texts. test/kubelet-lab/kubelet-up.sh does the work (a private mount namespace, no
// CNI: hostNetwork pods only); this starts it in a temporary folder on free loopback ports, and
// stops it by its PID files. A guard process stops it too if the test process dies first.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1Node } from '@kubernetes/client-node';
import { repoRoot } from './fixtures.ts';
import { LAB_STATE, type KubeLab } from './kube-lab.ts';
import { freePort } from './registry.ts';
import { waitFor } from './wait.ts';

const SCRIPTS = join(repoRoot, 'test', 'kubelet-lab');
export const KUBELET_BIN = join(LAB_STATE, 'bin', 'kubelet');
export const PAUSE_TAR = join(LAB_STATE, 'pause', 'pause-oci.tar');
/** The static pause binary the pause image holds (amd64): a process that runs until killed. */
export const PAUSE_BIN = join(LAB_STATE, 'pause', 'rootfs', 'pause');
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export interface KubeletRegistry {
  /** as in image names: 127.0.0.1:PORT */
  host: string;
  /** the CA file that signs its certificate; absent: plain HTTP */
  caFile?: string;
}

export interface StartRealKubeletOptions {
  lab: KubeLab;
  /** registries containerd is told about (hosts.toml): plain HTTP or TLS with their CA */
  registries?: KubeletRegistry[];
  /** default pg-kubelet-1 */
  node?: string;
  /** a net for a kubelet that never registers; default 240 s (2 busy cores) */
  startTimeoutMs?: number;
}

export interface RealKubelet {
  node: string;
  /** the instance's folder: state, logs (logs/kubelet.log, logs/containerd.log), PID files */
  dir: string;
  /** the Node as the kubelet registered it */
  nodeObject: V1Node;
  logTail(which: 'kubelet' | 'containerd', lines?: number): string;
  /**
   * What `kubectl logs` would show of the container's latest run (its CRI log file, which the
   * kubelet writes under /var/log/pods in its private namespace; the API server cannot reach the
   * kubelet on this node's address), or undefined when there is none yet.
   */
  containerLog(namespace: string, pod: string, container: string): string | undefined;
  stop(): Promise<void>;
}

/** Why the real kubelet cannot run here, or undefined when everything it needs is present. */
export function missingForRealKubelet(): string | undefined {
  if (process.getuid?.() !== 0) return 'the real kubelet needs root (a private mount namespace, containerd, runc)';
  for (const [file, what] of [
    [KUBELET_BIN, 'the kubelet'],
    [PAUSE_TAR, 'the pause image'],
  ] as const)
    if (!existsSync(file))
      return `${file} (${what}) is missing: run "bash .ci/install-packages" (test/kube-lab/build.sh builds it)`;
  for (const bin of ['/usr/bin/containerd', '/usr/bin/ctr', '/usr/sbin/runc'])
    if (!existsSync(bin)) return `${bin} is missing: run "bash .ci/install-packages" (.ci/apt-packages.txt)`;
  return undefined;
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function script(name: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [join(SCRIPTS, name)],
      { env: { ...process.env, ...env }, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${name} failed (${err.message.split('\n')[0]}):\n${stdout}${stderr}`));
        else resolve(stdout + stderr);
      },
    );
  });
}

/** Processes whose command line names `dir`: none is left after stop(). */
export function processesIn(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(dir)) found.push(`${pid} ${cmd.trim()}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

export async function startRealKubelet(o: StartRealKubeletOptions): Promise<RealKubelet> {
  const missing = missingForRealKubelet();
  if (missing) throw new Error(`cannot start a real kubelet: ${missing}`);
  const node = o.node ?? 'pg-kubelet-1';
  // short: containerd's socket path must fit in 108 bytes
  const dir = mkdtempSync(join(tmpdir(), 'pg-kubelet-'));
  const [kport, hport] = [await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    KUBELET_LAB_DIR: dir,
    KUBELET_LAB_KUBECONFIG: o.lab.kubeconfig,
    KUBELET_NODE_NAME: node,
    KUBELET_PORT: String(kport),
    KUBELET_HEALTHZ_PORT: String(hport),
    KUBELET_LAB_REGISTRIES: (o.registries ?? [])
      .map((r) => `${r.host}=${r.caFile ? `https:${r.caFile}` : 'http'}`)
      .join(' '),
    LAB_STATE,
  };
  // The guard: when this process dies (even by SIGKILL), the kernel sends it TERM (pdeathsig) and
  // it runs kubelet-down.sh, so no kubelet or containerd outlives the test. stop() kills it first.
  const guardCmd = `trap 'bash ${join(SCRIPTS, 'kubelet-down.sh')}; rm -rf "$KUBELET_LAB_DIR"; exit 0' TERM; while :; do sleep 3600 & wait $!; done`;
  let guard: ChildProcess | undefined;
  if (SETPRIV)
    guard = spawn(SETPRIV, ['--pdeathsig', 'TERM', 'bash', '-c', guardCmd], {
      env: { ...process.env, ...env },
      stdio: 'ignore',
      detached: true,
    });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      await script('kubelet-down.sh', env, 120_000);
    } finally {
      guard?.kill('SIGKILL');
      // the overlay upper dirs and the snapshots are plain folders once the namespace is gone
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    }
  };
  try {
    // Free ports are picked, then bound by the kubelet: another process may take one in between,
    // so a bind failure starts over with new ports.
    for (let attempt = 1; ; attempt++) {
      try {
        await script('kubelet-up.sh', env, o.startTimeoutMs ?? 240_000);
        break;
      } catch (err) {
        const log = join(dir, 'logs', 'kubelet.log');
        if (attempt >= 3 || !/address already in use/.test(tail(log, 50))) throw err;
        await script('kubelet-down.sh', env, 120_000);
        renameSync(log, `${log}.${attempt}`); // kubelet-up.sh reads this log for the registration
        env.KUBELET_PORT = String(await freePort());
        env.KUBELET_HEALTHZ_PORT = String(await freePort());
      }
    }
    const core = o.lab.kc().makeApiClient(CoreV1Api);
    const nodeObject = await waitFor(
      async () => {
        const n = await core.readNode({ name: node });
        return n.status?.nodeInfo?.architecture ? n : undefined;
      },
      { what: `the Node ${node} with its platform`, timeoutMs: 60_000, everyMs: 250 },
    );
    return {
      node,
      dir,
      nodeObject,
      logTail: (which, lines) => tail(join(dir, 'logs', `${which}.log`), lines),
      containerLog(namespace, pod, container) {
        const pods = join(dir, 'ns', 'var-log', 'upper', 'pods');
        const podDir = existsSync(pods)
          ? readdirSync(pods).find((d) => d.startsWith(`${namespace}_${pod}_`))
          : undefined;
        if (!podDir) return undefined;
        const cdir = join(pods, podDir, container);
        const runs = existsSync(cdir) ? readdirSync(cdir).filter((f) => /^\d+\.log$/.test(f)) : [];
        const last = runs.sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10)).at(-1);
        // CRI log lines: "<time> stdout|stderr F|P <text>"
        return last === undefined
          ? undefined
          : readFileSync(join(cdir, last), 'utf8')
              .split('\n')
              .filter(Boolean)
              .map((l) => l.replace(/^\S+ (stdout|stderr) [FP] /, ''))
              .join('\n');
      },
      stop,
    };
  } catch (err) {
    const logs = `kubelet.log:\n${tail(join(dir, 'logs', 'kubelet.log'))}\ncontainerd.log:\n${tail(join(dir, 'logs', 'containerd.log'), 10)}`;
    await stop().catch(() => undefined);
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
}
