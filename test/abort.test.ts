// raceAbort: a promise's outcome, or the signal's abort if it comes first, and no listener left over.
import t from 'tap';
import { raceAbort } from '../src/abort.ts';

t.test('the outcome when it comes first; an abort after it changes nothing', async (t) => {
  const c = new AbortController();
  let aborted = 0;
  t.equal(await raceAbort(Promise.resolve(7), c.signal, () => aborted++), 7);
  await t.rejects(
    raceAbort(Promise.reject(new Error('no')), c.signal, () => aborted++),
    { message: 'no' },
  );
  c.abort(new Error('late'));
  t.equal(aborted, 0, 'onAbort did not run: the listeners were removed when the promises settled');
});

t.test('an abort first rejects with its reason and runs onAbort once, then the late outcome is ignored', async (t) => {
  const c = new AbortController();
  let resolve = (_v: number) => {};
  const late = new Promise<number>((r) => (resolve = r));
  let aborted = 0;
  const raced = raceAbort(late, c.signal, () => aborted++);
  c.abort(new Error('gave up'));
  await t.rejects(raced, { message: 'gave up' });
  resolve(1);
  await late;
  t.equal(aborted, 1);
});

t.test('an already aborted signal rejects at once and runs onAbort', async (t) => {
  let aborted = 0;
  const never = new Promise<number>(() => {});
  await t.rejects(
    raceAbort(never, AbortSignal.abort(new Error('before')), () => aborted++),
    { message: 'before' },
  );
  t.equal(aborted, 1);
});
