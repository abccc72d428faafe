// The cache the engine, the cluster reader and the token cache share: misses share one load, a
// caller that gives up stops waiting at once, and the load is aborted only when nobody waits.
import t from 'tap';
import { all, type Maybe, SharedCache, then } from '../src/cache.ts';

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

/** A miss: what must be waited for is a promise (a hit would be the value itself). */
function later<V>(x: Maybe<V>): Promise<V> {
  if (!(x instanceof Promise)) throw new Error('expected a promise: a miss');
  return x;
}

t.test('concurrent misses share one load; the value is kept for its ttl', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  const { calls, load } = manual<{ n: number }>();
  const a = cache.get('k', load, keep);
  const b = cache.get('k', load, keep, new AbortController().signal);
  t.equal(calls.length, 1, 'one load');
  calls[0]!.resolve({ n: 1 });
  t.same(await Promise.all([a, b]), [{ n: 1 }, { n: 1 }]);
  const hit = cache.get('k', load, keep);
  t.notOk(hit instanceof Promise, 'then a hit, the value itself: no promise to wait for');
  t.same(hit, { n: 1 });
  t.equal(calls.length, 1);
  t.same(cache.stats, { hits: 1, misses: 1, shared: 1 }, 'the hit counted once');
});

t.test('a value older than the maxAge asked for is loaded again; younger ones are hits', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  let loads = 0;
  const load = async () => ({ n: ++loads });
  await cache.get('k', load, keep);
  t.same(cache.get('k', load, keep, undefined, 60_000), { n: 1 }, 'young enough: the cached value');
  const start = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 30));
  t.ok(performance.now() - start >= 20);
  t.same(await later(cache.get('k', load, keep, undefined, 20)), { n: 2 }, 'too old: asked again');
  t.same(cache.get('k', load, keep), { n: 2 }, 'and the new value is kept');
});

t.test('then() and all() join values at once and promises after them', async (t) => {
  t.equal(
    then(2, (v) => v + 1),
    3,
    'a value: f at once',
  );
  t.equal(await then(Promise.resolve(2), (v) => v + 1), 3, 'a promise: f after it');
  t.same(all([1, 2]), [1, 2], 'no promise among them: the values at once');
  const waited = all([1, Promise.resolve(2)]);
  t.ok(waited instanceof Promise);
  t.same(await waited, [1, 2]);
});

t.test('a caller that is not a signal is asked for its signal only on a miss', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  let asked = 0;
  const caller = {
    get signal() {
      asked++;
      return new AbortController().signal;
    },
  };
  await cache.get('k', async () => ({ n: 1 }), keep, caller);
  t.equal(asked, 1, 'the miss asked for it');
  cache.get('k', async () => ({ n: 2 }), keep, caller);
  t.equal(asked, 1, 'the hit did not');
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
  await t.rejects(later(a), { message: 'first gave up' }, 'the first caller stops waiting at once');
  t.equal(calls[0]!.signal.aborted, false, 'the load goes on for the second');
  second.abort(new Error('second gave up'));
  await t.rejects(later(b), { message: 'second gave up' });
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
  await t.rejects(later(impatient));
  t.equal(calls[0]!.signal.aborted, false);
  calls[0]!.resolve({ n: 1 });
  t.same(await patient, { n: 1 });
});

t.test('an already aborted signal gets no load; a failing load nobody waits for harms nobody', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  const { calls, load } = manual<{ n: number }>();
  const ac = new AbortController();
  ac.abort(new Error('too late'));
  await t.rejects(later(cache.get('k', load, keep, ac.signal)), { message: 'too late' });
  t.equal(calls.length, 0);
  const other = new AbortController();
  const p = cache.get('k', load, keep, other.signal);
  other.abort(new Error('left'));
  await t.rejects(later(p));
  calls[0]!.reject(new Error('failed after everyone left'));
  await new Promise((r) => setImmediate(r));
  t.pass('no unhandled rejection');
  const failing = cache.get('j', async () => Promise.reject(new Error('boom')), keep);
  await t.rejects(later(failing), { message: 'boom' }, 'a waiter is told of the failure');
});

t.test('delete forgets one entry', async (t) => {
  const cache = new SharedCache<{ n: number }>(10);
  await cache.get('k', async () => ({ n: 1 }), keep);
  cache.delete('k');
  t.same(await cache.get('k', async () => ({ n: 2 }), keep), { n: 2 });
});
