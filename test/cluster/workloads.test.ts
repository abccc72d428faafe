import { AppsV1Api } from '@kubernetes/client-node';
import t from 'tap';
import { WorkloadLists } from '../../src/cluster/workloads.ts';
import { startKubeLab, type KubeLab, labThroughProxy } from '../helpers/kube-lab.ts';
import { FakeKubelet } from '../helpers/kubelet.ts';

let lab: KubeLab;
t.before(async () => {
  lab = await startKubeLab();
});
t.teardown(() => lab?.stop());

t.test('each kind is listed in pages until the last; every object comes back with its kind', async (t) => {
  const ns = 'paged';
  await new FakeKubelet(lab.kc()).namespace(ns);
  const apps = lab.kc().makeApiClient(AppsV1Api);
  for (let i = 0; i < 5; i++)
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: `web-${i}` },
        spec: {
          selector: { matchLabels: { app: `web-${i}` } },
          template: {
            metadata: { labels: { app: `web-${i}` } },
            spec: { containers: [{ name: 'web', image: 'registry.test/web:1' }] },
          },
        },
      },
    });
  const { proxy, kc } = await labThroughProxy(lab);
  t.teardown(() => proxy.stop());

  const lists = await new WorkloadLists(kc, 30_000, 2).list();
  const deployments = lists.find((l) => l.kind === 'Deployment');
  t.ok(deployments && 'items' in deployments, 'Deployments listed');
  const items = deployments && 'items' in deployments ? deployments.items : [];
  const names = items
    .map((d) => (d.metadata as { name?: string }).name ?? '')
    .filter((n) => n.startsWith('web-'))
    .sort();
  t.same(names, ['web-0', 'web-1', 'web-2', 'web-3', 'web-4'], 'every page read');
  t.ok(
    items.every((d) => d.kind === 'Deployment'),
    'each with its kind',
  );
  t.same(
    items.find((d) => d.metadata.name === 'web-0')?.spec,
    {
      template: {
        spec: { containers: [{ name: 'web', image: 'registry.test/web:1', imagePullPolicy: 'IfNotPresent' }] },
      },
    },
    "each kept as its pod template's images, credentials and placement, nothing else",
  );
  const pages = proxy.requests({ method: 'GET', path: /^\/apis\/apps\/v1\/deployments\?/ });
  t.ok(pages.length >= 3, `${pages.length} pages of at most 2`);
  t.ok(
    pages.every((p) => new URL(p.url, 'https://x.test').searchParams.get('limit') === '2'),
    'each page asks limit=2',
  );
  t.same(
    pages.map((p) => new URL(p.url, 'https://x.test').searchParams.has('continue')),
    [false, ...pages.slice(1).map(() => true)],
    'the first page without continue, the others with the token of the one before',
  );
  // the default page size (the first page 50, then about a MiB, at most 500) reads these in one request
  const before = proxy.count({ method: 'GET', path: /^\/apis\/apps\/v1\/deployments\?/ });
  await new WorkloadLists(kc).list();
  const one = proxy.requests({ method: 'GET', path: /^\/apis\/apps\/v1\/deployments\?/ }).slice(before);
  t.same(
    one.map((p) => new URL(p.url, 'https://x.test').searchParams.get('limit')),
    ['50'],
  );
});
