// A pod's keyring: forSite reads the cluster the first time (a promise), and answers the same
// context at once afterwards, from the reader's cache, without a request (reviews answered without
// a promise).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.ts';
import { ClusterReader } from '../../src/cluster/reader.ts';
import { Keyring } from '../../src/credentials/keyring.ts';
import { PodCredentials } from '../../src/podcheck/credentials.ts';
import type { PodSpecSite } from '../../src/workload/images.ts';
import { KubeApiServer, dockerConfigJson } from '../helpers/kube-api.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
const api = await KubeApiServer.start();
const dir = mkdtempSync(join(tmpdir(), 'pullguard-podcreds-'));
const kubeconfig = await api.writeKubeconfig(dir);
t.teardown(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

api.putSecret({
  namespace: 'shop',
  name: 'regcred',
  type: 'kubernetes.io/dockerconfigjson',
  stringData: dockerConfigJson({ 'registry.example:5000': alice }),
});
api.putSecret({ namespace: 'shop', name: 'opaque', type: 'Opaque', stringData: { password: 'x' } });
api.putSecret({
  namespace: 'shop',
  name: 'broken',
  type: 'kubernetes.io/dockerconfigjson',
  stringData: { '.dockerconfigjson': '{"auths":' },
});
api.putServiceAccount('shop', 'default', ['regcred']);
api.putServiceAccount('shop', 'builder', ['regcred', 'opaque']);
api.forbid({ resource: 'secrets', namespace: 'shop', name: 'locked' });

const pod = (spec: Record<string, unknown>): PodSpecSite => ({ kind: 'Pod', specPath: 'spec', spec, template: false });
const template = (spec: Record<string, unknown>): PodSpecSite => ({
  kind: 'Deployment',
  specPath: 'spec.template.spec',
  spec,
  template: true,
});
const secrets = (...names: string[]) => ({ imagePullSecrets: names.map((name) => ({ name })) });

/** Every kind of pod the kubelet builds a keyring for, with its reads. */
const SITES: [string, PodSpecSite][] = [
  ['its own pull secret', pod(secrets('regcred'))],
  ['a missing, a wrong-type and an unparseable secret', pod(secrets('nope', 'opaque', 'broken', 'regcred'))],
  ['a secret pullguard may not read', pod(secrets('locked'))],
  [
    'names the API server would refuse, and too many',
    pod(secrets('a/b', 'Bad_Name', ...Array.from({ length: 20 }, (_, i) => `s${i}`))),
  ],
  ['a pod without pull secrets', pod({})],
  ["a template without pull secrets: the default ServiceAccount's", template({})],
  ["a template's own ServiceAccount", template({ serviceAccountName: 'builder' })],
  ['a ServiceAccount that does not exist', template({ serviceAccountName: 'ghost' })],
  ['a ServiceAccount name that is none', template({ serviceAccountName: 'Not/A/Name' })],
  ['a template with pull secrets of its own', template({ serviceAccountName: 'builder', ...secrets('own') })],
];

t.test('with a cluster: waited for before the reads, then the same context at once, without a request', async (t) => {
  const kc = loadKubeConfig({ kubeconfig, env: {} })!.kc;
  const node = new Keyring();
  const credentials = new PodCredentials(new ClusterReader(kc, { cacheTtlMs: 60_000 }), node);
  for (const [what, site] of SITES) {
    const needsReads = what !== 'a pod without pull secrets' && what !== 'a ServiceAccount name that is none';
    const first = credentials.forSite(site, 'shop');
    t.equal(first instanceof Promise, needsReads, `${what}: ${needsReads ? 'read first' : 'needs no read at all'}`);
    const read = await first;
    const requests = api.requests.length;
    const again = credentials.forSite(site, 'shop');
    t.notOk(again instanceof Promise, `${what}: then at once`);
    t.same(again, read, `${what}: the same context`);
    t.equal(api.requests.length, requests, `${what}: no request`);
  }
});

t.test('a read that failed is not an answer: forSite asks again', async (t) => {
  api.holdAnswers(t);
  const kc = loadKubeConfig({ kubeconfig, env: {} })!.kc;
  const credentials = new PodCredentials(new ClusterReader(kc, { cacheTtlMs: 60_000, requestTimeoutMs: 100 }), null);
  const site = pod(secrets('regcred'));
  const failed = await credentials.forSite(site, 'shop');
  t.same(failed.unreadSecrets, ['regcred']);
  const again = credentials.forSite(site, 'shop');
  t.ok(again instanceof Promise, 'asked again');
  await again;
});

t.test('without a cluster, and with stand-in stores, the answer needs no read: the same at once', async (t) => {
  const stores = { lookup: async () => ({ credentials: [], failures: [] }) };
  const ways = [
    new PodCredentials(null, new Keyring()),
    new PodCredentials(null, null, [stores]),
    new PodCredentials(null, null, [], { stores, scope: 'the docker config files given', secretsUnread: true }),
  ];
  for (const credentials of ways)
    for (const [what, site] of SITES) t.notOk(credentials.forSite(site, 'shop') instanceof Promise, what);
});
