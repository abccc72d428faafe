// A real kube-apiserver (v1.20, built by test/kube-lab/build.sh) with its own etcd, on loopback, for
// the lab tier: watches, field selectors, Events, Leases and status subresources as clusters serve
// them. Each call starts a private pair on free ports in a temporary folder, so two checkouts (or
// two test files) never share or collide; stop() ends both and removes the folder, and the kernel
// kills them (setpriv --pdeathsig) if the test process dies first.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';
import { sharedPki } from './pki.ts';
import { freePort } from './registry.ts';
import { waitFor } from './wait.ts';
import { killOnExit } from './children.ts';

/** Where test/kube-lab/build.sh put the build (its LAB_STATE). */
export const LAB_STATE = process.env.PULLGUARD_KUBE_LAB_STATE ?? '/var/cache/pullguard-kube-lab';
export const KUBE_APISERVER_BIN = join(LAB_STATE, 'bin', 'kube-apiserver');
const ETCD_BIN = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => existsSync(p)) ?? 'etcd';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export interface LabUser {
  name: string;
  groups?: string[];
}

export interface KubeLab {
  url: string;
  /** system:masters */
  adminToken: string;
  /** bearer token per extra user */
  tokens: Record<string, string>;
  /** kubeconfig file for the admin (current context) */
  kubeconfig: string;
  /** a kubeconfig file for one of the extra users */
  kubeconfigFor(user: string): string;
  /** a client configuration for the admin */
  kc(): KubeConfig;
  /** the API server's serving certificate (self-signed), for TLS verification */
  caFile: string;
  dir: string;
  /** etcd's and kube-apiserver's process ids */
  pids: number[];
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

export interface StartLabOptions {
  /** users besides the admin, authenticated by static tokens, authorized by RBAC */
  users?: LabUser[];
  /** default 180 s: kube-apiserver's first start on 2 busy cores takes a while */
  startTimeoutMs?: number;
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function launch(cmd: string, args: string[], logFile: string): { proc: ChildProcess; exited: () => boolean } {
  const out = openSync(logFile, 'a');
  const [c, a] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', cmd, ...args]] : [cmd, args];
  const proc = spawn(c, a, { stdio: ['ignore', out, out] });
  closeSync(out);
  killOnExit(proc);
  let gone = false;
  proc.on('exit', () => (gone = true));
  proc.on('error', () => (gone = true));
  return { proc, exited: () => gone };
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

/** Whether a process answers `check` before it exits or the deadline passes. */
function poll(
  check: () => Promise<boolean>,
  exited: () => boolean,
  deadline: number,
): Promise<'ready' | 'exited' | 'timeout'> {
  const state = async () => (exited() ? ('exited' as const) : (await check()) ? ('ready' as const) : undefined);
  return waitFor(state, { what: 'the process', timeoutMs: Math.max(0, deadline - Date.now()), everyMs: 200 }).catch(
    () => 'timeout' as const,
  );
}

export async function startKubeLab(opts: StartLabOptions = {}): Promise<KubeLab> {
  if (!existsSync(KUBE_APISERVER_BIN))
    throw new Error(
      `${KUBE_APISERVER_BIN} is missing: run "bash .ci/install-packages" (it builds kube-apiserver with test/kube-lab/build.sh, about 4 minutes once per machine)`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-kube-lab-'));
  const deadline = Date.now() + (opts.startTimeoutMs ?? 180_000);
  const etcdLog = join(dir, 'etcd.log');
  const apiLog = join(dir, 'kube-apiserver.log');
  const procs: ChildProcess[] = [];
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  const cleanup = async () => {
    for (const p of procs.reverse()) await stopProcess(p);
    await agent.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    const adminToken = randomBytes(24).toString('hex');
    const tokens: Record<string, string> = {};
    const lines = [`${adminToken},lab-admin,lab-admin-uid,"system:masters"`];
    for (const u of opts.users ?? []) {
      tokens[u.name] = randomBytes(24).toString('hex');
      lines.push(`${tokens[u.name]},${u.name},${u.name}-uid,"${(u.groups ?? []).join(',')}"`);
    }
    writeFileSync(join(dir, 'tokens.csv'), `${lines.join('\n')}\n`);
    mkdirSync(join(dir, 'certs'));

    // Free ports are picked, then bound by the child: another process may take one in between, so a
    // bind failure starts over with new ports.
    let apiPort = 0;
    let last = '';
    for (let attempt = 1; attempt <= 4 && !apiPort; attempt++) {
      const [client, peer, api] = [await freePort(), await freePort(), await freePort()];
      rmSync(join(dir, 'etcd'), { recursive: true, force: true });
      const etcd = launch(
        ETCD_BIN,
        [
          '--name=lab',
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=http://127.0.0.1:${client}`,
          `--advertise-client-urls=http://127.0.0.1:${client}`,
          `--listen-peer-urls=http://127.0.0.1:${peer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
          `--initial-cluster=lab=http://127.0.0.1:${peer}`,
          '--initial-cluster-state=new',
        ],
        etcdLog,
      );
      procs.push(etcd.proc);
      const etcdUp = await poll(
        async () => {
          const res = await request(`http://127.0.0.1:${client}/health`, { headersTimeout: 2000, bodyTimeout: 2000 });
          const body = await res.body.text();
          // our own etcd, not another process that holds the port: it says so in its log
          return (
            res.statusCode === 200 &&
            body.includes('true') &&
            tail(etcdLog, 400).includes(`serving insecure client requests on 127.0.0.1:${client}`)
          );
        },
        etcd.exited,
        deadline,
      );
      if (etcdUp !== 'ready') {
        last = `etcd ${etcdUp}:\n${tail(etcdLog)}`;
        await stopProcess(etcd.proc);
        procs.pop();
        if (/address already in use/.test(last)) continue;
        break;
      }
      const api_ = launch(
        KUBE_APISERVER_BIN,
        [
          `--etcd-servers=http://127.0.0.1:${client}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${api}`,
          '--insecure-port=0',
          `--cert-dir=${join(dir, 'certs')}`,
          `--service-account-key-file=${join(dir, 'sa.pub')}`,
          `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
          '--service-account-issuer=https://kubernetes.default.svc',
          `--token-auth-file=${join(dir, 'tokens.csv')}`,
          '--authorization-mode=RBAC',
          // No controller-manager: the ServiceAccount plugin would reject every pod (no default SA).
          '--disable-admission-plugins=ServiceAccount',
          '--service-cluster-ip-range=10.0.0.0/24',
          // 127.0.0.1 is not a valid Endpoints address
          '--endpoint-reconciler-type=none',
          '--profiling=false',
          '--v=1',
        ],
        apiLog,
      );
      procs.push(api_.proc);
      const apiUp = await poll(
        async () => {
          const res = await request(`https://127.0.0.1:${api}/readyz`, {
            dispatcher: agent,
            headers: { authorization: `Bearer ${adminToken}` },
            headersTimeout: 5000,
            bodyTimeout: 5000,
          });
          await res.body.dump();
          return res.statusCode === 200;
        },
        api_.exited,
        deadline,
      );
      if (apiUp === 'ready') {
        apiPort = api;
        break;
      }
      last = `kube-apiserver ${apiUp}:\n${tail(apiLog)}`;
      for (const p of procs.splice(0).reverse()) await stopProcess(p);
      if (!/address already in use/.test(last)) break;
    }
    if (!apiPort) throw new Error(`the lab did not start: ${last}`);

    const url = `https://127.0.0.1:${apiPort}`;
    const caFile = join(dir, 'certs', 'apiserver.crt');
    const kubeconfigFor = (user: string, token: string) => {
      const file = join(dir, `kubeconfig-${user}`);
      writeFileSync(
        file,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'lab', cluster: { server: url, 'certificate-authority': caFile } }],
          users: [{ name: user, user: { token } }],
          contexts: [{ name: 'lab', context: { cluster: 'lab', user } }],
          'current-context': 'lab',
        }),
      );
      return file;
    };
    const kubeconfig = kubeconfigFor('lab-admin', adminToken);
    await agent.close();
    return {
      url,
      adminToken,
      tokens,
      kubeconfig,
      kubeconfigFor: (user) => {
        const token = tokens[user];
        if (!token) throw new Error(`no lab user ${user}`);
        return kubeconfigFor(user, token);
      },
      kc() {
        const kc = new KubeConfig();
        kc.loadFromFile(kubeconfig);
        return kc;
      },
      caFile,
      dir,
      pids: procs.map((p) => p.pid ?? -1),
      logTail: (n) => tail(apiLog, n),
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * The lab's API server behind a fault proxy (to count, hold or fail its requests), and an admin
 * client configuration that reaches it through the proxy. The caller stops the proxy.
 */
export async function labThroughProxy(lab: KubeLab): Promise<{ proxy: FaultProxy; kc: KubeConfig }> {
  const pki = await sharedPki();
  const proxy = await startFaultProxy({
    upstream: lab.url,
    upstreamCa: readFileSync(lab.caFile, 'utf8'),
    tls: { cert: pki.server.certPem, key: pki.server.keyPem },
  });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'proxy', server: proxy.url, caData: Buffer.from(pki.caPem).toString('base64') }],
    users: [{ name: 'admin', token: lab.adminToken }],
    contexts: [{ name: 'proxy', cluster: 'proxy', user: 'admin' }],
    currentContext: 'proxy',
  });
  return { proxy, kc };
}
