// Requests to the API server are counted where they are made (cluster/requests.ts), by the API
// server's own verbs and resources, for pullguard_api_requests_total: against the lab's real
// kube-apiserver behind a counting proxy, every request the proxy saw is counted once, under the
// verb and resource it was.
import t from 'tap';
import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.ts';
import { ListWatch } from '../../src/cluster/list-watch.ts';
import { countRequests, requestCounts, requestLabels } from '../../src/cluster/requests.ts';
import { Metrics } from '../../src/server/metrics.ts';
import { labThroughProxy, startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { waitFor } from '../helpers/wait.ts';

t.test('verb and resource of a request, as the API server names them', async (t) => {
  const base = 'https://127.0.0.1:6443';
  const rows: [string, string, string, string][] = [
    ['GET', '/api/v1/pods?limit=500', 'list', 'pods'],
    ['GET', '/api/v1/pods?watch=true&resourceVersion=5', 'watch', 'pods'],
    ['GET', '/api/v1/nodes/node-a', 'get', 'nodes'],
    ['GET', '/api/v1/namespaces/shop/pods', 'list', 'pods'],
    ['GET', '/api/v1/namespaces/shop/pods/web', 'get', 'pods'],
    ['GET', '/api/v1/namespaces/shop/events?fieldSelector=involvedObject.name%3Dweb', 'list', 'events'],
    ['GET', '/api/v1/namespaces/shop/secrets/pull', 'get', 'secrets'],
    ['GET', '/api/v1/namespaces', 'list', 'namespaces'],
    ['GET', '/api/v1/namespaces/shop', 'get', 'namespaces'],
    ['POST', '/api/v1/namespaces', 'create', 'namespaces'],
    ['POST', '/api/v1/namespaces/shop/events', 'create', 'events'],
    ['PATCH', '/api/v1/namespaces/shop/pods/web/status', 'patch', 'pods/status'],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/pullguard/leases/pullguard', 'update', 'leases'],
    ['GET', '/apis/apps/v1/deployments?limit=500', 'list', 'deployments'],
    ['GET', '/apis/batch/v1/namespaces/jobs/cronjobs/nightly', 'get', 'cronjobs'],
    ['DELETE', '/api/v1/namespaces/shop/pods/web', 'delete', 'pods'],
    ['GET', '/version', 'get', 'other'],
  ];
  for (const [method, path, verb, resource] of rows)
    t.same(requestLabels(method, base + path), { verb, resource }, `${method} ${path}`);
  t.same(requestLabels('GET', 'not a url'), { verb: 'get', resource: 'other' });
});

let lab: KubeLab;
t.before(async () => {
  lab = await startKubeLab();
});
t.teardown(() => lab?.stop());

t.test('every request is counted once by verb and resource, and the metric says so', async (t) => {
  const { proxy, kc } = await labThroughProxy(lab);
  t.teardown(() => proxy.stop());
  countRequests(kc);
  countRequests(kc); // twice is once
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'counted' } } });
  await core.readNamespace({ name: 'counted' });
  for (let i = 0; i < 5; i++)
    await core.createNamespacedPod({
      namespace: 'counted',
      body: { metadata: { name: `p${i}` }, spec: { containers: [{ name: 'c', image: 'registry.test/app:1' }] } },
    });
  await core.readNamespacedPod({ namespace: 'counted', name: 'nope' }).catch(() => undefined);
  const pods = new ListWatch<string>(kc, {
    path: '/api/v1/pods',
    what: 'pods',
    projection: { name: 'names', project: (o: unknown) => (o as { metadata?: { name?: string } }).metadata?.name },
    key: (n) => n,
    pageSize: 2,
  });
  pods.start();
  t.teardown(() => pods.close());
  await waitFor(() => pods.ready && proxy.count({ method: 'GET', path: /[?&]watch=true/ }) === 1, {
    what: 'the list and the watch',
  });
  const counts = Object.fromEntries(requestCounts(kc));
  t.same(
    counts,
    {
      'create\u0000namespaces': 1,
      'get\u0000namespaces': 1,
      'create\u0000pods': 5,
      'get\u0000pods': 1,
      'list\u0000pods': 3,
      'watch\u0000pods': 1,
    },
    'by verb and resource: three pages of 2, one watch, a failed get counted too',
  );
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  t.equal(total, proxy.count(), 'as many as reached the API server');

  const metrics = new Metrics();
  metrics.observeApiRequests(() => requestCounts(kc));
  const text = await metrics.registry.metrics();
  t.match(text, /pullguard_api_requests_total\{verb="list",resource="pods"\} 3\n/);
  t.match(text, /pullguard_api_requests_total\{verb="watch",resource="pods"\} 1\n/);
  t.match(text, /pullguard_api_requests_total\{verb="create",resource="pods"\} 5\n/);
});

t.test('a kubeconfig loaded for pullguard counts its requests from the start', async (t) => {
  const loaded = loadKubeConfig({ kubeconfig: lab.kubeconfig, env: {} });
  if (!loaded) throw new Error('no kubeconfig loaded');
  t.same(requestCounts(loaded.kc).size, 0, 'nothing before a request');
  await loaded.kc.makeApiClient(CoreV1Api).listNode();
  t.same(Object.fromEntries(requestCounts(loaded.kc)), { 'list\u0000nodes': 1 });
});
