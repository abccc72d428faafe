// What one namespace's review may make pullguard read: only that namespace's objects, named as the
// API server would accept them, each once, and not without bound. The namespace comes from the
// request (the API server sets it), never from the object a client sent.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeApiServer, dockerConfigJson } from '../helpers/kube-api.ts';
import { sample, serve, startRegistries, type Obj, type Registries, type TestServer } from '../server/lib.ts';

let regs: Registries;
let api: KubeApiServer;
let dir: string;
let s: TestServer;

t.before(async () => {
  [regs, api] = await Promise.all([startRegistries(), KubeApiServer.start()]);
  dir = mkdtempSync(join(tmpdir(), 'pullguard-tenancy-'));
  const kubeconfig = await api.writeKubeconfig(dir);
  api.putSecret({
    namespace: 'victim',
    name: 'regcred',
    type: 'kubernetes.io/dockerconfigjson',
    stringData: dockerConfigJson({ [regs.secure.host]: regs.user }),
  });
  s = await serve(regs, { cluster: { kubeconfig, watchNodes: false }, credentials: { nodeDockerConfigs: [] } });
});
t.teardown(async () => {
  await s?.close();
  await Promise.all([regs?.stop(), api?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function podIn(requestNamespace: string | undefined, objectNamespace: string | undefined, secrets: string[]): Obj {
  const body = sample('pod-create-init-digest.json', regs);
  body.request.uid = crypto.randomUUID();
  if (requestNamespace === undefined) delete body.request.namespace;
  else body.request.namespace = requestNamespace;
  if (objectNamespace === undefined) delete body.request.object.metadata.namespace;
  else body.request.object.metadata.namespace = objectNamespace;
  body.request.object.spec.imagePullSecrets = secrets.map((name) => ({ name }));
  return body;
}

t.test(
  "a review for one namespace whose object names another is refused; the other's secrets are not read",
  async (t) => {
    api.requests.length = 0;
    const res = await s.post(podIn('attacker', 'victim', ['regcred']));
    t.equal(res.status, 400);
    t.match(res.json.error, /names namespace "victim".*request is for namespace "attacker"/);
    t.equal(api.requests.filter((r) => r.namespace === 'victim').length, 0, 'nothing in namespace victim was read');
  },
);

t.test('the namespace comes from the request: an object without one is read in the request namespace', async (t) => {
  api.requests.length = 0;
  const r = await s.review(podIn('victim', undefined, ['regcred']));
  t.equal(r.allowed, true, "the victim's own pod opens its registry with its own secret");
  t.ok(api.countRequests({ verb: 'get', resource: 'secrets', namespace: 'victim', name: 'regcred' }) >= 1);
});

t.test('a review without request.namespace for a namespaced object is refused', async (t) => {
  api.requests.length = 0;
  const res = await s.post(podIn(undefined, 'victim', ['regcred']));
  t.equal(res.status, 400);
  t.match(res.json.error, /request\.namespace/);
  t.equal(api.requests.length, 0, 'nothing was read');
});

t.test('pull secret names: only valid Secret names, each once, at most 16 read', async (t) => {
  api.requests.length = 0;
  const names = [
    '.',
    '..',
    'a/b',
    '../x',
    '%2e%2e',
    'Upper',
    ...Array(1000).fill('regcred'),
    ...Array.from({ length: 100 }, (_, i) => `x-${i}`),
  ];
  const r = await s.review(podIn('victim', 'victim', names));
  t.equal(r.allowed, true, 'the valid secret among them still opens the registry');
  const reads = api.requests.filter((q) => q.namespace === 'victim');
  t.ok(reads.length <= 16, `${reads.length} API requests from one review`);
  t.ok(
    api.requests.every(
      (q) => q.verb === 'get' && q.resource === 'secrets' && /^[a-z0-9][-a-z0-9.]*$/.test(q.name ?? ''),
    ),
    'only GETs of single secrets by valid names: no LIST, no other path',
  );
  t.equal(api.requests.filter((q) => q.name === 'regcred').length <= 1, true, 'a repeated name is read once');
});

t.test('a namespace that is no namespace name is refused before anything is read', async (t) => {
  api.requests.length = 0;
  for (const ns of ['..', '.', 'a/b', 'Victim']) {
    const res = await s.post(podIn(ns, ns, ['regcred']));
    t.equal(res.status, 400, ns);
    t.match(res.json.error, /is not a namespace name/, ns);
  }
  t.equal(api.requests.length, 0, 'nothing was read');
});
