// Memory per request and overall: bodies are read with limits on nesting depth and element count
// that the largest real objects stay far below, a budget shared by all bodies in flight, and a cap
// on reviews running at once. Each refusal is prompt and plain, and the server keeps serving.
import t from 'tap';
import { connect } from 'node:tls';
import { bigDeploymentUpdate, deepArrays, manyObjects, reviewWithManyObjects } from '../helpers/big-objects.ts';
import { JsonShape, MAX_DEPTH, MAX_ELEMENTS } from '../../src/server/body.ts';
import { podReview, sample, serve, startRegistries, waitFor, type Registries, type TestServer } from './lib.ts';

let regs: Registries;
let s: TestServer;

t.before(async () => {
  regs = await startRegistries();
  s = await serve(regs);
});
t.teardown(async () => {
  await s?.close();
  await regs?.stop();
});

async function stillServing(t: Tap, server: TestServer, why: string) {
  const r = await server.review(sample('pod-create.json', regs));
  t.equal(r.allowed, false, `still serving ${why}`);
}
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('the largest real objects stay far below the limits and are reviewed', async (t) => {
  const body = Buffer.from(JSON.stringify(bigDeploymentUpdate(`${regs.plain.host}/demo/app:1.0`)));
  const shape = new JsonShape();
  t.equal(shape.feed(body, { depth: Infinity, elements: Infinity }), undefined);
  t.comment(
    `40 containers × 250 env, managedFields, object + oldObject: ${(body.length / 1048576).toFixed(1)} MiB, depth ${shape.maxDepth}, ${shape.elements} elements`,
  );
  t.ok(shape.maxDepth * 3 <= MAX_DEPTH, `depth ${shape.maxDepth} is a third of the limit or less`);
  t.ok(shape.elements * 2 <= MAX_ELEMENTS, `${shape.elements} elements are half the limit or less`);
  const r = await s.review(JSON.parse(body.toString()));
  t.equal(r.allowed, true);
});

t.test('bodies past the depth or element limits are refused with a plain 400 before they are parsed', async (t) => {
  const cases: [string, Buffer, RegExp][] = [
    ['2M empty objects in an array', manyObjects(6 * 1024 * 1024), /more than 500000 JSON elements/],
    ['the same inside a review', reviewWithManyObjects(6 * 1024 * 1024), /more than 500000 JSON elements/],
    ['arrays 1M deep', deepArrays(1_000_000), /nests deeper than 64 levels/],
    ['arrays 65 deep', deepArrays(65), /nests deeper than 64 levels/],
  ];
  for (const [name, body, reason] of cases) {
    const res = await s.post(body);
    t.equal(res.status, 400, name);
    t.match(res.json.error, reason, name);
  }
  const shallow = await s.post(deepArrays(64));
  t.match(shallow.json.error, /AdmissionReview/, '64 deep is parsed (and is no AdmissionReview)');
  await stillServing(t, s, 'after hostile bodies');
});

/** Opens a TLS connection, sends headers announcing `length` bytes and `first` of them; never the rest. */
function holdBody(
  server: TestServer,
  length: number,
  first: string,
): Promise<{ close(): void; answer: Promise<string> }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const sock = connect(
      { host: url.hostname, port: Number(url.port), ca: regs.pki.caPem, servername: 'localhost' },
      () => {
        sock.write(
          `POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n${first}`,
        );
        let text = '';
        const answer = new Promise<string>((done) => {
          sock.on('data', (d) => (text += d.toString()));
          sock.on('close', () => done(text));
        });
        resolve({ close: () => sock.destroy(), answer });
      },
    );
    sock.on('error', reject);
  });
}

t.test('bodies in flight share a memory budget: past it a prompt 429, freed when a request ends', async (t) => {
  const tight = await serve(regs, { server: { bodyMemory: 4 * 1024 * 1024 } });
  t.teardown(() => tight.close());
  // 700 KB read of a body still arriving: ~2.8 MB of the 4 MB budget.
  const held = await holdBody(tight, 2_000_000, `{"x":"${'a'.repeat(700_000)}`);
  // The metric says when the server holds all of it (a busy machine only makes that later); the
  // held request must not reach the server's request timeout while the test waits for it.
  const bodyBytes = async () => {
    const text = (await tight.get('/metrics')).text;
    return Number(/^pullguard_review_body_bytes (\d+)/m.exec(text)?.[1] ?? Number.NaN);
  };
  const heldBytes = await waitFor('the held body to be read', async () => {
    const n = await bodyBytes();
    return n >= 700_000 * 4 ? n : undefined;
  });
  t.ok(heldBytes <= 4 * 1024 * 1024, `the held body takes ${heldBytes} of the 4 MiB budget`);
  const big = podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/app:1.0` }]);
  big.request.object.metadata.annotations = { blob: 'b'.repeat(400_000) };
  const refused = await tight.post(big);
  t.equal(refused.status, 429, 'a body that does not fit beside it is refused at once');
  t.match(refused.json.error, /too many large review bodies/);
  t.equal(refused.headers['retry-after'], '1');
  held.close();
  await waitFor('the budget to be given back', async () => (await bodyBytes()) === 0);
  const after = await tight.post(big);
  t.equal(after.status, 200);
  t.equal(after.json.response.allowed, true, 'the same body is reviewed once the other request is gone');
  t.equal(await bodyBytes(), 0, 'and nothing is held after its review');
});

t.test('reviews running at once are capped: the next gets a prompt 429', async (t) => {
  const one = await serve(regs, { server: { reviewsInFlight: 1 }, deadline: 5000 });
  t.teardown(() => one.close());
  regs.plain.proxy!.fault({ kind: 'hang' }, { path: /\/v2\/demo\/slow\// });
  t.teardown(() => regs.plain.proxy!.clearRules());
  const slow = one.post(podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/slow:1` }]));
  await waitFor(
    'the first review to reach the registry',
    () => regs.plain.proxy!.count({ path: /\/v2\/demo\/slow\// }) > 0,
  );
  const second = await one.post(sample('pod-create.json', regs));
  t.equal(second.status, 429);
  t.match(second.json.error, /answering 1 reviews already/);
  const first = await slow;
  t.equal(first.status, 200, 'the review in flight is answered');
  await stillServing(t, one, 'once the first is done');
});
