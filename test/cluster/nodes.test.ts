// NodeWatcher against the fixture API server: list + watch through the real client, platform
// counts, image presence, reconnects (clean close, reset connection, 410 Expired), paging,
// recovery from a failing list, and access limited to list/watch on nodes.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { NodeWatcher, type NodeWatcherOptions } from '../../src/cluster/nodes.ts';
import { REQUIRED_ACCESS } from '../../src/cluster/access.ts';
import { placementOf } from '../../src/placement/placement.ts';
import { KubeApiServer, makeNode } from '../helpers/kube-api.ts';
import { waitFor } from '../helpers/wait.ts';

const NGINX_DIGEST = 'docker.io/library/nginx@sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac';
const NGINX_TAG = 'docker.io/library/nginx:1.25';
const PAUSE = 'registry.k8s.io/pause:3.10';

const servers: KubeApiServer[] = [];
const dir = await mkdtemp(join(tmpdir(), 'pullguard-nodes-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

async function setup(t: Tap, opts: NodeWatcherOptions = {}): Promise<{ api: KubeApiServer; w: NodeWatcher }> {
  const api = await KubeApiServer.start();
  const kc = new KubeConfig();
  kc.loadFromFile(await api.writeKubeconfig(join(dir, String(Math.random()))));
  const w = new NodeWatcher(kc, { backoffInitialMs: 20, backoffMaxMs: 200, ...opts });
  servers.push(api);
  t.teardown(async () => {
    await w.stop();
    await api.close();
  });
  return { api, w };
}
type Tap = { teardown(fn: () => unknown): void };

/** A watcher started on a server with the named nodes, past its first list and with its watch open. */
async function watching(t: Tap, ...names: string[]): Promise<{ api: KubeApiServer; w: NodeWatcher }> {
  const { api, w } = await setup(t);
  for (const name of names) api.putNode(makeNode({ name }));
  w.start();
  await w.whenReady(READY_MS);
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  return { api, w };
}

/** Nets for conditions that never come, not speed limits: whenReady and waitFor return as soon as they hold. */
const READY_MS = 60_000;

t.test('the first list gives platforms and images; ready flips once', async (t) => {
  const { api, w } = await setup(t);
  api.putNode(makeNode({ name: 'worker-1', images: [[NGINX_DIGEST, NGINX_TAG], [PAUSE]] }));
  api.putNode(makeNode({ name: 'worker-2' }));
  t.equal(w.ready, false);
  w.start();
  t.equal(await w.whenReady(READY_MS), true);
  t.equal(w.ready, true);
  t.same(w.platforms(), [{ os: 'linux', architecture: 'amd64', nodes: 2 }]);
  t.equal(w.imageOnAnyNode([NGINX_TAG]), true);
  t.equal(w.imageOnAnyNode(['docker.io/library/redis:7', NGINX_DIGEST]), true, 'any of the names');
  t.equal(w.imageOnAnyNode(['docker.io/library/redis:7']), false);
  t.equal(w.imageOnAnyNode([]), false);
  t.same(
    w.nodes().map((n) => [n.name, n.os, n.architecture, [...n.images].sort()]),
    [
      ['worker-1', 'linux', 'amd64', [NGINX_TAG, NGINX_DIGEST, PAUSE].sort()],
      ['worker-2', 'linux', 'amd64', []],
    ],
  );
  const list = api.requests.find((r) => r.verb === 'list');
  t.equal(list?.path, '/api/v1/nodes');
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  const watch = api.requests.find((r) => r.verb === 'watch');
  t.equal(watch?.path, '/api/v1/nodes');
  t.equal(watch?.query.resourceVersion, api.resourceVersion, "watches from the list's resourceVersion");
  t.ok(Number(watch?.query.timeoutSeconds) >= 300, 'asks the server to end the watch, as client-go does');
  t.equal(watch?.query.allowWatchBookmarks, 'true');
});

t.test('watch events: an arm64 node comes and goes, images change', async (t) => {
  const { api, w } = await setup(t);
  api.putNode(makeNode({ name: 'amd-1' }));
  let changes = 0;
  w.onChange(() => changes++);
  w.start();
  await w.whenReady(READY_MS);
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });

  api.putNode(makeNode({ name: 'arm-1', architecture: 'arm64', images: [[NGINX_TAG]] }));
  await waitFor(() => w.platforms().length === 2, { what: 'the arm64 node' });
  t.same(w.platforms(), [
    { os: 'linux', architecture: 'amd64', nodes: 1 },
    { os: 'linux', architecture: 'arm64', nodes: 1 },
  ]);
  t.equal(w.imageOnAnyNode([NGINX_TAG]), true);

  // MODIFIED: the kubelet's image list changed (nginx garbage-collected)
  api.putNode(makeNode({ name: 'arm-1', architecture: 'arm64', images: [[PAUSE]] }));
  await waitFor(() => !w.imageOnAnyNode([NGINX_TAG]), { what: 'the image to go' });
  t.equal(w.imageOnAnyNode([PAUSE]), true);

  api.deleteNode('arm-1');
  await waitFor(() => w.platforms().length === 1, { what: 'the arm64 node to go' });
  t.same(w.platforms(), [{ os: 'linux', architecture: 'amd64', nodes: 1 }]);
  t.equal(w.imageOnAnyNode([PAUSE]), false);
  t.ok(changes >= 4, `listeners told (${changes})`);
  t.equal(w.stats.lists, 1, 'events alone never needed a re-list');
});

t.test('placement: a pod is counted against the nodes it may land on, and a relabelled node moves it', async (t) => {
  const { api, w } = await watching(t, 'amd-1');
  api.putNode(makeNode({ name: 'arm-1', architecture: 'arm64', labels: { pool: 'edge' } }));
  api.putNode(
    makeNode({
      name: 'arm-2',
      architecture: 'arm64',
      taints: [
        { key: 'dedicated', value: 'arm', effect: 'NoSchedule' },
        { key: 'soft', effect: 'PreferNoSchedule' },
      ],
    }),
  );
  await waitFor(() => w.nodes().length === 3, { what: 'the arm64 nodes' });
  const plain = placementOf({});
  const edge = placementOf({ nodeSelector: { pool: 'edge' } });
  const anywhere = placementOf({ tolerations: [{ operator: 'Exists' }] });
  t.same(
    w.platforms(plain),
    [
      { os: 'linux', architecture: 'amd64', nodes: 1 },
      { os: 'linux', architecture: 'arm64', nodes: 1 },
    ],
    'a pod without placement keeps off the NoSchedule taint, not the PreferNoSchedule one',
  );
  t.same(w.platforms(anywhere), [
    { os: 'linux', architecture: 'arm64', nodes: 2 },
    { os: 'linux', architecture: 'amd64', nodes: 1 },
  ]);
  t.same(w.platforms(edge), [{ os: 'linux', architecture: 'arm64', nodes: 1 }]);
  t.equal(
    w.platforms(edge),
    w.platforms(placementOf({ nodeSelector: { pool: 'edge' } })),
    'counted once per placement',
  );
  t.same(w.platforms(placementOf({ nodeSelector: { pool: 'none' } })), [], 'no node fits: no platforms');

  // The label moves to the amd64 node: the remembered answer is dropped with the change.
  api.putNode(makeNode({ name: 'arm-1', architecture: 'arm64' }));
  api.putNode(makeNode({ name: 'amd-1', labels: { pool: 'edge' } }));
  await waitFor(() => w.platforms(edge)[0]?.architecture === 'amd64', { what: 'the relabelled nodes' });
  t.same(w.platforms(edge), [{ os: 'linux', architecture: 'amd64', nodes: 1 }]);
});

t.test('image names and labels are held once for all nodes, and names no node reports are let go', async (t) => {
  const { api, w } = await watching(t);
  // 40 nodes report the same 20 images: 40 names, not 800 (plus the labels, also shared).
  const shared = Array.from({ length: 20 }, (_, i) => [`registry.test/app/img-${i}:1.0`]);
  for (let i = 0; i < 40; i++) api.putNode(makeNode({ name: `n-${i}`, images: shared }));
  await waitFor(() => w.nodes().length === 40, { what: '40 nodes' });
  const held = w.interned;
  t.ok(held < 20 + 4 * 40 + 20, `${held} strings for 40 nodes x 20 images (names and labels held once)`);
  // Churn: nodes come and go with images of their own, far more names than any moment holds.
  for (let round = 0; round < 30; round++) {
    const own = Array.from({ length: 200 }, (_, i) => [`registry.test/churn/r${round}-i${i}:1`]);
    api.putNode(makeNode({ name: 'churn', images: own }));
    await waitFor(() => w.imageOnAnyNode([own[0]![0]!]), { what: `round ${round}` });
    api.deleteNode('churn');
    await waitFor(() => !w.imageOnAnyNode([own[0]![0]!]), { what: `round ${round} gone` });
  }
  t.ok(w.interned < 2 * (held + 200) + 4096 + 200, `the pool follows the nodes, not their history (${w.interned})`);
  t.equal(w.imageOnAnyNode(['registry.test/app/img-3:1.0']), true);
});

t.test('a cleanly closed watch is resumed from the last resourceVersion, without a re-list', async (t) => {
  const { api, w } = await watching(t, 'a');
  api.putNode(makeNode({ name: 'b' }));
  await waitFor(() => w.nodes().length === 2, { what: 'node b' });
  const rvAfterB = api.resourceVersion;
  t.equal(api.dropWatches(), 1);
  // changes while no watch is open are replayed from the resourceVersion
  api.putNode(makeNode({ name: 'c', architecture: 'arm64' }));
  await waitFor(() => w.nodes().length === 3, { what: 'node c after the reconnect' });
  await waitFor(() => api.openWatches === 1, { what: 'a new watch' });
  const watches = api.requests.filter((r) => r.verb === 'watch');
  t.equal(watches.length, 2);
  t.equal(watches[1]?.query.resourceVersion, rvAfterB, 'resumed where the stream ended');
  t.equal(w.stats.lists, 1);
  api.putNode(makeNode({ name: 'd' }));
  await waitFor(() => w.nodes().length === 4, { what: 'events on the new stream' });
});

t.test(
  'a reset connection: the watch resumes from the last resourceVersion after back-off, without a re-list',
  async (t) => {
    const { api, w } = await watching(t, 'a');
    const rv = api.resourceVersion;
    api.dropWatches({ abrupt: true });
    api.deleteNode('a');
    api.putNode(makeNode({ name: 'win-1', os: 'windows' }));
    // changes while no watch was open are replayed from the resourceVersion
    await waitFor(() => w.nodes().length === 1 && w.nodes()[0]?.name === 'win-1', { what: 'the replayed changes' });
    await waitFor(() => api.openWatches === 1, { what: 'a new watch' });
    t.same(w.platforms(), [{ os: 'windows', architecture: 'amd64', nodes: 1 }]);
    const watches = api.requests.filter((r) => r.verb === 'watch');
    t.equal(watches.at(-1)?.query.resourceVersion, rv, 'resumed where the stream broke');
    t.equal(w.stats.lists, 1, 'no re-list: only 410 Gone needs one');
    api.putNode(makeNode({ name: 'b' }));
    await waitFor(() => w.nodes().length === 2, { what: 'events on the new stream' });
  },
);

t.test('410 Expired (history compacted) leads to a re-list', async (t) => {
  const { api, w } = await watching(t, 'a');
  api.putNode(makeNode({ name: 'b' }));
  await waitFor(() => w.nodes().length === 2, { what: 'node b' });
  // The stream ends, then the server forgets the history the watcher would resume from.
  api.dropWatches();
  api.putNode(makeNode({ name: 'c' }));
  api.compact();
  await waitFor(() => w.stats.lists === 2, { what: 'the re-list' });
  await waitFor(() => w.nodes().length === 3, { what: 'node c' });
  await waitFor(() => api.openWatches === 1, { what: 'a new watch' });
});

t.test('a failing list is retried with back-off and the watcher recovers', async (t) => {
  const { api, w } = await setup(t);
  api.putNode(makeNode({ name: 'a', architecture: 'arm64' }));
  api.forbid({ resource: 'nodes' });
  w.start();
  await waitFor(() => api.countRequests({ verb: 'list' }) >= 3, { what: 'retries' });
  t.equal(w.ready, false);
  t.same(w.platforms(), []);
  const times = api.requests.filter((r) => r.verb === 'list').length;
  api.allowAll();
  t.equal(await w.whenReady(READY_MS), true);
  t.same(w.platforms(), [{ os: 'linux', architecture: 'arm64', nodes: 1 }]);
  t.ok(times < 20, `backed off (${times} attempts)`);
});

t.test('a failing watch is retried with growing back-off, not in a hot loop', async (t) => {
  const { api, w } = await setup(t, { backoffInitialMs: 50, backoffMaxMs: 400 });
  api.putNode(makeNode({ name: 'a' }));
  w.start();
  await w.whenReady(READY_MS);
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  // A watch that the server keeps refusing (still listable): a list+watch cycle each time.
  api.forbid({ resource: 'nodes' });
  api.dropWatches();
  await new Promise((r) => setTimeout(r, 700));
  const attempts = api.requests.filter((r) => r.verb === 'list' || r.verb === 'watch').length;
  t.ok(attempts < 25, `${attempts} attempts in 700ms`);
  t.same(w.platforms(), [{ os: 'linux', architecture: 'amd64', nodes: 1 }], 'the last known state stays');
  api.allowAll();
  api.putNode(makeNode({ name: 'b' }));
  await waitFor(() => w.nodes().length === 2, { what: 'recovery' });
});

t.test('paging: limit and continue', async (t) => {
  const { api, w } = await setup(t, { pageSize: 2 });
  for (let i = 0; i < 5; i++) api.putNode(makeNode({ name: `n${i}`, architecture: i % 2 ? 'arm64' : 'amd64' }));
  w.start();
  await w.whenReady(READY_MS);
  t.equal(w.nodes().length, 5);
  t.same(w.platforms(), [
    { os: 'linux', architecture: 'amd64', nodes: 3 },
    { os: 'linux', architecture: 'arm64', nodes: 2 },
  ]);
  const lists = api.requests.filter((r) => r.verb === 'list');
  t.equal(lists.length, 3);
  t.same(
    lists.map((r) => [r.query.limit, r.query.continue !== undefined]),
    [
      ['2', false],
      ['2', true],
      ['2', true],
    ],
  );
});

t.test('nodes without nodeInfo fall back to the os/arch labels', async (t) => {
  const { api, w } = await setup(t);
  const bare = makeNode({ name: 'new', architecture: 'arm64' });
  delete (bare.status as Record<string, unknown>).nodeInfo;
  api.putNode(bare);
  api.putNode({ metadata: { name: 'nothing' } });
  w.start();
  await w.whenReady(READY_MS);
  t.same(w.platforms(), [{ os: 'linux', architecture: 'arm64', nodes: 1 }], 'a node reporting nothing is left out');
  t.equal(w.nodes().length, 2);
});

t.test('stop() ends the watch promptly and is idempotent; the last state stays readable', async (t) => {
  const { api, w } = await setup(t);
  api.putNode(makeNode({ name: 'a' }));
  w.start();
  w.start(); // a second start is a no-op
  await w.whenReady(READY_MS);
  await waitFor(() => api.openWatches === 1, { what: 'the watch' });
  // The server keeps this watch open until a side ends it: stop() returning at all shows that it
  // ended the watch itself rather than waiting for the stream to end.
  await w.stop();
  await waitFor(() => api.openWatches === 0, { what: 'the server to see the watch closed' });
  await w.stop();
  t.equal(w.nodes().length, 1);
  const before = api.requests.length;
  await new Promise((r) => setTimeout(r, 100));
  t.equal(api.requests.length, before, 'no requests after stop');
});

t.test('stop() right after the first list (before the watch starts) still returns', async (t) => {
  // Regression: stop() in the gap between the list and the watch left a watch nobody could end.
  const { api, w } = await setup(t);
  api.putNode(makeNode({ name: 'n1' }));
  w.start();
  t.equal(await w.whenReady(READY_MS), true);
  // A stop() that left the watch behind would never return (tap's timeout fails the test).
  await w.stop();
  await waitFor(() => api.openWatches === 0, { what: 'no watch left open on the server' });
  t.equal(api.openWatches, 0, 'no watch left open on the server');
});

t.test('whenReady times out while the API server is unreachable; stop() still returns', async (t) => {
  const api = await KubeApiServer.start();
  const kc = new KubeConfig();
  kc.loadFromFile(await api.writeKubeconfig(join(dir, 'gone')));
  await api.close();
  const w = new NodeWatcher(kc, { backoffInitialMs: 20, backoffMaxMs: 100 });
  w.start();
  t.equal(await w.whenReady(200), false);
  t.same(w.platforms(), []);
  await w.stop();
});

t.test('every request of every test stayed inside REQUIRED_ACCESS', async (t) => {
  const all = servers.flatMap((s) => s.requests);
  t.ok(all.length > 30);
  t.same(
    servers.flatMap((s) => s.requestsOutside(REQUIRED_ACCESS)),
    [],
  );
  t.same(new Set(all.map((r) => `${r.verb} ${r.resource}`)), new Set(['list nodes', 'watch nodes']));
});

t.test('platform counts are computed once per change of the node set, not per call', async (t) => {
  const { api, w } = await watching(t, 'a');
  const first = w.platforms();
  t.equal(w.platforms(), first, 'the same list while nothing changed');
  api.putNode(makeNode({ name: 'arm', architecture: 'arm64' }));
  await waitFor(() => w.nodes().length === 2, { what: 'node arm' });
  t.not(w.platforms(), first, 'recounted after a change');
  t.same(
    w
      .platforms()
      .map((p) => p.architecture)
      .sort(),
    ['amd64', 'arm64'],
  );
});
