// The cache the engine, the cluster reader and the token cache share: misses share one load, a
// caller that gives up stops waiting at once, and the load is aborted only when nobody waits.
import t from 'tap';
import { SharedCache } from '../src/cache.ts';

/** A load the test finishes by hand, recording the signal it was given. */
function manual<V>() {
  const calls: { signal: AbortSignal; resolve: (v: V) => void; reject: (e: unknown) => void }[] = [];
  const load = (signal: AbortSignal) =>
    new Promise<V>((resolve, reject) => {
      calls.push({ signal, resolve, reject });
    });
  return { calls, load };
}

const keep = () => 60_000;

t.test('concurrent misses share one load; the value is kept for its ttl', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  const { calls, load } = manual<{ n: number }>();
  const a = cache.get('k', load, keep);
  const b = cache.get('k', load, keep, new AbortController().signal);
  t.equal(calls.length, 1, 'one load');
  calls[0]!.resolve({ n: 1 });
  t.same(await Promise.all([a, b]), [{ n: 1 }, { n: 1 }]);
  t.same(await cache.get('k', load, keep), { n: 1 }, 'then a hit');
  t.equal(calls.length, 1);
  t.same(cache.stats, { hits: 1, misses: 1, shared: 1 });
});

t.test('peek() answers a kept value now, nothing expired or still loading, and counts nothing', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  t.equal(cache.peek('k'), undefined);
  t.same(cache.stats, { hits: 0, misses: 0, shared: 0 });
  await cache.get('k', async () => ({ n: 1 }), keep);
  t.same(cache.peek('k'), { n: 1 });
  t.same(cache.stats, { hits: 0, misses: 1, shared: 0 }, 'only the load is counted');
  await cache.get(
    'short',
    async () => ({ n: 2 }),
    () => 20,
  );
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.equal(cache.peek('short'), undefined, 'expired');
  const { calls, load } = manual<{ n: number }>();
  const pending = cache.get('later', load, keep);
  t.equal(cache.peek('later'), undefined, 'a load under way is not a value yet');
  calls[0]!.resolve({ n: 3 });
  await pending;
  t.same(cache.peek('later'), { n: 3 });
});

t.test('a value with ttl 0 is not kept', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  let loads = 0;
  const load = async () => ({ n: ++loads });
  await cache.get('k', load, () => 0);
  t.same(await cache.get('k', load, () => 0), { n: 2 });
});

t.test('one caller giving up leaves the load running for the others; the last one aborts it', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  const { calls, load } = manual<{ n: number }>();
  const first = new AbortController();
  const second = new AbortController();
  const a = cache.get('k', load, keep, first.signal);
  const b = cache.get('k', load, keep, second.signal);
  first.abort(new Error('first gave up'));
  await t.rejects(a, { message: 'first gave up' }, 'the first caller stops waiting at once');
  t.equal(calls[0]!.signal.aborted, false, 'the load goes on for the second');
  second.abort(new Error('second gave up'));
  await t.rejects(b, { message: 'second gave up' });
  t.equal(calls[0]!.signal.aborted, true, 'nobody waits: the load is aborted');
  // The aborted load finishing anyway is not kept, and the next caller starts afresh.
  calls[0]!.resolve({ n: 1 });
  const c = cache.get('k', load, keep);
  t.equal(calls.length, 2, 'a new load');
  calls[1]!.resolve({ n: 2 });
  t.same(await c, { n: 2 });
});

t.test('a caller without a signal always waits: the load is never aborted for it', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  const { calls, load } = manual<{ n: number }>();
  const patient = cache.get('k', load, keep);
  const ac = new AbortController();
  const impatient = cache.get('k', load, keep, ac.signal);
  ac.abort(new Error('gone'));
  await t.rejects(impatient);
  t.equal(calls[0]!.signal.aborted, false);
  calls[0]!.resolve({ n: 1 });
  t.same(await patient, { n: 1 });
});

t.test('an already aborted signal gets no load; a failing load nobody waits for harms nobody', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  const { calls, load } = manual<{ n: number }>();
  const ac = new AbortController();
  ac.abort(new Error('too late'));
  await t.rejects(cache.get('k', load, keep, ac.signal), { message: 'too late' });
  t.equal(calls.length, 0);
  const other = new AbortController();
  const p = cache.get('k', load, keep, other.signal);
  other.abort(new Error('left'));
  await t.rejects(p);
  calls[0]!.reject(new Error('failed after everyone left'));
  await new Promise((r) => setImmediate(r));
  t.pass('no unhandled rejection');
  const failing = cache.get('j', async () => Promise.reject(new Error('boom')), keep);
  await t.rejects(failing, { message: 'boom' }, 'a waiter is told of the failure');
});

t.test('delete forgets one entry', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  await cache.get('k', async () => ({ n: 1 }), keep);
  cache.delete('k');
  t.same(await cache.get('k', async () => ({ n: 2 }), keep), { n: 2 });
});
