// The bundle `npm run build` makes (what the npm package and the container run): what `pullguard
// check` loads of undici, read from esbuild's metafile, and the bundled check against a real registry
// (token auth over TLS, then through a real HTTP proxy) — the parts of undici it carries must work
// on their own. The Kubernetes client: the bundle carries the API groups pullguard calls, and the
// bundled check reads a pod's pull secret through it from a real (fixture) API server.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Metafile } from 'esbuild';
import { buildCli } from '../../scripts/build.ts';
import { PROXY_ONLY_HOST, proxyAvailable, startProxy, type TestProxy } from '../helpers/http-proxy.ts';
import { dockerConfigJson, KubeApiServer, makeNode } from '../helpers/kube-api.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { scratch } from '../manifests/lib.ts';

const unavailable = proxyAvailable();
if (unavailable) throw new Error(unavailable);

const run = promisify(execFile);
const dir = scratch(t, 'pullguard-bundle-');
const outdir = join(dir, 'dist');
const erin = { username: 'erin', password: 'erin-Bundle-pw' };
let metafile: Metafile;
let registry: TestRegistry;
let proxy: TestProxy;
let api: KubeApiServer;

t.before(async () => {
  // each assigned as it comes, so that teardown stops what started even when another part failed
  await Promise.all([
    buildCli({ outdir, metafile: true }).then((m) => (metafile = m!)),
    startRegistry({ auth: 'token', tls: true, users: [erin], extraNames: [PROXY_ONLY_HOST] }).then(
      (r) => (registry = r),
    ),
    startProxy().then((p) => (proxy = p)),
    KubeApiServer.start().then((a) => (api = a)),
  ]);
  await registry.pushImage('team/app', '1.0');
  const auth = Buffer.from(`${erin.username}:${erin.password}`).toString('base64');
  const port = registry.direct.host.split(':')[1];
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({ auths: { [registry.host]: { auth }, [`${PROXY_ONLY_HOST}:${port}`]: { auth } } }),
  );
  writeFileSync(join(dir, 'ca.pem'), registry.caPem!);
});
t.teardown(async () => {
  await Promise.all([registry?.stop(), proxy?.stop(), api?.close()]);
});

/** Input files of the chunks a check without a cluster loads: main, the check command, its composition (the engine), and their static imports. */
function checkPathInputs(): string[] {
  const outputs = metafile.outputs;
  const byEntry = (entry: string) => Object.keys(outputs).find((o) => outputs[o]!.entryPoint === entry);
  const start = ['src/cli/main.ts', 'src/cli/check.ts', 'src/app/check.ts'].map((e) => {
    const out = byEntry(e);
    if (!out) throw new Error(`no chunk for ${e}`);
    return out;
  });
  const seen = new Set<string>();
  const queue = [...start];
  while (queue.length) {
    const out = queue.pop()!;
    if (seen.has(out)) continue;
    seen.add(out);
    for (const i of outputs[out]!.imports) if (i.kind === 'import-statement' && !i.external) queue.push(i.path);
  }
  return [...seen].flatMap((o) => Object.keys(outputs[o]!.inputs));
}

t.test(
  "check loads undici's dispatchers and request API, not its index (fetch, WebSocket, caches, mocks)",
  async (t) => {
    const inputs = checkPathInputs().filter((i) => i.startsWith('node_modules/undici/'));
    for (const part of ['lib/dispatcher/agent.js', 'lib/dispatcher/proxy-agent.js', 'lib/api/api-request.js'])
      t.ok(inputs.includes(`node_modules/undici/${part}`), `${part} is on the check path`);
    t.notOk(inputs.includes('node_modules/undici/index.js'), 'not the index');
    t.same(
      // (fetch's body and form-data helpers are bundled for the request API's body mixins)
      inputs.filter((i) =>
        /\/lib\/(web\/(fetch\/index|websocket|eventsource|cache|cookies)|mock|cache|interceptor)/.test(i),
      ),
      [],
      'nothing of fetch itself, WebSocket, EventSource, cookies, the cache stores, the mocks or the interceptors',
    );
  },
);

/** The bundled command, as the package's bin runs it. */
async function bundled(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$|^KUBECONFIG$/i.test(k)));
  const common = ['--docker-config', join(dir, 'config.json'), '--registry-ca', join(dir, 'ca.pem'), '-o', 'json'];
  try {
    const { stdout } = await run(process.execPath, [join(outdir, 'cli', 'main.js'), 'check', ...args, ...common], {
      env: { ...clean, NO_COLOR: '1', ...env },
    });
    return { code: 0, report: JSON.parse(stdout) };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, report: e.stdout ? JSON.parse(e.stdout) : { stderr: e.stderr } };
  }
}

t.test('the bundled check verifies an image on a token registry over TLS', async (t) => {
  const r = await bundled([`${registry.host}/team/app:1.0`]);
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : JSON.stringify(r.report));
  t.equal(r.report.findings?.[0]?.reason, 'available');
});

t.test('the bundled check verifies it through an HTTP proxy (CONNECT tunnel)', async (t) => {
  const image = `${PROXY_ONLY_HOST}:${registry.direct.host.split(':')[1]}/team/app:1.0`;
  const r = await bundled([image], { HTTPS_PROXY: proxy.url });
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : JSON.stringify(r.report));
  t.equal(r.report.findings?.[0]?.reason, 'available');
  t.ok(
    proxy.requests().some((line) => line.startsWith(`CONNECT ${PROXY_ONLY_HOST}:`)),
    'the proxy tunnelled it',
  );
});

t.test('the Kubernetes client: the API groups pullguard calls, not every one client-node has', async (t) => {
  const gen = 'node_modules/@kubernetes/client-node/dist/gen/apis/';
  const apis = Object.values(metafile.outputs)
    // the API classes (a module whose code was all left out keeps an empty initialiser of ~200 bytes)
    .flatMap((o) => Object.entries(o.inputs).filter(([, v]) => v.bytesInOutput > 10_000))
    .map(([i]) => i)
    .filter((i) => i.startsWith(gen))
    .map((i) => i.slice(gen.length));
  t.same(
    [...new Set(apis)].sort(),
    ['CoordinationV1Api.js', 'CoreV1Api.js'],
    'core/v1 and coordination/v1 (src/cluster/k8s-parts.ts names them; lists are plain GETs, list-watch.ts)',
  );
});

t.test("the bundled check reads the pod's pull secret from the cluster", async (t) => {
  api.putNode(makeNode({ name: 'amd-1', architecture: 'amd64' }));
  api.putSecret({
    namespace: 'shop',
    name: 'regcred',
    type: 'kubernetes.io/dockerconfigjson',
    stringData: dockerConfigJson({ [registry.host]: erin }),
  });
  const kubeconfig = await api.writeKubeconfig(dir);
  const manifest = join(dir, 'pod.yaml');
  writeFileSync(
    manifest,
    [
      'apiVersion: v1',
      'kind: Pod',
      'metadata: {name: web, namespace: shop}',
      'spec:',
      '  imagePullSecrets: [{name: regcred}]',
      `  containers: [{name: web, image: "${registry.host}/team/app:1.0"}]`,
      '',
    ].join('\n'),
  );
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$|^KUBECONFIG$/i.test(k)));
  const args = [
    'check',
    '-f',
    manifest,
    '--kubeconfig',
    kubeconfig,
    '--registry-ca',
    join(dir, 'ca.pem'),
    '-o',
    'json',
  ];
  const r = await run(process.execPath, [join(outdir, 'cli', 'main.js'), ...args], {
    env: { ...clean, NO_COLOR: '1' },
  }).then(
    (ok) => ({ code: 0, stdout: ok.stdout, stderr: ok.stderr }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
  t.equal(r.code, 0, `exit 0 ${r.stderr}`);
  t.equal(JSON.parse(r.stdout).findings?.[0]?.reason, 'available', 'verified with the secret');
  t.ok(
    api.requests.some((q) => q.resource === 'secrets' && q.name === 'regcred' && q.authenticated),
    'read from the API server',
  );
});
