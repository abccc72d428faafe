// The watch in `pullguard serve` against a real kube-apiserver: two replicas (one Lease), a pod the
// "kubelet" reports as ImagePullBackOff, a Deployment whose tag is deleted from the registry.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import t from 'tap';
import { request } from 'undici';
import { startServer, type Running } from '../../src/app/server.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { createLogger } from '../../src/server/logger.ts';
import { startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { FakeKubelet } from '../helpers/kubelet.ts';
import { ClusterReader } from '../../src/cluster/reader.ts';
import { PodCredentials } from '../../src/podcheck/credentials.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import { PodCheck } from '../../src/podcheck/podcheck.ts';
import { EventApi } from '../../src/cluster/events.ts';
import { WorkloadLists } from '../../src/cluster/workloads.ts';
import { EventPoster } from '../../src/watch/events.ts';
import { Reverifier } from '../../src/watch/reverify.ts';
import { RequestBudget } from '../../src/watch/budget.ts';
import { faults } from '../helpers/fault-proxy.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { repoRoot } from '../helpers/fixtures.ts';
import { registryClientFor } from '../../src/app/build.ts';
import { waitFor } from '../helpers/wait.ts';

let lab: KubeLab;
let reg: TestRegistry;
const replicas: Running[] = [];
const NS = 'shop';
// Generous: the watch acts within a lease duration (3 s) plus one engine deadline (5 s) or one
// interval (2 s); a loaded machine gets ten times that.
const DEADLINE_MS = 90_000;

t.before(async () => {
  [lab, reg] = await Promise.all([startKubeLab({ users: [{ name: 'pullguard' }] }), startRegistry()]);
  await reg.pushImage('demo/app', '1.0');
  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.namespace(NS);
  await kubelet.namespace('pullguard');
  await kubelet.node('node-a', 'amd64');
  await grantShippedRbac();
  for (let i = 0; i < 2; i++) {
    const config = validateConfig({
      server: { host: '127.0.0.1', port: 0, metricsPort: 0 },
      // as the shipped RBAC's subject: what the manifests grant is all it gets
      cluster: { kubeconfig: lab.kubeconfigFor('pullguard'), watchNodes: false },
      registry: { insecure: [reg.host] },
      deadline: '5s',
      watch: { enabled: true, interval: '2s', eventInterval: '1m', leaseDuration: '3s', leaseNamespace: 'pullguard' },
      log: { level: 'silent' },
    });
    replicas.push(await startServer(config, {}, createLogger('silent')));
  }
});

/** The base's and the watch component's RBAC as shipped, bound to the lab user "pullguard". */
async function grantShippedRbac(): Promise<void> {
  const rbac = lab.kc().makeApiClient(RbacAuthorizationV1Api);
  const user = [{ kind: 'User', name: 'pullguard', apiGroup: 'rbac.authorization.k8s.io' }];
  const files = ['manifests/base/rbac.yaml', 'manifests/components/watch/rbac.yaml'];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(join(repoRoot, file), 'utf8'))) {
      const o = doc.toJS() as { kind: string; roleRef: any; metadata: any };
      if (o.kind === 'ClusterRole') await rbac.createClusterRole({ body: o });
      if (o.kind === 'ClusterRoleBinding') await rbac.createClusterRoleBinding({ body: { ...o, subjects: user } });
      if (o.kind === 'Role') await rbac.createNamespacedRole({ namespace: 'pullguard', body: o });
      if (o.kind === 'RoleBinding')
        await rbac.createNamespacedRoleBinding({ namespace: 'pullguard', body: { ...o, subjects: user } });
    }
  }
}

t.teardown(async () => {
  for (const r of replicas) await r.close();
  await Promise.all([lab?.stop(), reg?.stop()]);
});

const leaders = () => replicas.filter((r) => r.watch?.lease.leader);

async function metric(r: Running, name: string): Promise<string[]> {
  const res = await r.app.inject({ method: 'GET', url: '/metrics' });
  return res.body.split('\n').filter((l) => l.startsWith(name));
}

async function eventsAbout(kind: string, name: string, reason: string) {
  const core = lab.kc().makeApiClient(CoreV1Api);
  const list = await core.listNamespacedEvent({
    namespace: NS,
    fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name},reason=${reason}`,
  });
  return list.items;
}

t.test('one leader holds the Lease', async (t) => {
  await waitFor(async () => (leaders().length === 1 ? true : undefined), {
    what: 'a leader',
    timeoutMs: DEADLINE_MS,
    everyMs: 250,
  });
  const lease = await lab
    .kc()
    .makeApiClient(CoordinationV1Api)
    .readNamespacedLease({ name: 'pullguard-watch', namespace: 'pullguard' });
  t.equal(lease.spec?.holderIdentity, leaders()[0]!.watch!.lease.identity);
  t.equal(leaders().length, 1, 'never two');
});

t.test('an Event on a pod soon after its ImagePullBackOff status, posted once', async (t) => {
  const kubelet = new FakeKubelet(lab.kc());
  const image = `${reg.host}/demo/app:9.9`;
  const stuck = {
    name: 'web',
    image,
    reason: 'ImagePullBackOff',
    runtime: `rpc error: code = NotFound desc = failed to pull and unpack image "${image}": failed to resolve reference "${image}": ${image}: not found`,
  };
  await kubelet.stuckPod(NS, 'broken', 'node-a', [stuck]);
  const [event] = await waitFor(
    async () => {
      const e = await eventsAbout('Pod', 'broken', 'ImagePullDiagnosed');
      return e.length ? e : undefined;
    },
    { what: 'the ImagePullDiagnosed Event', timeoutMs: DEADLINE_MS, everyMs: 250 },
  );
  t.equal(event!.type, 'Warning');
  t.equal(event!.source?.component, 'pullguard');
  t.equal(event!.involvedObject.fieldPath, 'spec.containers{web}');
  t.match(event!.message!, 'container "web"');
  t.match(event!.message!, '9.9');
  t.match(event!.message!, 'Fix: ');
  t.match(event!.message!, 'still failing');

  // The kubelet flips the status on every retry; both replicas see every change.
  for (const reason of ['ErrImagePull', 'ImagePullBackOff', 'ErrImagePull', 'ImagePullBackOff'])
    await kubelet.setWaiting(NS, 'broken', [{ ...stuck, reason }]);
  // A second pod after the flips: once its Event exists, the watch has seen every flip of the first.
  await kubelet.stuckPod(NS, 'broken-2', 'node-a', [stuck]);
  await waitFor(
    async () => {
      const e = await eventsAbout('Pod', 'broken-2', 'ImagePullDiagnosed');
      return e.length ? e : undefined;
    },
    { what: 'the second pod diagnosed', timeoutMs: DEADLINE_MS, everyMs: 250 },
  );
  const after = await eventsAbout('Pod', 'broken', 'ImagePullDiagnosed');
  t.equal(after.length, 1, 'one Event, not one per replica or per status change');
  t.equal(after[0]!.count, 1, 'not updated within eventInterval');

  const failing = await waitFor(
    async () => {
      const lines = await metric(leaders()[0]!, 'pullguard_pods_pull_failing{');
      return lines.find(
        (l) => l.includes(`namespace="${NS}"`) && l.includes('reason="tag-not-found"') && l.endsWith(' 2'),
      );
    },
    { what: 'pods_pull_failing', timeoutMs: DEADLINE_MS, everyMs: 250 },
  );
  t.ok(failing, 'two containers failing for tag-not-found');
  const follower = replicas.find((r) => !r.watch?.lease.leader)!;
  t.same(await metric(follower, 'pullguard_pods_pull_failing{'), [], 'only the leader exports');
});

t.test('a deleted tag flips pullable to 0 within one interval and posts one Event on the Deployment', async (t) => {
  const pushed = await reg.pushImage('demo/app', '1.4', { seed: '1.4' });
  const apps = lab.kc().makeApiClient(AppsV1Api);
  const image = `${reg.host}/demo/app:1.4`;
  await apps.createNamespacedDeployment({
    namespace: NS,
    body: {
      metadata: { name: 'shop-web' },
      spec: {
        selector: { matchLabels: { app: 'shop-web' } },
        template: {
          metadata: { labels: { app: 'shop-web' } },
          spec: { containers: [{ name: 'web', image }] },
        },
      },
    },
  });
  const series = (v: number) => (l: string) =>
    l.includes('kind="Deployment"') &&
    l.includes('name="shop-web"') &&
    l.includes('container="web"') &&
    l.endsWith(` ${v}`);
  await waitFor(async () => (await metric(leaders()[0]!, 'pullguard_workload_image_pullable{')).find(series(1)), {
    what: 'pullable 1',
    timeoutMs: DEADLINE_MS,
    everyMs: 250,
  });

  const reverifier = leaders()[0]!.watch!.reverifier;
  const roundsAtDelete = reverifier.rounds;
  const res = await request(`${reg.direct.url}/v2/demo/app/manifests/${pushed.digest}`, {
    method: 'DELETE',
    dispatcher: reg.dispatcher,
  });
  await res.body.dump();
  t.equal(res.statusCode, 202, 'the registry deleted the manifest');

  const line = await waitFor(
    async () => (await metric(leaders()[0]!, 'pullguard_workload_image_pullable{')).find(series(0)),
    { what: 'pullable 0', timeoutMs: DEADLINE_MS, everyMs: 250 },
  );
  t.match(line, 'reason="tag-not-found"');
  t.match(line, `image="${image}"`);
  t.ok(reverifier.rounds - roundsAtDelete <= 2, 'by the first round that started after the deletion');

  const events = await waitFor(
    async () => {
      const e = await eventsAbout('Deployment', 'shop-web', 'ImageNotPullable');
      return e.length ? e : undefined;
    },
    { what: 'the Event on the Deployment', timeoutMs: DEADLINE_MS, everyMs: 250 },
  );
  // two more rounds: still one Event, not re-posted
  const seen = reverifier.rounds;
  await waitFor(async () => (reverifier.rounds >= seen + 2 ? true : undefined), {
    what: 'two more rounds',
    timeoutMs: DEADLINE_MS,
    everyMs: 250,
  });
  const later = await eventsAbout('Deployment', 'shop-web', 'ImageNotPullable');
  t.equal(later.length, 1, 'one Event');
  t.equal(later[0]!.count, 1);
  t.equal(events[0]!.type, 'Warning');
  t.match(events[0]!.message!, 'a rescheduled pod will fail');
  t.match(events[0]!.message!, '1.4');
});

t.test('re-verification keeps to its budget per registry and stops where the quota is low', async (t) => {
  const [busy, quota] = await Promise.all([startRegistry({ proxy: true }), startRegistry({ proxy: true })]);
  t.teardown(() => Promise.all([busy.stop(), quota.stop()]).then(() => undefined));
  const kc = lab.kc();
  await new FakeKubelet(kc).namespace('budget');
  const apps = kc.makeApiClient(AppsV1Api);
  for (const [label, r] of [
    ['busy', busy],
    ['quota', quota],
  ] as const) {
    for (const i of [1, 2, 3, 4]) {
      await r.pushImage(`demo/app${i}`, '1.0', { seed: `${i}` });
      const name = `${label}-${i}`;
      await apps.createNamespacedDeployment({
        namespace: 'budget',
        body: {
          metadata: { name },
          spec: {
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: { containers: [{ name: 'web', image: `${r.host}/demo/app${i}:1.0` }] },
            },
          },
        },
      });
    }
  }
  // the registry says 3 pulls remain (under the threshold of 10): one answer is enough to stop
  quota.proxy!.fault(faults.rateLimitHeaders(3), { method: 'HEAD' });
  // manifests only, as buildWatch configures the watch's engines
  const config = validateConfig({
    registry: { insecure: [busy.host, quota.host], verifyLayers: false },
    deadline: '5s',
  });
  const budget = new RequestBudget({
    perRegistry: 2,
    total: 1000,
    rateLimitThreshold: config.registry.rateLimitThreshold,
    rateLimits: () => engine.client.rateLimits.values(),
  });
  const count = (host: string) => budget.spend(host);
  const engine = new Preflight(config, registryClientFor(config, [], { onResponse: count, onFailure: count }));
  t.teardown(() => engine.close());
  const reverifier = new Reverifier({
    workloads: new WorkloadLists(kc),
    podCheck: new PodCheck({
      engine,
      credentials: new PodCredentials(new ClusterReader(kc, { cacheTtlMs: 1000 }), null),
    }),
    events: new EventPoster(new EventApi(kc), { identity: 'budget-test', minIntervalMs: 60_000 }),
    budget,
    deadlineMs: config.deadline,
    pods: () => [],
  });
  busy.proxy!.resetLog();
  quota.proxy!.resetLog();
  await reverifier.round();
  const checked = (label: string) =>
    reverifier.results().filter((r) => r.namespace === 'budget' && r.name.startsWith(`${label}-`));
  t.ok(busy.proxy!.count() <= 2, `at most the budget of 2 requests reached the registry (${busy.proxy!.count()})`);
  t.ok(checked('busy').length >= 1 && checked('busy').length < 4, 'some images wait for the next round');
  t.equal(quota.proxy!.count({ method: 'HEAD' }), 1, 'one manifest request: its rate-limit headers said stop');
  t.same(
    checked('quota').map((r) => r.reason),
    ['rate-limited'],
    'the one checked image is reported rate-limited, still pullable',
  );
  t.ok(reverifier.skipped >= 4, 'the rest is left for the next round');
});
