// The HTTP face of the webhook: what malformed input gets (a 400 with a plain reason, and the server
// keeps serving), body size limits against real multi-MiB objects, health, readiness and metrics.
import t from 'tap';
import { connect } from 'node:tls';
import { sample, serve, startRegistries, type Registries, type TestServer } from './lib.ts';

let regs: Registries;
let s: TestServer;
let small: TestServer;
const SMALL_LIMIT = 64 * 1024;

t.before(async () => {
  regs = await startRegistries();
  s = await serve(regs);
  small = await serve(regs, { server: { bodyLimit: SMALL_LIMIT } });
});
t.teardown(async () => {
  await s?.close();
  await small?.close();
  await regs?.stop();
});

const json = { 'content-type': 'application/json' };

/** The server still reviews: a real sample gets its real answer. */
async function stillServing(t: Tap, server: TestServer, why: string) {
  const r = await server.review(sample('pod-create.json', regs));
  t.equal(r.allowed, false, `still serving ${why}`);
}
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('malformed input gets a 400 with a plain reason', async (t) => {
  const good = sample('pod-create.json', regs);
  const without = (path: string[]) => {
    const b = structuredClone(good);
    let node = b;
    for (const k of path.slice(0, -1)) node = node[k];
    delete node[path.at(-1)!];
    return b;
  };
  const cases: [string, string | Buffer | undefined, Record<string, string>, RegExp][] = [
    ['not JSON', 'this is not json', json, /not valid JSON/],
    ['truncated JSON', JSON.stringify(good).slice(0, 200), json, /not valid JSON/],
    ['empty body', '', json, /empty/],
    ['no body, no content type', undefined, {}, /empty/],
    [
      'wrong apiVersion',
      JSON.stringify({ ...good, apiVersion: 'admission.k8s.io/v1beta1' }),
      json,
      /apiVersion must be admission\.k8s\.io\/v1/,
    ],
    ['wrong kind', JSON.stringify({ ...good, kind: 'Pod' }), json, /kind must be AdmissionReview/],
    ['no uid', JSON.stringify(without(['request', 'uid'])), json, /uid is required/],
    ['empty uid', JSON.stringify({ ...good, request: { ...good.request, uid: '' } }), json, /uid is required/],
    ['no request', JSON.stringify(without(['request'])), json, /request is required/],
    ['a JSON array', '[1,2,3]', json, /AdmissionReview/],
    ['JSON null', 'null', json, /AdmissionReview/],
    ['wrong content type: text/plain', JSON.stringify(good), { 'content-type': 'text/plain' }, /must be JSON/],
    [
      'wrong content type: yaml',
      'apiVersion: admission.k8s.io/v1\n',
      { 'content-type': 'application/yaml' },
      /must be JSON/,
    ],
    ['wrong content type: form', 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }, /must be JSON/],
    ['a prototype-polluting body', '{"__proto__":{"allowed":true}}', json, /not valid JSON|AdmissionReview/],
  ];
  for (const [name, body, headers, reason] of cases) {
    const res = await s.post(body ?? '', { headers });
    t.equal(res.status, 400, `${name}: 400`);
    t.match(res.headers['content-type'], /application\/json/, `${name}: JSON`);
    t.same(Object.keys(res.json), ['error'], `${name}: only a plain error`);
    t.match(res.json.error, reason, `${name}: ${res.json.error}`);
    t.notMatch(res.text, /at \w+ \(|node_modules|\.ts:\d+/, `${name}: no stack trace`);
  }
  t.equal(s.log.reviews().length, 0, 'none of them counted as a review');
  t.ok(
    s.log.lines().filter((l) => l.msg === 'bad admission request').length >= cases.length,
    'each is logged as a bad request',
  );
  await stillServing(t, s, 'after all of them');
});

t.test("an object's managedFields is never parsed; a prototype key in it is refused as anywhere", async (t) => {
  const text = JSON.stringify(sample('pod-create.json', regs));
  t.match(text, '"managedFields":[', 'the captured review carries managedFields');
  const plain = await s.post(text, { headers: json });
  t.equal(plain.status, 200);
  // Its content is left out before parsing (src/server/body.ts): what is there makes no difference.
  const odd = await s.post(text.replace('"managedFields":[', '"managedFields":[not JSON at all, '), { headers: json });
  t.equal(odd.status, 200);
  t.same(odd.json, plain.json, 'the same answer');
  const proto = await s.post(text.replace('"managedFields":[', '"managedFields":[{"__proto__":{"x":1}},'), {
    headers: json,
  });
  t.equal(proto.status, 400);
  t.match(proto.json.error, /sets __proto__ or constructor/);
});

t.test('a charset on the JSON content type is fine', async (t) => {
  const res = await s.post(sample('deployment-create.json', regs), {
    headers: { 'content-type': 'application/json; charset=utf-8' },
  });
  t.equal(res.status, 200);
  t.equal(res.json.response.allowed, true);
});

t.test('over the configured limit: a review is allowed unchecked, other bodies get a 400', async (t) => {
  const big = sample('pod-create.json', regs);
  big.request.object.metadata.annotations = { blob: 'x'.repeat(SMALL_LIMIT) };
  const res = await small.post(big);
  // A well-formed review past the limit is answered, allowed unchecked, not refused (test/server/body.test.ts).
  t.equal(res.status, 200);
  t.equal(res.json.response.allowed, true);
  t.match(
    res.json.response.warnings[0],
    `its review body is larger than the limit (${SMALL_LIMIT} bytes, server.bodyLimit)`,
  );
  // Several MiB over a small limit: the server must not read it all, nor fall over.
  const huge = Buffer.alloc(5 * 1024 * 1024, 'a');
  const res2 = await small.post(huge);
  t.equal(res2.status, 400, '5 MiB over a 64 KiB limit: refused');
  t.match(res2.json, { error: /larger than the limit/ });
  await stillServing(t, small, 'after bodies over the limit');
  const justUnder = sample('deployment-create.json', regs);
  const room = SMALL_LIMIT - JSON.stringify(justUnder).length - 200;
  justUnder.request.object.metadata.annotations = { blob: 'y'.repeat(room) };
  const ok = await small.post(justUnder);
  t.equal(ok.status, 200, 'a body just under the limit is reviewed');
});

t.test('real objects of several MiB are admitted under the default limit', async (t) => {
  t.ok(
    s.config.server.bodyLimit >= 7 * 1024 * 1024,
    `the default limit (${s.config.server.bodyLimit}) takes object + oldObject of an object near the API server's 3 MiB`,
  );
  // A Pod with 3 MiB of annotations, created...
  const create = sample('pod-create.json', regs);
  create.request.object.metadata.annotations = Object.fromEntries(
    Array.from({ length: 48 }, (_, i) => [`example.com/blob-${i}`, 'z'.repeat(64 * 1024)]),
  );
  const body = JSON.stringify(create);
  t.ok(body.length > 3 * 1024 * 1024, `${(body.length / 1048576).toFixed(1)} MiB`);
  const res = await s.post(body);
  t.equal(res.status, 200);
  t.equal(res.json.response.allowed, false, 'and reviewed like any other: the image does not exist');
  // ...and updated: object and oldObject both carry them (a 6+ MiB AdmissionReview).
  const update = sample('pod-update-server-side-apply.json', regs);
  for (const o of [update.request.object, update.request.oldObject])
    o.metadata.annotations = create.request.object.metadata.annotations;
  const updateBody = JSON.stringify(update);
  t.ok(updateBody.length > 6 * 1024 * 1024, `${(updateBody.length / 1048576).toFixed(1)} MiB`);
  regs.reset();
  const res2 = await s.post(updateBody);
  t.equal(res2.status, 200);
  t.equal(res2.json.response.allowed, true);
  t.equal(regs.requests(), 0, 'images unchanged: no registry request');
  await stillServing(t, s, 'after large bodies');
});

t.test('a client that sends half a body and hangs up does not disturb the server', async (t) => {
  const url = new URL(s.url);
  const pki = regs.pki;
  await new Promise<void>((resolve, reject) => {
    const sock = connect({ host: url.hostname, port: Number(url.port), ca: pki.caPem, servername: 'localhost' }, () => {
      sock.write(
        `POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"apiVersion":`,
      );
      setTimeout(() => {
        sock.destroy();
        resolve();
      }, 100);
    });
    sock.on('error', reject);
  });
  await stillServing(t, s, 'after an aborted upload');
});

t.test('health, readiness, metrics, and what else answers', async (t) => {
  const health = await s.get('/healthz');
  t.equal(health.status, 200);
  t.same(health.json, { status: 'ok' });
  const ready = await s.get('/readyz');
  t.equal(ready.status, 200);
  t.same(ready.json, { status: 'ready' });
  const metrics = await s.get('/metrics');
  t.equal(metrics.status, 200);
  t.match(metrics.text, /# TYPE pullguard_reviews_total counter/);
  t.match(metrics.text, /# TYPE pullguard_review_duration_seconds histogram/);
  t.match(metrics.text, /# TYPE pullguard_registry_requests_total counter/);
  t.match(metrics.text, /# TYPE pullguard_cache_hits gauge/);
  t.match(metrics.text, /# TYPE pullguard_registry_ratelimit_remaining gauge/);
  const server = s.app.server as import('node:https').Server;
  t.ok(
    server.keepAliveTimeout > 90_000,
    `idle connections outlive the API server's 90 s idle timeout (${server.keepAliveTimeout} ms), so it never sends a review on a connection being closed`,
  );
  const notFound = await s.get('/nothing-here');
  t.equal(notFound.status, 404);
  const getValidate = await s.get('/validate');
  t.equal(getValidate.status, 404, 'GET /validate is not a route');
});
