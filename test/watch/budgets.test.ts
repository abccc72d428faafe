import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Container } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import t from 'tap';
import { ClusterReader } from '../../src/cluster/reader.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { registryClientFor } from '../../src/app/build.ts';
import { buildWatch } from '../../src/app/watch.ts';
import { PodCredentials } from '../../src/podcheck/credentials.ts';
import { PodCheck } from '../../src/podcheck/podcheck.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import type { Watch } from '../../src/watch/watch.ts';
import { faults, startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { startKubeLab, type KubeLab, labThroughProxy } from '../helpers/kube-lab.ts';
import { FakeKubelet } from '../helpers/kubelet.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { waitFor } from '../helpers/wait.ts';

let lab: KubeLab;
let reg: TestRegistry;
// Generous: a lease duration (3 s) plus a round; a loaded machine gets ten times that.
const DEADLINE_MS = 120_000;

t.before(async () => {
  [lab, reg] = await Promise.all([startKubeLab(), startRegistry()]);
  await reg.pushImage('demo/app', '1.0');
  await reg.pushImage('demo/app', '2.0', { seed: '2.0' });
  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.namespace('pullguard');
  await kubelet.node('node-a', 'amd64');
});
t.teardown(async () => {
  await Promise.all([lab?.stop(), reg?.stop()]);
});

let watches = 0;

/** A watch as `serve` builds it, on `kc` (default: the lab's admin), acting once it holds its own Lease. */
function startWatch(
  t: { teardown(fn: () => unknown): unknown },
  o: { insecure?: string[]; watch?: Record<string, unknown>; kc?: KubeConfig },
): { watch: Watch; metrics: Registry; stop: () => Promise<void> } {
  const n = ++watches;
  const config = validateConfig({
    registry: { insecure: o.insecure ?? [] },
    deadline: '5s',
    watch: {
      enabled: true,
      interval: '10m', // one round in a test: the first, when the Lease is taken
      leaseDuration: '3s',
      leaseName: `budgets-${n}`,
      leaseNamespace: 'pullguard',
      ...o.watch,
    },
    log: { level: 'silent' },
  });
  const kc = o.kc ?? lab.kc();
  const metrics = new Registry();
  // The webhook's pod check, whose credentials the watch's share (its own engine is not used here).
  const webhook = new PodCheck({
    engine: new Preflight(config, registryClientFor(config, [], {})),
    credentials: new PodCredentials(new ClusterReader(kc, { cacheTtlMs: 30_000 }), null),
  });
  t.teardown(() => webhook.engine.close());
  const watch = buildWatch(config, {
    kc,
    podCheck: webhook,
    registryClient: (hooks) => registryClientFor(config, [], hooks),
    registry: metrics,
    identity: `budgets-${n}`,
    leaseNamespace: 'pullguard',
  });
  watch.start();
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= watch.stop());
  t.teardown(stop);
  return { watch, metrics, stop };
}

async function deployment(namespace: string, name: string, containers: V1Container[]): Promise<void> {
  await lab
    .kc()
    .makeApiClient(AppsV1Api)
    .createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name },
        spec: {
          selector: { matchLabels: { app: name } },
          template: { metadata: { labels: { app: name } }, spec: { containers } },
        },
      },
    });
}

/** Leaves nothing for the next test's rounds and diagnoses to spend its budgets on. */
async function clear(namespace: string): Promise<void> {
  const kc = lab.kc();
  await kc.makeApiClient(AppsV1Api).deleteCollectionNamespacedDeployment({ namespace });
  await kc.makeApiClient(CoreV1Api).deleteCollectionNamespacedPod({ namespace, gracePeriodSeconds: 0 });
}

/** A pod as a ReplicaSet's (the round leaves it to its owner) whose containers wait as given. */
async function stuckPod(
  namespace: string,
  name: string,
  containers: { name: string; image: string; reason: string }[],
  owned = true,
): Promise<void> {
  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.core.createNamespacedPod({
    namespace,
    body: {
      metadata: {
        name,
        ...(owned
          ? {
              ownerReferences: [
                {
                  apiVersion: 'apps/v1',
                  kind: 'ReplicaSet',
                  name: `${name}-rs`,
                  uid: `00000000-0000-4000-8000-${'0'.repeat(12)}`,
                },
              ],
            }
          : {}),
      },
      spec: { nodeName: 'node-a', containers: containers.map((c) => ({ name: c.name, image: c.image })) },
    },
  });
  await kubelet.setWaiting(namespace, name, containers);
}

async function events(namespace: string, reason: string) {
  const list = await lab
    .kc()
    .makeApiClient(CoreV1Api)
    .listNamespacedEvent({ namespace, fieldSelector: `reason=${reason}` });
  return list.items;
}

/** Spellings of 127.0.0.1:port that the URL parser (and so the transport) reads as that address. */
function spellings(port: number): string[] {
  return [
    `127.0.0.1:${port}`,
    `127.0.0.1:0${port}`,
    `127.0.0.1:00${port}`,
    `2130706433:${port}`,
    `0x7f000001:${port}`,
    `0X7F000001:${port}`,
    `127.1:${port}`,
    `127.0.1:${port}`,
    `0177.0.0.1:${port}`,
    `0x7f.0.0.1:${port}`,
    `127.000.000.001:${port}`,
    `[::ffff:7f00:1]:${port}`,
  ];
}

t.test('spellings of one registry share its budget and its rate-limit stop', async (t) => {
  const [spelled, quota] = await Promise.all([
    startFaultProxy({ upstream: reg.direct.url }),
    startFaultProxy({ upstream: reg.direct.url }),
  ]);
  t.teardown(() => Promise.all([spelled.stop(), quota.stop()]).then(() => undefined));
  // the registry says 3 pulls remain (under the threshold of 10): one answer is enough to stop
  quota.fault(faults.rateLimitHeaders(3), { method: 'HEAD' });
  const ns = 'spellings';
  await new FakeKubelet(lab.kc()).namespace(ns);
  const hosts = spellings(spelled.port);
  const quotaHosts = spellings(quota.port);
  for (const [i, host] of hosts.entries())
    await deployment(ns, `spelled-${i}`, [
      { name: 'a', image: `${host}/demo/app:1.0` },
      { name: 'b', image: `${host}/demo/app:2.0` },
    ]);
  for (const [i, host] of quotaHosts.entries())
    await deployment(ns, `quota-${i}`, [{ name: 'a', image: `${host}/demo/app:1.0` }]);
  t.teardown(() => clear(ns));

  const { watch, stop } = startWatch(t, { insecure: [...hosts, ...quotaHosts], watch: { registryBudget: 3 } });
  await waitFor(() => (watch.reverifier.rounds >= 1 ? true : undefined), {
    what: 'one round',
    timeoutMs: DEADLINE_MS,
    everyMs: 100,
  });
  await stop();
  const checked = watch.reverifier.results().filter((r) => r.namespace === ns);
  t.comment(
    `${hosts.length} spellings × 2 images, registryBudget 3: ${spelled.count()} requests reached the registry in the round; ` +
      `rate-limited registry: ${quota.count({ method: 'HEAD' })} manifest requests; ${checked.length} images checked`,
  );
  t.ok(spelled.count() >= 1 && spelled.count() <= 3, `at most the budget of 3 requests (${spelled.count()})`);
  t.equal(quota.count({ method: 'HEAD' }), 1, 'one manifest request: its rate-limit headers stopped every spelling');
  t.ok(watch.reverifier.skipped >= hosts.length * 2 - 3, 'the rest waits for the next round');
});

t.test('a round asks all registries together at most watch.roundBudget times', async (t) => {
  const proxies: FaultProxy[] = await Promise.all(
    Array.from({ length: 4 }, () => startFaultProxy({ upstream: reg.direct.url })),
  );
  t.teardown(() => Promise.all(proxies.map((p) => p.stop())).then(() => undefined));
  const ns = 'round-budget';
  await new FakeKubelet(lab.kc()).namespace(ns);
  for (const [i, p] of proxies.entries())
    await deployment(ns, `app-${i}`, [
      { name: 'a', image: `${p.host}/demo/app:1.0` },
      { name: 'b', image: `${p.host}/demo/app:2.0` },
      { name: 'c', image: `${p.host}/demo/app:3.0` },
    ]);
  t.teardown(() => clear(ns));

  const { watch, stop } = startWatch(t, {
    insecure: proxies.map((p) => p.host),
    watch: { registryBudget: 100, roundBudget: 5 },
  });
  await waitFor(() => (watch.reverifier.rounds >= 1 ? true : undefined), {
    what: 'one round',
    timeoutMs: DEADLINE_MS,
    everyMs: 100,
  });
  await stop();
  const total = proxies.reduce((n, p) => n + p.count(), 0);
  t.comment(`4 registries × 3 images, roundBudget 5: ${total} requests in the round`);
  t.ok(total >= 1 && total <= 5, `at most 5 requests to all registries together (${total})`);
});

t.test('invalid, long references: Events per namespace and series are bounded, labels cut', async (t) => {
  const ns = 'invalid-refs';
  await new FakeKubelet(lab.kc()).namespace(ns);
  // 1.5 KB each, invalid (upper case in the repository): the API server takes any image string.
  const image = (d: number, c: number) => `registry.test/Team/${'A'.repeat(1500)}/d${d}-c${c}:1`;
  for (const d of [0, 1, 2])
    await deployment(
      ns,
      `bad-${d}`,
      Array.from({ length: 40 }, (_, c) => ({ name: `c${c}`, image: image(d, c) })),
    );
  t.teardown(() => clear(ns));

  const { watch, metrics, stop } = startWatch(t, { watch: { maxSeries: 50 } });
  await waitFor(() => (watch.reverifier.rounds >= 1 ? true : undefined), {
    what: 'one round',
    timeoutMs: DEADLINE_MS,
    everyMs: 100,
  });
  const text = await metrics.metrics();
  await stop(); // the round's Events are posted by then
  const series = text.split('\n').filter((l) => l.startsWith('pullguard_workload_image_pullable{'));
  const longest = Math.max(...text.split('\n').map((l) => l.length));
  const posted = await events(ns, 'ImageNotPullable');
  t.comment(
    `3 Deployments × 40 containers, 1.5 KB invalid images: ${posted.length} ImageNotPullable Events, ` +
      `${series.length} series, longest line ${longest} characters, ${text.length} bytes of the watch's metrics`,
  );
  t.ok(
    posted.length >= 1 && posted.length <= 20,
    `at most eventsPerNamespace (20) Events in the round (${posted.length})`,
  );
  t.equal(series.length, 50, 'maxSeries series');
  t.match(text, /^pullguard_workload_image_pullable_dropped 70$/m, 'the other 70 counted as dropped');
  t.ok(longest <= 600, `no series line longer than 600 characters (${longest})`);
  const images = new Set(series.map((l) => /image="([^"]*)"/.exec(l)?.[1]));
  t.equal(images.size, series.length, 'every series keeps an image label of its own');
  t.ok(
    [...images].every((i) => i !== undefined && i.length <= 200 && i.startsWith('registry.test/Team/AAAA')),
    'the label keeps the start of the reference',
  );
});

t.test('Events held back by the cap per namespace are posted in later rounds, each once', async (t) => {
  const ns = 'held-back';
  await new FakeKubelet(lab.kc()).namespace(ns);
  await deployment(
    ns,
    'bad',
    Array.from({ length: 30 }, (_, c) => ({ name: `c${c}`, image: `registry.test/Team/app-${c}:1` })),
  );
  t.teardown(() => clear(ns));
  const { watch, stop } = startWatch(t, { watch: { interval: '1s', eventsPerNamespace: 10 } });
  const posted = await waitFor(
    async () => {
      const e = await events(ns, 'ImageNotPullable');
      return e.length >= 30 ? e : undefined;
    },
    { what: 'all 30 Events', timeoutMs: DEADLINE_MS, everyMs: 100 },
  );
  const rounds = watch.reverifier.rounds;
  await waitFor(() => (watch.reverifier.rounds > rounds ? true : undefined), {
    what: 'one more round',
    timeoutMs: DEADLINE_MS,
    everyMs: 100,
  });
  await stop();
  const again = await events(ns, 'ImageNotPullable');
  t.equal(again.length, 30, 'one Event per container');
  t.ok(
    again.every((e) => e.count === 1),
    'none posted twice',
  );
  t.ok(rounds >= 2, `it took more than one round (${rounds})`);
  t.equal(posted.length, 30);
});

t.test('diagnosing a stuck pod with 20 containers keeps to the registry budget', async (t) => {
  const proxy = await startFaultProxy({ upstream: reg.direct.url });
  t.teardown(() => proxy.stop());
  const ns = 'stuck-many';
  await new FakeKubelet(lab.kc()).namespace(ns);
  const containers = Array.from({ length: 20 }, (_, i) => ({
    name: `c${i}`,
    image: `${proxy.host}/demo/app:${i + 10}.0`, // tags that do not exist
    reason: 'ImagePullBackOff',
  }));
  await stuckPod(ns, 'many', containers);
  t.teardown(() => clear(ns));

  const { watch, stop } = startWatch(t, {
    insecure: [proxy.host],
    watch: { registryBudget: 3, eventInterval: '1s' },
  });
  await waitFor(async () => ((await events(ns, 'ImagePullDiagnosed')).length ? true : undefined), {
    what: 'the first diagnosis',
    timeoutMs: DEADLINE_MS,
    everyMs: 100,
  });
  // The kubelet flips the status on every retry: each change is another chance to diagnose.
  const kubelet = new FakeKubelet(lab.kc());
  for (const reason of ['ErrImagePull', 'ImagePullBackOff', 'ErrImagePull', 'ImagePullBackOff', 'ErrImagePull'])
    await kubelet.setWaiting(
      ns,
      'many',
      containers.map((c) => ({ ...c, reason })),
    );
  // A pod after the flips (its image needs no registry): once it is diagnosed and nothing else is
  // under way, the watch has acted on every flip.
  await stuckPod(ns, 'marker', [{ name: 'web', image: 'Invalid/Name:1', reason: 'InvalidImageName' }]);
  await waitFor(
    async () => {
      const done = (await events(ns, 'ImagePullDiagnosed')).some((e) => e.involvedObject.name === 'marker');
      const busy = watch.pods.diagnosing ?? { running: 0, queued: 0 };
      return done && busy.running === 0 && busy.queued === 0 ? true : undefined;
    },
    { what: 'the marker diagnosed, nothing under way', timeoutMs: DEADLINE_MS, everyMs: 100 },
  );
  await stop();
  const heads = proxy.count({ method: 'HEAD' });
  const diagnosed = (await events(ns, 'ImagePullDiagnosed')).filter((e) => e.involvedObject.name === 'many');
  t.comment(
    `20 containers, 6 status changes, registryBudget 3: ${heads} manifest HEADs (${proxy.count()} requests), ${diagnosed.length} containers diagnosed`,
  );
  t.ok(heads <= 3, `at most the budget of 3 manifest requests (${heads})`);
  t.ok(diagnosed.length >= 1 && diagnosed.length <= 3, 'the containers the budget allowed got their Event');
});

t.test("a new leader's catch-up reads the API for a few pods at a time", async (t) => {
  const { proxy: api, kc } = await labThroughProxy(lab);
  t.teardown(() => api.stop());
  const ns = 'catch-up';
  await new FakeKubelet(lab.kc()).namespace(ns);
  const pods = 30;
  for (let i = 0; i < pods; i++)
    await stuckPod(ns, `stuck-${i}`, [{ name: 'web', image: `Invalid/Name:${i}`, reason: 'InvalidImageName' }]);
  t.teardown(() => clear(ns));
  // Every diagnosis lists the pod's events first: hold those answers, and see how many are asked at once.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  t.teardown(() => release());
  const eventLists = { method: 'GET', path: new RegExp(`^/api/v1/namespaces/${ns}/events\\?`) };
  api.fault({ kind: 'hold', until: released }, eventLists);

  const { watch, stop } = startWatch(t, { kc });
  const held = await waitFor(
    () => {
      const n = api.count(eventLists);
      const waiting = watch.pods.diagnosing?.queued;
      return n > 4 || (n === 4 && waiting === pods - 4) ? n : undefined;
    },
    { what: 'the catch-up under way', timeoutMs: DEADLINE_MS, everyMs: 100 },
  );
  t.comment(`catch-up on ${pods} stuck pods: ${held} event lists asked at once`);
  t.equal(held, 4, 'four pods diagnosed at once, the others wait');
  release();
  await waitFor(
    () => {
      const busy = watch.pods.diagnosing;
      return api.count(eventLists) === pods && busy?.running === 0 && busy.queued === 0 ? true : undefined;
    },
    { what: 'every pod diagnosed', timeoutMs: DEADLINE_MS, everyMs: 100 },
  );
  t.equal(api.count(eventLists), pods, 'each pod once');
  await stop();
});
