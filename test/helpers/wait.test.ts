// The one polling helper and the loopback barrier behave as the tests that use them assume.
import t from 'tap';
import { connect } from 'node:net';
import { loopbackBarrier, silentServer } from './silent.ts';
import { waitFor } from './wait.ts';

t.test('waitFor returns the first value the check gives; undefined, null and false are not one', async (t) => {
  const answers: unknown[] = [undefined, null, false, 0];
  t.equal(await waitFor(() => answers.shift() as number | undefined, { what: 'a number', everyMs: 1 }), 0);
  let calls = 0;
  const value = await waitFor(async () => (++calls < 3 ? undefined : { calls }), { what: 'three calls', everyMs: 1 });
  t.same(value, { calls: 3 }, 'an async check, polled until it answers');
});

t.test('a check that throws is asked again; past the net the message says what and the last error', async (t) => {
  let calls = 0;
  const ok = await waitFor(
    () => {
      if (++calls < 3) throw new Error('not listening yet');
      return 'up';
    },
    { what: 'the server', everyMs: 1 },
  );
  t.equal(ok, 'up');
  await t.rejects(
    waitFor(
      () => {
        throw new Error('connection refused');
      },
      { what: 'the API server', timeoutMs: 30, everyMs: 5 },
    ),
    { message: /waiting for the API server \(last error: connection refused\)/ },
  );
  await t.rejects(
    waitFor(() => false, { what: 'nothing', timeoutMs: 0 }),
    { message: /waiting for nothing$/ },
  );
});

t.test('loopbackBarrier: a connection this process closed before it is seen closed after it', async (t) => {
  const server = await silentServer();
  t.teardown(server.stop);
  const [port] = server.host.split(':').slice(1).map(Number);
  for (let round = 1; round <= 20; round++) {
    const socket = connect(port!, '127.0.0.1');
    socket.on('error', () => undefined);
    await waitFor(() => server.accepted.length === round, { what: `connection ${round}`, everyMs: 1 });
    socket.destroy();
    await loopbackBarrier();
    if (server.closed.length !== round) t.fail(`round ${round}: the close was not seen by the barrier`);
  }
  t.equal(server.closed.length, 20, 'every close seen by then');
});
