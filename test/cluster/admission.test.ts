// The kubelet's keyring and the nodes' platforms, from a cluster: the admission handler with the
// real cluster reader and node watcher (@kubernetes/client-node against the fixture API server),
// and real registries behind the images.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdmissionHandler } from '../../src/admission/handler.ts';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.ts';
import { NodeWatcher } from '../../src/cluster/nodes.ts';
import { ClusterReader } from '../../src/cluster/reader.ts';
import { REQUIRED_ACCESS } from '../../src/cluster/access.ts';
import { validateConfig, type ConfigInput } from '../../src/config/schema.ts';
import { keyringFromFiles } from '../../src/credentials/files.ts';
import { PodCredentials } from '../../src/podcheck/credentials.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import { parsePlatform } from '../../src/platform/index.ts';
import { PodCheck } from '../../src/podcheck/podcheck.ts';
import { createLogger } from '../../src/server/logger.ts';
import { runCheck } from '../../src/cli/check.ts';
import { KubeApiServer, dockerConfigJson, dockercfg, makeNode } from '../helpers/kube-api.ts';
import { runInProcess } from '../helpers/cli.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { registryClientFor } from '../../src/app/build.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
let reg: TestRegistry;
let api: KubeApiServer;
let dir: string;
let kubeconfig: string;

t.before(async () => {
  [reg, api] = await Promise.all([startRegistry({ auth: 'htpasswd', users: [alice] }), KubeApiServer.start()]);
  await reg.pushImage('private/app', '1.0', { platform: 'linux/amd64' });
  await reg.pushIndex('private/multi', '1.0', ['linux/amd64', 'linux/arm64/v8']);
  dir = mkdtempSync(join(tmpdir(), 'pullguard-cluster-'));
  kubeconfig = await api.writeKubeconfig(dir);
  for (const ns of ['shop', 'blog', 'lab']) {
    api.putSecret({
      namespace: ns,
      name: 'regcred',
      type: 'kubernetes.io/dockerconfigjson',
      stringData: dockerConfigJson({ [reg.host]: alice }),
    });
  }
  api.putSecret({
    namespace: 'shop',
    name: 'legacy',
    type: 'kubernetes.io/dockercfg',
    stringData: dockercfg({ [reg.host]: alice }),
  });
  api.putSecret({
    namespace: 'shop',
    name: 'stale',
    type: 'kubernetes.io/dockerconfigjson',
    stringData: dockerConfigJson({ [reg.host]: { ...alice, password: 'expired' } }),
  });
  api.putSecret({ namespace: 'shop', name: 'opaque', type: 'Opaque', stringData: { password: 'x' } });
  api.putSecret({
    namespace: 'shop',
    name: 'broken',
    type: 'kubernetes.io/dockerconfigjson',
    stringData: { '.dockerconfigjson': '{"auths":' },
  });
  api.putServiceAccount('shop', 'default', ['regcred']);
  api.putServiceAccount('blog', 'default', []);
  api.putServiceAccount('blog', 'builder', ['regcred']);
  api.putNode(makeNode({ name: 'arm-1', architecture: 'arm64' }));
});
t.teardown(async () => {
  await Promise.all([reg.stop(), api.close()]);
  rmSync(dir, { recursive: true, force: true });
});

async function handlerFor(input: ConfigInput = {}, nodeConfigs: string[] = []) {
  const config = validateConfig({ deadline: 5000, ...input });
  const kc = loadKubeConfig({ kubeconfig, env: {} })!.kc;
  const nodes = new NodeWatcher(kc, {});
  nodes.start();
  await nodes.whenReady(5000);
  const engine = new Preflight(config, registryClientFor(config, [reg.caPem!]));
  const podCheck = new PodCheck({
    engine,
    credentials: new PodCredentials(
      new ClusterReader(kc, { cacheTtlMs: 30_000 }),
      nodeConfigs.length ? keyringFromFiles(nodeConfigs) : null,
    ),
    // As startServer does: configured platforms win over the nodes'.
    platforms: config.platforms.map((p) => parsePlatform(p)),
    nodes,
  });
  const handler = new AdmissionHandler({ config, podCheck, logger: createLogger('silent') });
  t.teardown(async () => {
    await nodes.stop();
    await engine.close();
  });
  return handler;
}

const sample = JSON.parse(
  readFileSync(new URL('../fixtures/admission/deployment-create.json', import.meta.url), 'utf8'),
) as { request: Record<string, any> };

/** The captured Deployment CREATE, moved to `namespace` with `image` and template spec changes. */
function deployment(namespace: string, image: string, spec: Record<string, unknown> = {}) {
  const body = structuredClone(sample) as { request: Record<string, any> };
  body.request.uid = `uid-${Math.random()}`;
  body.request.namespace = namespace;
  body.request.object.metadata.namespace = namespace;
  const podSpec = body.request.object.spec.template.spec;
  podSpec.containers[0].image = image;
  Object.assign(podSpec, spec);
  return body;
}

function pod(namespace: string, image: string, spec: Record<string, unknown> = {}) {
  const body = deployment(namespace, image);
  const template = body.request.object.spec.template;
  body.request.kind = { group: '', version: 'v1', kind: 'Pod' };
  body.request.object = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace },
    spec: { ...template.spec, ...spec },
  };
  return body;
}

t.test("must show: a Deployment without pull secrets takes its ServiceAccount's", async (t) => {
  const handler = await handlerFor({ platforms: ['linux/amd64'] });
  const allowed = await handler.review(deployment('shop', `${reg.host}/private/app:1.0`));
  t.equal(allowed.response.allowed, true, 'the default ServiceAccount holds regcred');
  t.equal(allowed.response.warnings, undefined);
  const denied = await handler.review(deployment('blog', `${reg.host}/private/app:1.0`));
  t.equal(denied.response.allowed, false);
  t.equal(denied.response.status?.code, 403);
  t.match(
    denied.response.status?.message,
    `no imagePullSecret in namespace "blog", ServiceAccount "default" matches ${reg.host}`,
  );
  const builder = await handler.review(
    deployment('blog', `${reg.host}/private/app:1.0`, { serviceAccountName: 'builder' }),
  );
  t.equal(builder.response.allowed, true, 'a named ServiceAccount with the secret');
});

t.test('pod pull secrets: right, legacy type, wrong, missing, wrong type, broken', async (t) => {
  const handler = await handlerFor({ platforms: ['linux/amd64'] });
  const image = `${reg.host}/private/app:1.0`;
  const secrets = (...names: string[]) => ({ imagePullSecrets: names.map((name) => ({ name })) });
  t.equal((await handler.review(pod('shop', image, secrets('regcred')))).response.allowed, true);
  t.equal(
    (await handler.review(pod('shop', image, secrets('legacy')))).response.allowed,
    true,
    'kubernetes.io/dockercfg',
  );
  const stale = await handler.review(pod('shop', image, secrets('stale')));
  t.equal(stale.response.allowed, false);
  t.match(stale.response.status?.message, 'secret shop/stale');
  const stalePlusGood = await handler.review(pod('shop', image, secrets('stale', 'regcred')));
  t.equal(stalePlusGood.response.allowed, true, 'every matching credential is tried, in order');
  const missing = await handler.review(pod('shop', image, secrets('nope')));
  t.equal(missing.response.allowed, false);
  t.match(missing.response.status?.message, 'imagePullSecret "nope" does not exist in namespace "shop"');
  const opaque = await handler.review(pod('shop', image, secrets('opaque')));
  t.match(opaque.response.status?.message, 'has type Opaque, which the kubelet ignores');
  const broken = await handler.review(pod('shop', `${reg.host}/private/multi:1.0`, secrets('broken', 'regcred')));
  t.equal(broken.response.allowed, false, 'an unparseable pull secret fails every pull of the pod, as in the kubelet');
  t.match(broken.response.status?.message, 'imagePullSecret "broken" does not parse');
});

t.test('a pull secret RBAC keeps from pullguard: a warning that says how to let it read, never a denial', async (t) => {
  api.putSecret({
    namespace: 'lab',
    name: 'locked',
    type: 'kubernetes.io/dockerconfigjson',
    stringData: dockerConfigJson({ [reg.host]: alice }),
  });
  api.forbid({ resource: 'secrets', namespace: 'lab', name: 'locked' });
  t.teardown(() => api.allowAll());
  const handler = await handlerFor({ platforms: ['linux/amd64'] });
  const r = await handler.review(pod('lab', `${reg.host}/private/app:1.0`, { imagePullSecrets: [{ name: 'locked' }] }));
  t.equal(r.response.allowed, true, 'our own blindness is no reason to deny');
  t.match(r.response.warnings?.[0], 'imagePullSecrets (locked) could not be read');
  t.match(r.response.warnings?.[0], 'RBAC get on secrets');
});

t.test("node credentials join after the pod's", async (t) => {
  const file = join(dir, 'node-config.json');
  writeFileSync(
    file,
    JSON.stringify({ auths: { [reg.host]: { username: alice.username, password: alice.password } } }),
  );
  const handler = await handlerFor({ platforms: ['linux/amd64'] }, [file]);
  t.equal((await handler.review(pod('lab', `${reg.host}/private/app:1.0`))).response.allowed, true);
});

t.test('isolation: the cache never tells a namespace without credentials that a private image exists', async (t) => {
  const handler = await handlerFor({ platforms: ['linux/amd64'] });
  const image = `${reg.host}/private/app:1.0`;
  t.equal(
    (await handler.review(pod('shop', image, { imagePullSecrets: [{ name: 'regcred' }] }))).response.allowed,
    true,
  );
  const other = await handler.review(pod('blog', image));
  t.equal(other.response.allowed, false, 'same image, no credentials: still denied');
});

t.test('a review whose cluster reads and registry answers are cached is answered at once, as before', async (t) => {
  const handler = await handlerFor({ platforms: ['linux/amd64'] });
  const image = `${reg.host}/private/app:1.0`;
  const secrets = (...names: string[]) => ({ imagePullSecrets: names.map((name) => ({ name })) });
  const bodies = [
    deployment('shop', image),
    deployment('blog', image, { serviceAccountName: 'builder' }),
    pod('shop', image, secrets('stale', 'regcred')),
    pod('shop', image, secrets('nope', 'regcred')),
  ];
  for (const body of bodies) {
    const first = handler.review(body);
    t.ok(first instanceof Promise, 'the first review asks the cluster and the registry');
    const answer = await first;
    t.equal(answer.response.allowed, true);
    const again = handler.review(body);
    t.notOk(again instanceof Promise, 'the same review again: answered without a promise');
    t.same(again, answer, 'with the same answer');
  }
  // blog's default ServiceAccount was never read: the cache has no answer for it.
  const other = handler.review(deployment('blog', image));
  t.ok(other instanceof Promise);
  t.equal((await other).response.allowed, false, 'and it is denied, as before');
});

t.test('must show: an amd64-only image on arm64-only nodes is denied; on mixed nodes warned', async (t) => {
  const armOnly = await handlerFor();
  const creds = { imagePullSecrets: [{ name: 'regcred' }] };
  const denied = await armOnly.review(pod('shop', `${reg.host}/private/app:1.0`, creds));
  t.equal(denied.response.allowed, false);
  t.match(denied.response.status?.message, 'built for linux/amd64 only');
  t.equal(
    (await armOnly.review(pod('shop', `${reg.host}/private/multi:1.0`, creds))).response.allowed,
    true,
    'the index has arm64',
  );
  api.putNode(makeNode({ name: 'amd-1', architecture: 'amd64' }));
  t.teardown(() => api.deleteNode('amd-1'));
  const mixed = await handlerFor();
  const warned = await mixed.review(pod('shop', `${reg.host}/private/app:1.0`, creds));
  t.equal(warned.response.allowed, true);
  t.match(warned.response.warnings?.[0], 'linux/arm64');
});

t.test('pullPolicy Never: allowed when a node reports the image, warned when none does', async (t) => {
  const image = `${reg.host}/private/app:1.0`;
  api.putNode(makeNode({ name: 'arm-2', architecture: 'arm64', images: [[image]] }));
  t.teardown(() => api.deleteNode('arm-2'));
  const handler = await handlerFor();
  const present = await handler.review(
    pod('lab', image, { containers: [{ name: 'app', image, imagePullPolicy: 'Never' }] }),
  );
  t.same([present.response.allowed, present.response.warnings], [true, undefined]);
  const other = `${reg.host}/private/app:2.0`;
  const absent = await handler.review(
    pod('lab', other, { containers: [{ name: 'app', image: other, imagePullPolicy: 'Never' }] }),
  );
  t.equal(absent.response.allowed, true, 'never denied: node image lists are capped');
  t.match(absent.response.warnings?.[0], 'no node reports having it');
});

t.test('images behind a node credential provider are warned about, not denied', async (t) => {
  const handler = await handlerFor({ platforms: ['linux/amd64'], credentials: { providerImages: [reg.host] } });
  const r = await handler.review(pod('lab', `${reg.host}/private/app:1.0`));
  t.equal(r.response.allowed, true);
  t.match(r.response.warnings?.[0], 'credential provider');
});

t.test('the cluster is only read within the granted access', async (t) => {
  t.same(api.requestsOutside(REQUIRED_ACCESS), []);
  t.ok(api.countRequests({ verb: 'get', resource: 'secrets' }) > 0);
});

t.test("out of cluster: pullguard check reads the namespace's secrets with --kubeconfig", async (t) => {
  const manifest = join(dir, 'deploy.yaml');
  writeFileSync(
    manifest,
    `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: "${reg.host}/private/multi:1.0"}]\n`,
  );
  writeFileSync(join(dir, 'ca.pem'), reg.caPem!);
  const run = (args: string[]) => runInProcess(runCheck, args);
  const shop = await run([
    '-f',
    manifest,
    '--kubeconfig',
    kubeconfig,
    '--namespace',
    'shop',
    '--registry-ca',
    join(dir, 'ca.pem'),
    '-o',
    'json',
  ]);
  t.equal(shop.code, 0, "shop's default ServiceAccount has the secret");
  const blog = await run([
    '-f',
    manifest,
    '--kubeconfig',
    kubeconfig,
    '--namespace',
    'blog',
    '--registry-ca',
    join(dir, 'ca.pem'),
    '-o',
    'json',
  ]);
  t.equal(blog.code, 1);
  t.match(JSON.parse(blog.stdout).findings[0].message, 'ServiceAccount "default"');
  const none = await run(['-f', manifest, '--registry-ca', join(dir, 'ca.pem')]);
  t.match(none.stderr, 'checking with docker config files only');
});
