// One Deadline: an instant, what is left of it, a signal made only when asked for (aborting at the
// instant or with the caller's signal), and shares of it for a part of the work.
import t from 'tap';
import { Deadline, DeadlineError } from '../src/deadline.ts';

// The deadline's timer does not hold the process open (the work it bounds does): this test's does.
const open = setInterval(() => {}, 1000);
t.teardown(() => clearInterval(open));

/** Resolves when the signal aborts (at once if it has). */
const aborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) =>
    signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true }),
  );

t.test('an instant on the performance.now() clock, and what is left of it', async (t) => {
  const before = performance.now();
  const d = Deadline.after(60_000);
  t.ok(d.at >= before + 60_000 && d.at <= performance.now() + 60_000);
  t.ok(d.remaining() <= 60_000 && d.remaining() > 0);
  t.equal(d.ms(), Math.floor(d.remaining()) || 1, 'whole milliseconds');
  t.notOk(d.done);
  const past = new Deadline(performance.now() - 1);
  t.equal(past.remaining(), 0, 'never below 0');
  t.equal(past.ms(), 1, 'at least 1 ms, for the words');
  t.ok(past.done);
});

t.test('the signal aborts at the instant, with a DeadlineError naming the time given', async (t) => {
  const d = Deadline.after(50);
  const signal = d.signal;
  t.equal(d.signal, signal, 'one signal, made once');
  await aborted(signal);
  t.ok(performance.now() >= d.at - 1, 'not before the instant');
  t.type(signal.reason, DeadlineError);
  t.match((signal.reason as Error).message, /no answer within the \d+ ms deadline/);
  t.ok(d.done);
});

t.test("the caller's signal ends it early, with the caller's reason; a lazy one is made only when asked", async (t) => {
  const caller = new AbortController();
  const d = Deadline.after(600_000, caller.signal);
  caller.abort(new Error('client gone'));
  t.ok(d.done, 'done as soon as the caller gave up');
  t.equal(d.signal.reason.message, 'client gone');

  let made = 0;
  const later = new AbortController();
  const lazy = new Deadline(performance.now() + 600_000, () => {
    made++;
    return later.signal;
  });
  t.notOk(lazy.done);
  t.equal(made, 0, 'not made for remaining() or done');
  const signal = lazy.signal;
  t.equal(made, 1, 'made when the signal is asked for');
  later.abort(new Error('hung up'));
  await aborted(signal);
  t.equal(signal.reason.message, 'hung up');
});

t.test('a share ends at its part of the time left, and with its parent', async (t) => {
  const parent = Deadline.after(600_000);
  const half = parent.share(0.5);
  t.ok(half.at < parent.at && half.at > performance.now() + 200_000, 'about half of what is left');
  const caller = new AbortController();
  const outer = Deadline.after(600_000, caller.signal);
  const part = outer.share(0.5);
  const signal = part.signal;
  t.notOk(signal.aborted);
  caller.abort(new Error('shutdown'));
  await aborted(signal);
  t.ok(part.done, 'the parent ending ends the share');
  t.equal(signal.reason.message, 'shutdown');

  const whole = Deadline.after(600_000);
  const short = whole.share(0.0001);
  await aborted(short.signal);
  t.type(short.signal.reason, DeadlineError, 'the share ends at its own instant');
  t.notOk(whole.signal.aborted, 'its parent goes on');
});
