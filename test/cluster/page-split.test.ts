// A list page is parsed in a worker thread and handed back item by item (cluster/page-split.ts).
import t from 'tap';
import { INLINE_BYTES, PageSplitter } from '../../src/cluster/page-split.ts';

const bytes = (text: string) => {
  const b = Buffer.from(text);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};

t.test("a page's items come back as their own JSON, with the page's resourceVersion and continue", async (t) => {
  const splitter = new PageSplitter();
  t.teardown(() => splitter.close());
  const items = Array.from({ length: 1_200 }, (_, i) => ({
    metadata: { name: `p${i}`, uid: `u${i}`, annotations: { note: '},{"metadata":{"name":"fake"}} \u2028 é' } },
    spec: { containers: [{ name: 'c', image: `registry.test/app:${i}` }] },
  }));
  const page = { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '42', continue: 'next' }, items };
  const split = await splitter.split(bytes(JSON.stringify(page)), new AbortController().signal);
  t.equal(split.resourceVersion, '42');
  t.equal(split.continue, 'next');
  t.equal(split.items.length, 1_200);
  t.same(
    split.items.map((s) => JSON.parse(s)),
    items,
    'every item as it was, in order',
  );
  // the same worker takes the next page
  const last = await splitter.split(
    bytes('{"metadata":{"resourceVersion":"43"},"items":[]}'),
    new AbortController().signal,
  );
  t.same(last, { resourceVersion: '43', items: [] });
});

t.test('a page that is not JSON fails in one line; an aborted split rejects with the reason', async (t) => {
  const splitter = new PageSplitter();
  t.teardown(() => splitter.close());
  await t.rejects(
    splitter.split(bytes('{"items":[{"a":'), new AbortController().signal),
    /^the list page is not JSON: /,
  );
  const stop = new AbortController();
  stop.abort(new Error('closed'));
  await t.rejects(splitter.split(bytes('{"items":[]}'), stop.signal), /closed/);
  // a new worker after that
  t.same(await splitter.split(bytes('{"items":[1]}'), new AbortController().signal), { items: ['1'] });
});

t.test('a small page is split on this thread, the same way; a large one in the worker', async (t) => {
  const splitter = new PageSplitter();
  t.teardown(() => splitter.close());
  const page = (n: number, pad: number) => ({
    metadata: { resourceVersion: '7', continue: 'c' },
    items: Array.from({ length: n }, (_, i) => ({
      metadata: { name: `p${i}`, annotations: { pad: 'x'.repeat(pad) } },
    })),
  });
  const small = JSON.stringify(page(10, 100));
  const large = JSON.stringify(page(100, 2 * 1024));
  t.ok(small.length <= INLINE_BYTES && large.length > INLINE_BYTES);
  const signal = new AbortController().signal;
  for (const text of [small, large]) {
    const split = await splitter.split(bytes(text), signal);
    const want = JSON.parse(text) as { items: unknown[] };
    t.same(
      { ...split, items: split.items.map((s) => JSON.parse(s)) },
      { resourceVersion: '7', continue: 'c', items: want.items },
      `${text.length} bytes`,
    );
  }
  await t.rejects(splitter.split(bytes('{"items":['), signal), /^the list page is not JSON: /, 'small and broken');
});
