// The one list-watch (src/cluster/list-watch.ts) against the fixture API server: lists in pages of
// 500, keeps only the projection, resumes a dropped watch from the last resourceVersion (bookmarks
// move it on) without listing again, lists again on 410 Gone, logs a failure in one line, and
// close() ends the stream. The pods' projection (all-pods.ts) keeps only what the watch reads.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { watchedPod, NODE_FACTS, type NodeFacts } from '../../src/cluster/projections.ts';
import {
  ListWatch,
  type ListWatchOptions,
  listPages,
  nextLimit,
  PAGE_BYTES,
  startDelay,
} from '../../src/cluster/list-watch.ts';
import { KubeApiServer, makeNode } from '../helpers/kube-api.ts';
import { waitFor } from '../helpers/wait.ts';

const dir = await mkdtemp(join(tmpdir(), 'pullguard-list-watch-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

interface Slim {
  name: string;
  arch: string;
}

/** What is held of a node's facts (the node watch's projection, made in the page worker for large pages). */
function slim(node: NodeFacts): Slim {
  return { name: node.name, arch: node.architecture };
}

type Tap = { teardown(fn: () => unknown): void };

async function setup(
  t: Tap,
  opts: Partial<ListWatchOptions<Slim, NodeFacts>> = {},
): Promise<{ api: KubeApiServer; lw: ListWatch<Slim, NodeFacts>; changes: string[] }> {
  const api = await KubeApiServer.start();
  const kc = new KubeConfig();
  kc.loadFromFile(await api.writeKubeconfig(join(dir, String(Math.random()))));
  const lw = new ListWatch<Slim, NodeFacts>(kc, {
    path: '/api/v1/nodes',
    what: 'nodes',
    projection: NODE_FACTS,
    adopt: slim,
    key: (n) => n.name,
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    ...opts,
  });
  const changes: string[] = [];
  t.teardown(async () => {
    await lw.close();
    await api.close();
  });
  return { api, lw, changes };
}

function start(lw: ListWatch<Slim, NodeFacts>, changes: string[]): void {
  lw.start({
    listed: () => changes.push(`listed ${lw.items.size}`),
    changed: (n) => changes.push(`changed ${n.name}`),
    deleted: (n) => changes.push(`deleted ${n.name}`),
  });
}

const lists = (api: KubeApiServer) => api.requests.filter((r) => r.verb === 'list');
const watches = (api: KubeApiServer) => api.requests.filter((r) => r.verb === 'watch');

t.test('1,200 small objects are listed in pages of up to 500 and kept as their projection only', async (t) => {
  const { api, lw, changes } = await setup(t);
  for (let i = 0; i < 1_200; i++)
    api.putNode(makeNode({ name: `n${String(i).padStart(4, '0')}`, architecture: i % 3 ? 'amd64' : 'arm64' }));
  start(lw, changes);
  await waitFor(() => lw.ready, { what: 'the first list' });
  t.same(
    lists(api).map((r) => [r.query.limit, r.query.continue !== undefined]),
    [
      ['50', false],
      ['500', true],
      ['500', true],
      ['500', true],
    ],
    'a first page of 50; small objects: then pages of 500',
  );
  t.equal(lw.items.size, 1_200);
  t.same(changes, ['listed 1200'], 'one listed, no event per object');
  const keys = new Set([...lw.items.values()].map((n) => Object.keys(n).sort().join(',')));
  t.same([...keys], ['arch,name'], 'every stored value holds the projected fields and nothing else');
  t.same(lw.items.get('n0003'), { name: 'n0003', arch: 'arm64' });
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  const watch = watches(api)[0];
  t.equal(watch?.query.resourceVersion, api.resourceVersion, "the watch starts at the list's resourceVersion");
  t.equal(watch?.query.allowWatchBookmarks, 'true', 'bookmarks asked for');
  // events are projected too
  api.putNode(makeNode({ name: 'late', architecture: 'arm64' }));
  await waitFor(() => lw.items.get('late'), { what: 'the ADDED event' });
  t.same(lw.items.get('late'), { name: 'late', arch: 'arm64' });
  api.deleteNode('n0000');
  await waitFor(() => !lw.items.has('n0000'), { what: 'the DELETED event' });
  t.same(changes.slice(1), ['changed late', 'deleted n0000']);
  t.equal(lw.stats.lists, 1);
});

t.test('a dropped watch, clean or reset, resumes from the last resourceVersion without a list', async (t) => {
  const { api, lw, changes } = await setup(t);
  api.putNode(makeNode({ name: 'a' }));
  start(lw, changes);
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  api.putNode(makeNode({ name: 'b' }));
  await waitFor(() => lw.items.has('b'), { what: 'node b' });
  const afterB = api.resourceVersion;
  api.dropWatches();
  api.putNode(makeNode({ name: 'c' })); // while no watch is open: replayed
  await waitFor(() => lw.items.has('c'), { what: 'node c' });
  await waitFor(() => api.openWatches === 1, { what: 'the second watch' });
  t.equal(watches(api)[1]?.query.resourceVersion, afterB, 'resumed where the clean close left it');
  const afterC = api.resourceVersion;
  api.dropWatches({ abrupt: true });
  api.deleteNode('a');
  await waitFor(() => !lw.items.has('a'), { what: 'node a gone' });
  await waitFor(() => api.openWatches === 1, { what: 'the third watch' });
  t.equal(watches(api)[2]?.query.resourceVersion, afterC, 'resumed where the reset left it');
  t.equal(lists(api).length, 1, 'listed once');
  t.same(changes, ['listed 1', 'changed b', 'changed c', 'deleted a']);
});

t.test('a bookmark moves the resourceVersion on: the next watch starts there', async (t) => {
  const { api, lw, changes } = await setup(t);
  api.putNode(makeNode({ name: 'a' }));
  start(lw, changes);
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  // The resourceVersion moves on with an object this watch does not see; the bookmark says so.
  api.putSecret({ namespace: 'default', name: 'elsewhere', stringData: { k: 'v' } });
  api.bookmark();
  const bookmarked = api.resourceVersion;
  api.dropWatches(); // after the bookmark on the same stream
  await waitFor(() => watches(api).length === 2, { what: 'the next watch' });
  t.equal(watches(api)[1]?.query.resourceVersion, bookmarked);
  t.same(changes, ['listed 1'], 'a bookmark is no change');
  t.equal(lists(api).length, 1);
});

t.test('410 Gone (an ERROR event with code 410) leads to a new list, and only that', async (t) => {
  const { api, lw, changes } = await setup(t);
  api.putNode(makeNode({ name: 'a' }));
  start(lw, changes);
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  // The stream ends, then the server forgets the history the watch would resume from.
  api.dropWatches();
  api.deleteNode('a');
  api.putNode(makeNode({ name: 'b' }));
  api.compact();
  await waitFor(() => lists(api).length === 2, { what: 'the second list' });
  await waitFor(() => api.openWatches === 1, { what: 'a new watch' });
  t.same([...lw.items.keys()], ['b'], 'the new list replaced the store');
  t.same(changes, ['listed 1', 'listed 1']);
  t.equal(lists(api)[1]?.query.continue, undefined, 'a fresh list from the first page');
});

t.test('a failure is logged in one line, retried with back-off, and the watch goes on from where it was', async (t) => {
  const lines: { msg: string; err?: string }[] = [];
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  const { api, lw, changes } = await setup(t, { logger });
  api.putNode(makeNode({ name: 'a' }));
  start(lw, changes);
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  api.forbid({ resource: 'nodes' });
  api.dropWatches();
  await waitFor(() => watches(api).length >= 3, { what: 'retried watches' });
  api.allowAll();
  api.putNode(makeNode({ name: 'b' }));
  await waitFor(() => lw.items.has('b'), { what: 'recovery' });
  t.equal(lists(api).length, 1, 'a refused watch is no reason to list again');
  const failed = lines.find((l) => l.msg === 'watch of nodes failed; watching again');
  t.match(failed?.err, /^cannot watch nodes: 403 Forbidden: nodes is forbidden: User .* cannot watch resource "nodes"/);
  t.notMatch(failed?.err ?? '', /\n|HTTP-Code|Body:/, 'one line, no dump');
});

t.test('close() ends the open watch and a pending back-off; no request after it', async (t) => {
  const { api, lw, changes } = await setup(t, { backoffInitialMs: 600_000, backoffMaxMs: 600_000 });
  api.putNode(makeNode({ name: 'a' }));
  start(lw, changes);
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  await lw.close();
  await waitFor(() => api.openWatches === 0, { what: 'the server to see the watch closed' });
  t.same([...lw.items.keys()], ['a'], 'the last state stays readable');

  // A second one, stopped while it waits out a ten-minute back-off: close() returning at all shows
  // that the timer was ended rather than waited for.
  const next = await setup(t, { backoffInitialMs: 600_000, backoffMaxMs: 600_000 });
  next.api.forbid({ resource: 'nodes' });
  start(next.lw, next.changes);
  await waitFor(() => lists(next.api).length === 1, { what: 'the refused list' });
  await next.lw.close();
  t.equal(lists(next.api).length, 1, 'no request after close()');
  t.equal(next.lw.ready, false);
});

t.test("a pod's projection keeps what the watch reads, in the pod's shape, and nothing else", async (t) => {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'web-7d4b9c-x2x9q',
      generateName: 'web-7d4b9c-',
      namespace: 'shop',
      uid: '6f1c2d3e-0000-4000-8000-000000000001',
      resourceVersion: '4242',
      labels: { app: 'web', 'pod-template-hash': '7d4b9c' },
      annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-01-10T09:00:00Z' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c', uid: 'x', controller: true }],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', fieldsV1: { 'f:spec': {} } }],
    },
    spec: {
      nodeName: 'worker-1',
      serviceAccountName: 'web',
      imagePullSecrets: [{ name: 'regcred' }],
      initContainers: [{ name: 'init', image: 'busybox:1.36', command: ['sh', '-c', 'true'] }],
      containers: [
        {
          name: 'web',
          image: 'registry.test/shop/web:1.0',
          imagePullPolicy: 'IfNotPresent',
          env: [{ name: 'PASSWORD', value: 'hunter2' }],
          resources: { limits: { cpu: '1' } },
          ports: [{ containerPort: 8080 }],
        },
      ],
      volumes: [
        { name: 'kube-api-access', projected: { sources: [] } },
        { name: 'model', image: { reference: 'registry.test/models/m:1', pullPolicy: 'Always' } },
      ],
      tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists' }],
    },
    status: {
      phase: 'Pending',
      conditions: [{ type: 'Ready', status: 'False' }],
      hostIP: '10.0.0.1',
      initContainerStatuses: [{ name: 'init', image: 'busybox:1.36', ready: true, state: { terminated: {} } }],
      containerStatuses: [
        {
          name: 'web',
          image: 'registry.test/shop/web:1.0',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image' } },
        },
      ],
    },
  };
  t.same(watchedPod(pod), {
    metadata: {
      uid: '6f1c2d3e-0000-4000-8000-000000000001',
      namespace: 'shop',
      name: 'web-7d4b9c-x2x9q',
      ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d4b9c' }],
    },
    spec: {
      nodeName: 'worker-1',
      serviceAccountName: 'web',
      imagePullSecrets: [{ name: 'regcred' }],
      initContainers: [{ name: 'init', image: 'busybox:1.36' }],
      containers: [{ name: 'web', image: 'registry.test/shop/web:1.0', imagePullPolicy: 'IfNotPresent' }],
      volumes: [
        { name: 'kube-api-access' },
        { name: 'model', image: { reference: 'registry.test/models/m:1', pullPolicy: 'Always' } },
      ],
    },
    status: {
      phase: 'Pending',
      initContainerStatuses: [{ name: 'init', image: 'busybox:1.36' }],
      containerStatuses: [
        {
          name: 'web',
          image: 'registry.test/shop/web:1.0',
          state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image' } },
        },
      ],
    },
  });
  // t.same ignores nothing, but say it plainly: no secret's value, no managedFields
  t.notMatch(JSON.stringify(watchedPod(pod)), /hunter2|managedFields|labels|annotations|conditions/);
  // without image volumes the volumes are not kept at all; without a uid there is nothing to key it by
  const plain = { ...pod, spec: { ...pod.spec, volumes: [{ name: 'kube-api-access', projected: {} }] } };
  t.equal(watchedPod(plain)?.spec.volumes, undefined);
  t.equal(watchedPod({ metadata: { name: 'x' } }), undefined);
});

t.test('the jittered start waits [0, max) whatever the random source answers', async (t) => {
  const max = 5_000;
  const rows: [number, number][] = [
    [0, 0],
    [0.25, 1_250],
    [0.5, 2_500],
    [0.9999999, 4_999],
    [1, 4_999], // a source that answers 1 (Math.random never does) stays inside
    [-0.5, 0],
    [Number.NaN, 0],
  ];
  for (const [r, want] of rows)
    t.equal(
      startDelay(max, () => r),
      want,
      `random ${r}`,
    );
  for (let i = 0; i < 1_000; i++) {
    const d = startDelay(max, Math.random);
    if (!(d >= 0 && d < max)) t.fail(`delay ${d} outside [0, ${max})`);
  }
  t.equal(
    startDelay(0, () => 0.7),
    0,
    'no jitter asked: no wait',
  );
});

t.test('a jittered ListWatch lists once after its delay, drawn from the injected source', async (t) => {
  const { api, lw, changes } = await setup(t, { startJitterMs: 200, random: () => 0.25 });
  api.putNode(makeNode({ name: 'n1', architecture: 'amd64' }));
  start(lw, changes);
  await waitFor(() => lw.ready, { what: 'the first list' });
  t.equal(lw.stats.startDelayMs, 50, '0.25 of 200 ms');
  t.equal(lists(api).length, 1);
  t.same(changes, ['listed 1']);
});

t.test("a page's limit follows its objects' size: about a MiB of JSON, within [1, pageSize]", async (t) => {
  const kib = 1024;
  const rows: [number, number, number, number, number][] = [
    // limit, items, bytes, max -> next
    [50, 50, 50 * 7 * kib, 500, 146], // pods of 7 KiB: 146 a page
    [146, 146, 146 * 7 * kib, 500, 146], // steady
    [50, 50, 50 * 12 * kib, 500, 85], // nodes of 12 KiB
    [50, 50, 50 * kib, 500, 500], // small objects: up to the most asked for
    [500, 3, 3 * PAGE_BYTES, 500, 1], // objects over a MiB: one a page
    [10, 10, 5 * PAGE_BYTES, 500, 2], // half a MiB each: two
    [50, 0, 0, 500, 50], // an empty page says nothing of the size
    [50, 50, 50 * 7 * kib, 2, 2], // pageSize 2 stays 2
  ];
  for (const [limit, items, bytes, max, want] of rows)
    t.equal(nextLimit(limit, items, bytes, max), want, `${items} items in ${bytes} bytes, max ${max}`);
});

t.test("a page too large for the page worker's heap is asked for again, half as long", async (t) => {
  const api = await KubeApiServer.start();
  t.teardown(() => api.close());
  const kc = new KubeConfig();
  kc.loadFromFile(await api.writeKubeconfig(join(dir, String(Math.random()))));
  // 24 nodes of 3 MiB each (an annotation): the first page, 50 asked for, is 72 MiB of JSON
  const big = 'x'.repeat(3 * 1024 * 1024);
  for (let i = 0; i < 24; i++) {
    const node = makeNode({ name: `big-${String(i).padStart(2, '0')}`, architecture: 'amd64' });
    (node.metadata as Record<string, unknown>).annotations = { note: big };
    api.putNode(node);
  }
  const names: string[] = [];
  for await (const page of listPages(kc, '/api/v1/nodes', NODE_FACTS, { pageSize: 500, timeoutMs: 60_000 }))
    names.push(...page.items.map((n) => n.name));
  t.equal(names.length, 24, 'every node listed');
  t.same(names, [...names].sort(), 'once each, in order');
  const limits = lists(api).map((r) => Number(r.query.limit));
  t.same(limits.slice(0, 2), [50, 25], 'the first page again at half its length');
  t.ok(
    limits.every((l, i) => i === 0 || l <= limits[i - 1]! || l === 1),
    `limits ${limits.join(', ')}`,
  );
  t.equal(limits.at(-1), 1, 'objects of 3 MiB: one a page at the end');
});
