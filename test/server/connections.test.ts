// What one client can hold: a request trickled byte by byte is cut off by the request timeout
// (below the webhook's timeoutSeconds), connections past the cap are closed at once, and idle
// kept-alive connections outlive the API server's own idle timeout.
import t from 'tap';
import { connect, type TLSSocket } from 'node:tls';
import { sample, serve, startRegistries, type Registries, type TestServer } from './lib.ts';
import { waitFor } from '../helpers/wait.ts';

let regs: Registries;

t.before(async () => {
  regs = await startRegistries();
});
t.teardown(() => regs?.stop());

function open(server: TestServer): Promise<TLSSocket> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const sock = connect(
      { host: url.hostname, port: Number(url.port), ca: regs.pki.caPem, servername: 'localhost' },
      () => resolve(sock),
    );
    sock.on('error', reject);
  });
}

t.test('a body trickled a byte at a time is cut off by the request timeout', async (t) => {
  const deadline = 1000;
  const s = await serve(regs, { deadline });
  t.teardown(() => s.close());
  const sock = await open(s);
  let closed = false;
  let answer = '';
  sock.on('data', (d) => (answer += d.toString()));
  sock.on('close', () => (closed = true));
  sock.on('error', () => undefined);
  sock.write(
    'POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{',
  );
  const trickle = setInterval(() => sock.writable && sock.write(' '), 200);
  t.teardown(() => clearInterval(trickle));
  // The server's request timeout is the deadline plus a second; a generous bound above it.
  await waitFor(() => closed, { what: 'the server to close the trickling connection', timeoutMs: 30_000 });
  t.ok(closed, 'closed by the server while the client was still sending');
  t.notMatch(answer, /HTTP\/1\.1 200/);
  const r = await s.review(sample('pod-create.json', regs));
  t.equal(r.allowed, false, 'still serving');
});

t.test('connections past the cap are closed at once; the ones inside it are served', async (t) => {
  const s = await serve(regs, { server: { maxConnections: 3 } });
  t.teardown(() => s.close());
  const held = [await open(s), await open(s), await open(s)];
  t.teardown(() => {
    for (const h of held) h.destroy();
  });
  const refused = await open(s).then(
    (sock) =>
      new Promise<boolean>((resolve) => {
        sock.on('close', () => resolve(true));
        sock.on('error', () => resolve(true));
      }),
    () => true,
  );
  t.ok(refused, 'the fourth connection is closed by the server');
  for (const h of held) h.destroy();
  const r = await waitFor(
    async () => {
      const res = await s.post(sample('pod-create.json', regs));
      return res.status === 200 ? res : undefined;
    },
    { what: 'a slot to be free' },
  );
  t.equal(r.json.response.allowed, false, 'served once connections are free');
});
