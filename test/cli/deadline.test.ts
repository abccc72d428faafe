// `pullguard check --timeout` as a process: against a registry that never answers, and with a
// kubeconfig whose API server never answers, the command ends by its one deadline. Time is counted
// from the first request the process makes (after it has loaded), so a slow start on a busy
// machine does not count against it; the bound is the deadline plus a margin derived from it.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/fixtures.ts';
import { KubeApiServer, makeNode } from '../helpers/kube-api.ts';
import { type SilentServer, silentServer } from '../helpers/silent.ts';

const NODE = join(repoRoot, 'node_modules/.bin/node');
const MAIN = join(repoRoot, 'src/cli/main.ts');
const TIMEOUT = 4_000;
// Each stage of the command waiting its own --timeout (node list, cluster reads, registry) took
// two and a half deadlines; one deadline plus the process's exit stays well inside this.
const MARGIN = TIMEOUT;

let api: KubeApiServer;
let dir: string;
let kubeconfig: string;
let silent: SilentServer;
let registry = '';

t.before(async () => {
  api = await KubeApiServer.start();
  api.putNode(makeNode({ name: 'amd-1', architecture: 'amd64' }));
  dir = mkdtempSync(join(tmpdir(), 'pullguard-deadline-'));
  kubeconfig = await api.writeKubeconfig(dir);
  silent = await silentServer();
  registry = silent.host;
});
t.teardown(async () => {
  await silent.stop();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI; resolves with its exit code, output and when it exited. */
function check(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string; spawned: number; exited: number }> {
  const spawned = performance.now();
  const child = spawn(NODE, [MAIN, 'check', ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr, spawned, exited: performance.now() });
    }),
  );
}

t.test('a registry that never answers: the command ends by --timeout', async (t) => {
  const seen = silent.accepted.length;
  const r = await check([
    `${registry}/demo/app:1.0`,
    '--insecure-registry',
    registry,
    '--timeout',
    `${TIMEOUT}ms`,
    '-o',
    'json',
  ]);
  t.equal(r.code, 3, 'not verified: exit 3');
  t.match(JSON.parse(r.stdout).findings, [{ reason: 'timeout' }]);
  const first = silent.accepted[seen];
  // The CLI's deadline starts once the command runs, so it connects even when its start-up was slow.
  if (!t.ok(first !== undefined, 'the command connected to the registry')) return;
  const ran = r.exited - first!;
  t.ok(ran < TIMEOUT + MARGIN, `ended ${Math.round(ran)} ms after its first request (--timeout ${TIMEOUT} ms)`);
  // The deadline counts from the command's start, not from its first request.
  t.ok(r.exited - r.spawned >= TIMEOUT, 'and not before the deadline');
});

t.test('an API server that never answers: the command ends by --timeout too', async (t) => {
  api.latencyMs = 3_600_000;
  t.teardown(() => (api.latencyMs = 0));
  const manifest = join(dir, 'web.yaml');
  writeFileSync(
    manifest,
    `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: "${registry}/demo/app:1.0"}]\n`,
  );
  // The deadline counts from the command's start and includes loading the Kubernetes client, so on
  // a very busy machine the command may reach its deadline before it asks the API server: then
  // this run says nothing about the API server, and the command is run again with a longer one.
  for (const timeout of [TIMEOUT, 3 * TIMEOUT, 8 * TIMEOUT]) {
    const before = api.requests.length;
    let ended = false;
    // Resolves with when the API server was first asked, or undefined when the command ended without asking it.
    const asked = new Promise<number | undefined>((resolve) => {
      const poll = setInterval(() => {
        if (api.requests.length > before || ended) {
          clearInterval(poll);
          resolve(api.requests.length > before ? performance.now() : undefined);
        }
      }, 5);
    });
    const r = await check([
      '-f',
      manifest,
      '--kubeconfig',
      kubeconfig,
      '--insecure-registry',
      registry,
      '--timeout',
      `${timeout}ms`,
    ]);
    ended = true;
    const first = await asked;
    t.equal(r.code, 3, 'not verified: exit 3');
    t.match(r.stdout, /timeout/, 'the image is a timeout risk');
    t.ok(r.exited - r.spawned >= timeout, 'and not before the deadline');
    if (first === undefined) {
      t.comment(`--timeout ${timeout} ms passed before the command asked the API server; again with a longer one`);
      continue;
    }
    const ran = r.exited - first;
    t.ok(ran < timeout + timeout, `ended ${Math.round(ran)} ms after its first API request (--timeout ${timeout} ms)`);
    return;
  }
  t.fail('the command never asked the API server, even with --timeout 32 s');
});

t.test('an API server that never finishes the TLS handshake: the command still ends by --timeout', async (t) => {
  // undici keeps a connection that is still in its handshake open after its request is aborted,
  // until its own connect timeout (10 s): the process stayed alive that long after its answer.
  const seen = silent.accepted.length;
  const silentKubeconfig = join(dir, 'silent-kubeconfig');
  writeFileSync(
    silentKubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: c, cluster: {server: "https://${registry}", insecure-skip-tls-verify: true}}]`,
      'users: [{name: u, user: {token: not-a-secret}}]',
      'contexts: [{name: x, context: {cluster: c, user: u}}]',
      'current-context: x',
      '',
    ].join('\n'),
  );
  const manifest = join(dir, 'handshake.yaml');
  writeFileSync(
    manifest,
    `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: "${registry}/demo/app:1.0"}]\n`,
  );
  const r = await check([
    '-f',
    manifest,
    '--kubeconfig',
    silentKubeconfig,
    '--insecure-registry',
    registry,
    '--timeout',
    `${TIMEOUT}ms`,
  ]);
  t.equal(r.code, 3, 'not verified: exit 3');
  t.match(r.stdout, /timeout/, 'the image is a timeout risk');
  const first = silent.accepted[seen];
  // The CLI's deadline starts once the command runs, so it connects even when its start-up was slow.
  if (!t.ok(first !== undefined, 'the command connected to the registry')) return;
  const ran = r.exited - first!;
  t.ok(ran < TIMEOUT + MARGIN, `ended ${Math.round(ran)} ms after its first request (--timeout ${TIMEOUT} ms)`);
});
