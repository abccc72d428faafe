import t from 'tap';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { AllPods, LIVE_PODS } from '../../src/cluster/all-pods.ts';
import { type WatchedPod, WATCHED_PODS } from '../../src/cluster/projections.ts';
import { placementOf } from '../../src/placement/placement.ts';
import { startKubeLab, type KubeLab, labThroughProxy } from '../helpers/kube-lab.ts';
import { FakeKubelet } from '../helpers/kubelet.ts';
import { waitFor } from '../helpers/wait.ts';

let lab: KubeLab;
t.before(async () => {
  lab = await startKubeLab();
});
t.teardown(() => lab?.stop());

t.test('pods are listed in pages, held as projections, and kept current by the watch', async (t) => {
  const ns = 'projected';
  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.namespace(ns);
  for (let i = 0; i < 5; i++)
    await kubelet.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: `p${i}`, labels: { app: 'p' }, annotations: { note: 'not kept' } },
        spec: {
          nodeName: 'node-a',
          containers: [{ name: 'web', image: `registry.test/web:${i}`, env: [{ name: 'A', value: 'secret-ish' }] }],
        },
      },
    });
  const { proxy, kc } = await labThroughProxy(lab);
  t.teardown(() => proxy.stop());

  const pods = new AllPods(kc, { pageSize: 2 });
  const seen: string[] = [];
  pods.start({
    listed: () => seen.push(`listed ${pods.list().length}`),
    changed: (p) => seen.push(`changed ${p.metadata.name}`),
    deleted: (p) => seen.push(`deleted ${p.metadata.name}`),
  });
  t.teardown(() => pods.stop());
  await waitFor(() => pods.ready, { what: 'the first list' });
  const listPath = /^\/api\/v1\/pods\?/;
  const pages = proxy
    .requests({ method: 'GET', path: listPath })
    .map((r) => new URL(r.url, 'https://x.test').searchParams)
    .filter((q) => !q.has('watch'));
  t.ok(pages.length >= 3, `${pages.length} pages`);
  t.ok(
    pages.every((q) => q.get('limit') === '2'),
    'each page asks limit=2',
  );
  const mine = pods.list().filter((p) => p.metadata.namespace === ns);
  t.equal(mine.length, 5);
  const shape = (p: WatchedPod) =>
    [
      Object.keys(p).sort(),
      Object.keys(p.metadata).sort(),
      Object.keys(p.spec).sort(),
      Object.keys(p.spec.containers?.[0] ?? {}).sort(),
    ].join(' | ');
  t.same(
    [...new Set(mine.map(shape))],
    ['metadata,spec,status | name,namespace,uid | containers,nodeName | image,imagePullPolicy,name'],
    'every stored pod holds the projected fields and nothing else',
  );
  t.notMatch(JSON.stringify(mine), /not kept|secret-ish|managedFields|creationTimestamp/);

  // The kubelet reports a stuck pull: the watch brings the waiting state.
  await kubelet.setWaiting(ns, 'p1', [{ name: 'web', image: 'registry.test/web:1', reason: 'ImagePullBackOff' }]);
  const stuck = await waitFor(
    () => pods.list().find((p) => p.metadata.name === 'p1' && p.status.containerStatuses?.length),
    { what: "p1's waiting state" },
  );
  t.equal(stuck.status.containerStatuses?.[0]?.state?.waiting?.reason, 'ImagePullBackOff');
  t.same(Object.keys(stuck.status).sort(), ['containerStatuses', 'phase']);

  await kubelet.core.deleteNamespacedPod({ namespace: ns, name: 'p2', gracePeriodSeconds: 0 });
  await waitFor(() => seen.includes('deleted p2'), { what: 'the DELETED event' });
  t.notOk(
    pods.list().some((p) => p.metadata.name === 'p2' && p.metadata.namespace === ns),
    'p2 left the store',
  );
  t.same(pods.stats.lists, 1, 'listed once');
  await pods.stop();
});

t.test("with the watch's keep, only stuck and bare pods are held; one that recovers is let go", async (t) => {
  const ns = 'kept';
  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.namespace(ns);
  const owner = [
    { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: 'a0c2d8e4-1111-4aaa-9bbb-0123456789ab' },
  ];
  const make = (name: string, owned: boolean) =>
    kubelet.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name, ...(owned ? { ownerReferences: owner } : {}) },
        spec: { nodeName: 'node-a', containers: [{ name: 'web', image: `registry.test/${name}:1` }] },
      },
    });
  for (let i = 0; i < 6; i++) await make(`healthy-${i}`, true);
  await make('stuck', true);
  await make('bare', false);
  await kubelet.setWaiting(ns, 'stuck', [{ name: 'web', image: 'registry.test/stuck:1', reason: 'ErrImagePull' }]);

  const pods = new AllPods(lab.kc(), { pageSize: 3, which: WATCHED_PODS });
  const seen: string[] = [];
  pods.start({
    listed: () => undefined,
    changed: (p) => seen.push(`changed ${p.metadata.name}`),
    deleted: (p) => seen.push(`deleted ${p.metadata.name}`),
  });
  t.teardown(() => pods.stop());
  await waitFor(() => pods.ready, { what: 'the first list' });
  const held = () =>
    pods
      .list()
      .filter((p) => p.metadata.namespace === ns)
      .map((p) => p.metadata.name)
      .sort();
  t.same(held(), ['bare', 'stuck'], '2 of 8 pods held: the stuck one and the bare one');

  // an owned pod gets stuck: held from its event on
  await kubelet.setWaiting(ns, 'healthy-2', [
    { name: 'web', image: 'registry.test/healthy-2:1', reason: 'ImagePullBackOff' },
  ]);
  await waitFor(() => held().includes('healthy-2'), { what: 'healthy-2 stuck' });
  // the stuck pod recovers (its container runs): let go, and told as deleted
  await kubelet.core.patchNamespacedPodStatus(
    {
      namespace: ns,
      name: 'stuck',
      body: {
        status: {
          phase: 'Running',
          containerStatuses: [
            {
              name: 'web',
              image: 'registry.test/stuck:1',
              imageID: `registry.test/stuck@sha256:${'a'.repeat(64)}`,
              ready: true,
              restartCount: 0,
              state: { running: { startedAt: new Date().toISOString() } },
            },
          ],
        },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  await waitFor(() => !held().includes('stuck'), { what: 'the recovered pod let go' });
  t.same(held(), ['bare', 'healthy-2']);
  t.ok(seen.includes('deleted stuck'), 'the recovery is told as a deletion from the store');
});

t.test('pods that have ended are left out by the API server, in the list and in the watch', async (t) => {
  const ns = 'ended';
  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.namespace(ns);
  const phase = (name: string, value: string) =>
    kubelet.core.patchNamespacedPodStatus(
      { namespace: ns, name, body: { status: { phase: value } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  for (const name of ['running', 'succeeded', 'failed', 'ends-later'])
    await kubelet.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name },
        spec: { nodeName: 'node-a', containers: [{ name: 'c', image: `registry.test/${name}:1` }] },
      },
    });
  await phase('running', 'Running');
  await phase('succeeded', 'Succeeded');
  await phase('failed', 'Failed');
  const { proxy, kc } = await labThroughProxy(lab);
  t.teardown(() => proxy.stop());
  const pods = new AllPods(kc, { which: WATCHED_PODS });
  const seen: string[] = [];
  pods.start({ listed: () => undefined, changed: () => undefined, deleted: (p) => seen.push(p.metadata.name) });
  t.teardown(() => pods.stop());
  await waitFor(() => pods.ready, { what: 'the first list' });
  const held = () =>
    pods
      .list()
      .filter((p) => p.metadata.namespace === ns)
      .map((p) => p.metadata.name)
      .sort();
  t.same(held(), ['ends-later', 'running'], 'the bare pods that may still pull');
  const asked = proxy
    .requests({ method: 'GET', path: /^\/api\/v1\/pods\?/ })
    .map((r) => new URL(r.url, 'https://x.test').searchParams.get('fieldSelector'));
  t.ok(asked.length >= 1 && asked.every((f) => f === LIVE_PODS), 'every list asks for live pods only');
  await waitFor(() => proxy.count({ method: 'GET', path: /[?&]watch=true/ }) === 1, { what: 'the watch' });
  await phase('ends-later', 'Succeeded');
  await waitFor(() => seen.includes('ends-later'), { what: 'the pod that ended leaving the store' });
  t.same(held(), ['running']);
  const watch = proxy.requests({ method: 'GET', path: /[?&]watch=true/ })[0];
  t.equal(new URL(watch?.url ?? '/', 'https://x.test').searchParams.get('fieldSelector'), LIVE_PODS, 'the watch too');
});

t.test('a pod not yet on a node keeps where it may land; one on its node keeps only the node', async (t) => {
  const ns = 'unplaced';
  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.namespace(ns);
  const placement = {
    nodeSelector: { 'kubernetes.io/arch': 'arm64' },
    tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }],
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['edge'] }] }],
        },
      },
    },
  };
  for (const [name, nodeName] of [
    ['pending', undefined],
    ['placed', 'node-a'],
  ] as const)
    await kubelet.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name },
        spec: {
          ...placement,
          ...(nodeName ? { nodeName } : {}),
          containers: [{ name: 'web', image: 'registry.test/web:1' }],
        },
      },
    });
  const pods = new AllPods(lab.kc(), {});
  pods.start({ listed: () => {}, changed: () => {}, deleted: () => {} });
  t.teardown(() => pods.stop());
  await waitFor(() => pods.ready, { what: 'the first list' });
  const of = (name: string) => pods.list().find((p) => p.metadata.namespace === ns && p.metadata.name === name);
  const pending = of('pending')!;
  t.match(pending.spec, placement, "the scheduler's inputs, for the watch's check of a bare pod");
  // as the API server stored it (its admission adds tolerations of its own)
  const full = await kubelet.core.readNamespacedPod({ namespace: ns, name: 'pending' });
  t.same(
    placementOf(pending.spec as Record<string, unknown>),
    placementOf(full.spec as unknown as Record<string, unknown>),
    'placed as the full spec is',
  );
  const placed = of('placed')!;
  t.equal(placed.spec.nodeName, 'node-a');
  t.notOk('nodeSelector' in placed.spec || 'tolerations' in placed.spec || 'affinity' in placed.spec, 'only the node');
});
