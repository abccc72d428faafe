// Time: every review is answered before the deadline (a registry that hangs becomes a `timeout`
// warning, never a denial), and a shutdown finishes the reviews in flight while readiness says 503.
import t from 'tap';
import { connect, type TLSSocket } from 'node:tls';
import { podReview, sample, serve, startRegistries, type Obj, type Registries } from './lib.ts';
import { waitFor } from '../helpers/wait.ts';

let regs: Registries;
t.before(async () => {
  regs = await startRegistries();
});
t.teardown(() => regs?.stop());

// Long enough that the registry's answers for the images that do not hang come well before it even
// on a busy machine; the time assertions allow a generous margin derived from it.
const DEADLINE = 4000;
const MARGIN = DEADLINE * 2;

t.test('a registry that hangs: allowed with a timeout warning, answered before the deadline', async (t) => {
  const s = await serve(regs, { deadline: DEADLINE });
  t.teardown(() => s.close());
  const hang = regs.plain.proxy!.fault({ kind: 'hang' }, { path: /^\/v2\/demo\/slow\// });
  t.teardown(() => hang.remove());
  regs.reset();

  const slow = `${regs.plain.host}/demo/slow:1.0`;
  let started = performance.now();
  const r = await s.review(podReview(regs, [{ name: 'app', image: slow }]));
  let elapsed = performance.now() - started;
  t.ok(elapsed < DEADLINE + MARGIN, `answered in ${Math.round(elapsed)} ms (deadline ${DEADLINE} ms)`);
  t.ok(
    regs.plain.proxy!.count({ path: '/v2/demo/slow/manifests/1.0' }) >= 1,
    'the registry was asked and did not answer',
  );
  t.equal(r.allowed, true, 'never a denial on our own uncertainty');
  t.equal(r.status, undefined);
  t.equal(r.warnings?.length, 1);
  t.match(r.warnings[0], `container "app": image "${slow}": the registry did not answer within `);
  const said = /did not answer within (\d+) ms;/.exec(r.warnings[0]);
  t.ok(
    said && Number(said[1]) <= DEADLINE && Number(said[1]) > DEADLINE / 2,
    `a whole number of ms, the time left of the deadline (${said?.[1]})`,
  );
  t.match(s.log.reviews().at(-1), {
    verdict: 'risk',
    action: 'warn',
    findings: [{ reason: 'timeout', action: 'warn' }],
  });

  // One hanging image does not hide a missing one: that is still denied, the slow one a warning.
  const missing = `${regs.plain.host}/demo/bad-app:1.0`;
  started = performance.now();
  const mixed = await s.review(
    podReview(regs, [
      { name: 'slow', image: `${regs.plain.host}/demo/slow:2.0` },
      { name: 'app', image: missing },
    ]),
  );
  elapsed = performance.now() - started;
  t.ok(elapsed < DEADLINE + MARGIN, `answered in ${Math.round(elapsed)} ms`);
  t.equal(mixed.allowed, false);
  t.match(mixed.status.message, `container "app": image "${missing}"`);
  t.notMatch(mixed.status.message, 'demo/slow', 'the slow image is not a reason to deny');
  t.match(mixed.warnings, [/container "slow": .*did not answer within/]);
});

t.test('a registry that answers half a manifest and stalls is a timeout too', async (t) => {
  const s = await serve(regs, { deadline: DEADLINE });
  t.teardown(() => s.close());
  const stall = regs.plain.proxy!.fault(
    { kind: 'hang-body' },
    { method: 'GET', path: /^\/v2\/demo\/app\/manifests\/sha256:/ },
  );
  t.teardown(() => stall.remove());
  // demo/app:multi is an index: the platform check GETs its body by digest, which never completes.
  const started = performance.now();
  const r = await s.review(podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/app:multi` }]));
  const elapsed = performance.now() - started;
  t.ok(elapsed < DEADLINE + MARGIN, `answered in ${Math.round(elapsed)} ms`);
  t.equal(stall.hits, 1, 'the index body was asked for, and half of it came');
  t.equal(r.allowed, true);
  t.match(r.warnings, [/did not answer within/]);
});

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Reads HTTP/1.1 responses (Content-Length framed) off one socket, in order. */
function responses(sock: TLSSocket): () => Promise<RawResponse> {
  let buf = Buffer.alloc(0);
  const ready: RawResponse[] = [];
  const waiting: ((r: RawResponse) => void)[] = [];
  let ended = false;
  const failAll = () => {
    ended = true;
    for (const w of waiting.splice(0)) w({ status: -1, headers: {}, body: 'connection closed' });
  };
  sock.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(
        lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
      );
      const length = Number(headers['content-length'] ?? 0);
      if (buf.length < end + 4 + length) return;
      const res = {
        status: Number(statusLine!.split(' ')[1]),
        headers,
        body: buf.subarray(end + 4, end + 4 + length).toString('utf8'),
      };
      buf = buf.subarray(end + 4 + length);
      const w = waiting.shift();
      if (w) w(res);
      else ready.push(res);
    }
  });
  sock.on('close', failAll);
  sock.on('error', failAll);
  return () => {
    const r = ready.shift();
    if (r) return Promise.resolve(r);
    if (ended) return Promise.resolve({ status: -1, headers: {}, body: 'connection closed' });
    return new Promise((resolve) => waiting.push(resolve));
  };
}

// What arrives on an open connection while the server closes: a readiness probe, or another review
// (answered 503 by fastify, like every request then, not reviewed by the server's own review route).
for (const second of ['GET /readyz', 'POST /validate'] as const)
  t.test(
    `shutdown: the review in flight completes; ${second} says 503 meanwhile; new connections are refused`,
    async (t) => {
      const s = await serve(regs);
      let closed = false;
      t.teardown(() => (closed ? undefined : s.close()));
      // The registry holds its answer until the test has sent the readiness probe, so the review is
      // still in flight while the server closes, however long each step takes.
      let release = () => {};
      const delay = regs.plain.proxy!.fault(
        { kind: 'hold', until: new Promise<void>((resolve) => (release = resolve)) },
        { method: 'HEAD', path: '/v2/demo/app/manifests/1.0' },
      );
      t.teardown(() => {
        release();
        delay.remove();
      });
      regs.reset();

      const url = new URL(s.url);
      const sock = await new Promise<TLSSocket>((resolve, reject) => {
        const c = connect(
          { host: url.hostname, port: Number(url.port), ca: regs.pki.caPem, servername: 'localhost' },
          () => resolve(c),
        );
        c.once('error', reject);
      });
      t.teardown(() => sock.destroy());
      const next = responses(sock);
      const body = JSON.stringify(sample('deployment-create.json', regs));
      sock.write(
        `POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      await waitFor(() => regs.plain.proxy!.count({ method: 'HEAD', path: '/v2/demo/app/manifests/1.0' }) > 0, {
        what: 'the review to reach the registry',
      });

      const closing = s.close().then(() => {
        closed = true;
      });
      // A second request that arrives on the open connection while closing. Once the server has it,
      // the registry may answer the review.
      const probed = new Promise<void>((resolve) =>
        (s.app.server as import('node:https').Server).on('request', (req) => {
          if (`${req.method} ${req.url}` === second) resolve();
        }),
      );
      sock.write(
        second === 'GET /readyz'
          ? 'GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n'
          : `POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      await probed;
      release();

      const review = await next();
      t.equal(review.status, 200, 'the review in flight was answered');
      const answer = JSON.parse(review.body) as Obj;
      t.equal(answer.response.allowed, true);
      t.equal(answer.response.uid, sample('deployment-create.json').request.uid);
      const probe = await next();
      t.equal(probe.status, 503, `${second} during shutdown: 503`);
      t.equal(probe.headers.connection, 'close', 'and the connection closes after it');

      const refused = await new Promise<string>((resolve) => {
        const c = connect(
          { host: url.hostname, port: Number(url.port), ca: regs.pki.caPem, servername: 'localhost' },
          () => {
            c.destroy();
            resolve('connected');
          },
        );
        c.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
      t.equal(refused, 'ECONNREFUSED', 'no new connections');
      await closing;
      t.ok(closed, 'close() resolved once the review in flight was answered');
      t.equal(s.log.reviews().length, 1, 'the review was logged');
    },
  );
