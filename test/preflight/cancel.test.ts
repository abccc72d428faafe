// Deadlines cancel, they do not abandon: when a check's deadline passes, the registry and token
// requests still in flight for it are aborted (the server sees its connection closed), unless
// another check still waits for the same answer. Raw servers that accept and never answer record
// when each connection closed.
import t from 'tap';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Deadline } from '../../src/deadline.ts';
import type { ImageUse } from '../../src/findings.ts';
import { loopbackBarrier, silentServer } from '../helpers/silent.ts';
import { waitFor } from '../helpers/wait.ts';
import { engineFor } from './lib.ts';

const use = (image: string): ImageUse => ({ object: { kind: 'Pod' }, container: 'app', field: 'image', image });

// The engine's own per-request timeout is long (the configured deadline, 60 s): only the check's
// deadline can close the connections within the margins below.
const CONFIGURED = 60_000;
const DEADLINE = 500;
const MARGIN = 10_000;

t.test('a hanging registry sees its connection closed by the check deadline', async (t) => {
  const reg = await silentServer();
  t.teardown(reg.stop);
  const engine = engineFor({ deadline: CONFIGURED, registry: { endpoints: { [reg.host]: `http://${reg.host}` } } });
  t.teardown(() => engine.close());
  const started = performance.now();
  const [f] = await engine.check([use(`${reg.host}/demo/app:1.0`)], {
    credentials: { keyrings: [] },
    deadline: Deadline.after(DEADLINE),
  });
  t.equal(f!.reason, 'timeout');
  await waitFor(() => reg.closed.length > 0, {
    what: 'the connection to be closed while the engine still runs',
    timeoutMs: MARGIN,
  });
  t.ok(reg.closed[0]! - started >= DEADLINE - 50, 'not before the deadline');
  t.equal(reg.open(), 0, 'nothing left open');
});

t.test('a token server that hangs is cut off by the deadline too', async (t) => {
  const tokens = await silentServer();
  t.teardown(tokens.stop);
  // The registry asks for a token from the silent server.
  const registry: HttpServer = createHttpServer((req, res) => {
    req.resume();
    res.writeHead(401, {
      'www-authenticate': `Bearer realm="http://${tokens.host}/token",service="test"`,
      'content-length': '0',
    });
    res.end();
  });
  await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => registry.close(r)));
  const host = `127.0.0.1:${(registry.address() as AddressInfo).port}`;
  const engine = engineFor({ deadline: CONFIGURED, registry: { endpoints: { [host]: `http://${host}` } } });
  t.teardown(() => engine.close());
  const [f] = await engine.check([use(`${host}/demo/app:1.0`)], {
    credentials: { keyrings: [] },
    deadline: Deadline.after(DEADLINE),
  });
  t.equal(f!.reason, 'timeout');
  await waitFor(() => tokens.closed.length > 0, { what: 'the token request to be aborted', timeoutMs: MARGIN });
  t.equal(tokens.open(), 0);
});

t.test('a shared request is aborted only when the last check waiting for it gives up', async (t) => {
  const reg = await silentServer();
  t.teardown(reg.stop);
  const engine = engineFor({ deadline: CONFIGURED, registry: { endpoints: { [reg.host]: `http://${reg.host}` } } });
  t.teardown(() => engine.close());
  const image = `${reg.host}/demo/app:1.0`;
  const caller = new AbortController();
  const patient = engine.check([use(image)], {
    credentials: { keyrings: [] },
    deadline: Deadline.after(CONFIGURED, caller.signal),
  });
  const [early] = await engine.check([use(image)], {
    credentials: { keyrings: [] },
    deadline: Deadline.after(DEADLINE),
  });
  t.equal(early!.reason, 'timeout', 'the first check ends at its deadline');
  // An abort (wrongly) sent at that deadline was sent by now: once loopback has delivered it, the request must stay.
  await loopbackBarrier();
  t.equal(reg.closed.length, 0, 'the request goes on for the check still waiting');
  t.equal(reg.open(), 1, 'one request for both checks');
  caller.abort(new Error('the review was cancelled'));
  const [late] = await patient;
  t.equal(late!.reason, 'timeout', 'a cancelled check ends as a timeout');
  await waitFor(() => reg.closed.length > 0, { what: 'then the request to be aborted', timeoutMs: MARGIN });
});
