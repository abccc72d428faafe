import t from 'tap';
import { AllPods, type WatchedPod } from '../../src/cluster/all-pods.ts';
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
