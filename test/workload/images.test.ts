import t from 'tap';
import { POD_SPEC_KINDS } from '../../src/workload/kinds.ts';
import {
  defaultPullPolicy,
  flattenLists,
  imageUsesOf,
  podSpecSite,
  pullSecretNames,
} from '../../src/workload/images.ts';

const spec = {
  imagePullSecrets: [{ name: 'regcred' }, { name: '' }, {}],
  initContainers: [
    { name: 'migrate', image: 'ghcr.io/acme/migrate:1' },
    { name: 'proxy', image: 'envoyproxy/envoy:v1.30', restartPolicy: 'Always' },
  ],
  containers: [
    { name: 'web', image: 'nginx:1.25', imagePullPolicy: 'Always' },
    { name: 'empty', image: '' },
  ],
  ephemeralContainers: [{ name: 'debug', image: 'busybox' }],
  volumes: [
    { name: 'models', image: { reference: 'quay.io/acme/models:v2', pullPolicy: 'IfNotPresent' } },
    { name: 'cfg', configMap: { name: 'x' } },
  ],
};

function wrap(kind: string, path: readonly string[]): Record<string, unknown> {
  let inner: Record<string, unknown> = structuredClone(spec) as Record<string, unknown>;
  for (const key of [...path].reverse()) inner = { [key]: inner };
  return { apiVersion: 'v1', kind, metadata: { name: 'demo', namespace: 'shop' }, ...inner };
}

t.test('every kind with a pod spec yields all its images', async (t) => {
  for (const k of POD_SPEC_KINDS) {
    const site = podSpecSite(wrap(k.kind, k.specPath));
    t.ok(site, `${k.kind}: pod spec found`);
    const uses = imageUsesOf(site!);
    t.same(
      uses.map((u) => u.image),
      ['ghcr.io/acme/migrate:1', 'envoyproxy/envoy:v1.30', 'nginx:1.25', 'busybox', 'quay.io/acme/models:v2'],
      `${k.kind}: init, sidecar, containers, ephemeral, image volume`,
    );
    t.equal(uses[0]!.field, `${k.specPath.join('.')}.initContainers[0].image`, `${k.kind}: field path`);
    t.equal(uses[4]!.field, `${k.specPath.join('.')}.volumes[0].image.reference`);
    t.same(uses[0]!.object, { kind: k.kind, namespace: 'shop', name: 'demo' });
    t.equal(site!.template, k.kind !== 'Pod');
  }
});

t.test('pull policies: given, or defaulted as the API server does', async (t) => {
  const uses = imageUsesOf(podSpecSite(wrap('Pod', ['spec']))!);
  t.same(
    uses.map((u) => u.pullPolicy),
    ['IfNotPresent', 'IfNotPresent', 'Always', 'Always', 'IfNotPresent'],
  );
  t.equal(defaultPullPolicy('nginx'), 'Always');
  t.equal(defaultPullPolicy('nginx:latest'), 'Always');
  t.equal(defaultPullPolicy('nginx:1.25'), 'IfNotPresent');
  t.equal(defaultPullPolicy('localhost:5000/app'), 'Always', 'a port is not a tag');
  t.equal(defaultPullPolicy(`nginx@sha256:${'a'.repeat(64)}`), 'IfNotPresent');
  t.equal(defaultPullPolicy(`nginx:latest@sha256:${'a'.repeat(64)}`), 'Always');
  t.equal(
    defaultPullPolicy('localhost:5000'),
    'IfNotPresent',
    'no slash: image "localhost" with tag 5000, as the kubelet reads it',
  );
  t.equal(defaultPullPolicy('docker.io/library/nginx'), 'Always');
  t.equal(defaultPullPolicy('Not A Reference'), 'IfNotPresent', 'unparseable: no tag, as in the API server');
});

t.test('other kinds, nil templates and junk give nothing', async (t) => {
  t.equal(podSpecSite({ kind: 'Service', spec: {} }), undefined);
  t.equal(podSpecSite({ kind: 'ReplicationController', spec: {} }), undefined, 'RC template may be nil');
  t.equal(podSpecSite(null), undefined);
  t.equal(podSpecSite('Pod'), undefined);
  t.equal(podSpecSite({ kind: 'Pod', spec: [] }), undefined);
  t.same(imageUsesOf(podSpecSite({ kind: 'Pod', spec: { containers: 'nope', volumes: [null, 3] } })!), []);
});

t.test('pull secret names skip empty ones', async (t) => {
  t.same(pullSecretNames(spec), ['regcred']);
  t.same(pullSecretNames({}), []);
});

t.test('List kinds are flattened, nested too', async (t) => {
  const list = { kind: 'List', items: [{ kind: 'Pod' }, { kind: 'DeploymentList', items: [{ kind: 'Deployment' }] }] };
  t.same(
    flattenLists(list).map((o) => (o as { kind: string }).kind),
    ['Pod', 'Deployment'],
  );
});
