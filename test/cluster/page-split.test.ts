// A list page is parsed and projected in a worker thread, and only what the projection keeps comes
// back (cluster/page-split.ts, page-worker.ts); a small page is projected on this thread, alike.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { PODS, STUCK_PODS, watchedPod, NODE_FACTS, nodeFacts, type NodeLike } from '../../src/cluster/projections.ts';
import { INLINE_BYTES, PageSplitter, projectPage } from '../../src/cluster/page-split.ts';
import { shapedNode, shapedPod, stuckStatus } from '../helpers/cluster-fill.ts';

const bytes = (text: string) => {
  const b = Buffer.from(text);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};
const signal = () => new AbortController().signal;

t.test("a page's pods come back as their projections, with the page's resourceVersion and continue", async (t) => {
  const splitter = new PageSplitter();
  t.teardown(() => splitter.close());
  const items = Array.from({ length: 1_200 }, (_, i) => ({
    metadata: { name: `p${i}`, uid: `u${i}`, annotations: { note: '},{"metadata":{"name":"fake"}} \u2028 é' } },
    spec: { containers: [{ name: 'c', image: `registry.test/app:${i}` }] },
  }));
  const page = { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '42', continue: 'next' }, items };
  const text = JSON.stringify(page);
  t.ok(text.length > INLINE_BYTES, 'large enough for the worker');
  const split = await splitter.split(bytes(text), PODS, signal());
  t.equal(split.resourceVersion, '42');
  t.equal(split.continue, 'next');
  t.equal(split.count, 1_200);
  t.same(
    split.items,
    items.map((i) => watchedPod(i)),
    'every pod as watchedPod projects it, in order',
  );
  // the same worker takes the next page
  const last = await splitter.split(bytes('{"metadata":{"resourceVersion":"43"},"items":[]}'), PODS, signal());
  t.same(last, { resourceVersion: '43', count: 0, items: [] });
});

t.test('a projection that keeps few: only those cross; nodes come back as their facts', async (t) => {
  const splitter = new PageSplitter();
  t.teardown(() => splitter.close());
  const pods = Array.from({ length: 400 }, (_, i) => {
    const image = `registry.test/app:${i}`;
    const pod = shapedPod({ namespace: 'shop', name: `web-${i}`, node: 'n1', image });
    const metadata = { ...(pod.metadata as { name: string }), uid: `u${i}` };
    return i % 20 === 0 ? { ...pod, metadata, ...stuckStatus(image) } : { ...pod, metadata };
  });
  const text = JSON.stringify({ metadata: {}, items: pods });
  t.ok(text.length > INLINE_BYTES);
  const split = await splitter.split(bytes(text), STUCK_PODS, signal());
  t.equal(split.count, 400, 'the page held 400');
  t.same(
    split.items.map((p) => p.metadata.name),
    pods.filter((_, i) => i % 20 === 0).map((p) => p.metadata.name),
    'the 20 stuck ones came back',
  );
  const nodes = Array.from({ length: 60 }, (_, i) => shapedNode(i));
  const nodePage = await splitter.split(bytes(JSON.stringify({ items: nodes })), NODE_FACTS, signal());
  t.same(
    nodePage.items,
    nodes.map((n) => nodeFacts(n as NodeLike)),
  );
});

t.test('a page that is not JSON, or a projection the worker does not know, fails in one line', async (t) => {
  const splitter = new PageSplitter();
  t.teardown(() => splitter.close());
  const large = `{"items":[${'{"a":1},'.repeat(INLINE_BYTES / 8)}{"a":`;
  await t.rejects(splitter.split(bytes(large), PODS, signal()), /^the list page is not JSON: /);
  await t.rejects(splitter.split(bytes('{"items":[{"a":'), PODS, signal()), /^the list page is not JSON: /, 'small');
  const big = JSON.stringify({ items: Array.from({ length: 6_000 }, (_, i) => ({ metadata: { uid: `u${i}` } })) });
  t.ok(big.length > INLINE_BYTES, 'large enough for the worker');
  await t.rejects(
    splitter.split(bytes(big), { name: 'no-such', project: () => 1 }, signal()),
    /^the page worker knows no projection "no-such"$/,
  );
  const stop = new AbortController();
  stop.abort(new Error('closed'));
  await t.rejects(splitter.split(bytes('{"items":[]}'), PODS, stop.signal), /closed/);
  // a new worker after that
  t.equal((await splitter.split(bytes(big), PODS, signal())).items.length, 6_000);
});

t.test('a small page is projected on this thread, as the worker projects a large one', async (t) => {
  const splitter = new PageSplitter();
  t.teardown(() => splitter.close());
  const page = (n: number, pad: number) => ({
    metadata: { resourceVersion: '7', continue: 'c' },
    items: Array.from({ length: n }, (_, i) => ({
      metadata: { name: `p${i}`, uid: `u${i}`, annotations: { pad: 'x'.repeat(pad) } },
    })),
  });
  const small = JSON.stringify(page(10, 100));
  const large = JSON.stringify(page(100, 2 * 1024));
  t.ok(small.length <= INLINE_BYTES && large.length > INLINE_BYTES);
  for (const text of [small, large]) {
    t.same(
      await splitter.split(bytes(text), PODS, signal()),
      projectPage(bytes(text), PODS.project),
      `${text.length} bytes`,
    );
  }
});

t.test('the worker thread runs at the lowest CPU priority: reviews on the main thread come first', async (t) => {
  const splitter = new PageSplitter();
  t.teardown(() => splitter.close());
  const niceOfThreads = () =>
    readdirSync('/proc/self/task').map((tid) => {
      // fields after the command's closing parenthesis: state is the 3rd field, nice the 19th
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19 - 3]);
    });
  const before = niceOfThreads().filter((n) => n === 19).length;
  const big = JSON.stringify({ items: Array.from({ length: 6_000 }, (_, i) => ({ metadata: { uid: `u${i}` } })) });
  await splitter.split(bytes(big), PODS, signal());
  t.equal(niceOfThreads().filter((n) => n === 19).length, before + 1, 'the page worker at nice 19');
  t.equal(niceOfThreads()[0], getPriority(), 'the main thread keeps its priority');
});
