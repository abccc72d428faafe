// What leaves a review is bounded and clean whatever the pod says: the denial message and the audit
// annotation are capped like the warnings, images are cut in logs, and log fields carry no raw C1
// controls or line separators.
import t from 'tap';
import { podReview, serve, startRegistries, type Registries, type TestServer } from '../server/lib.ts';

// The caps, as the warnings': 4096 characters for the message and for the findings annotation.
const DENIAL_MAX = 4096;
const AUDIT_FINDINGS_MAX = 4096;

let regs: Registries;
let s: TestServer;

t.before(async () => {
  regs = await startRegistries();
  s = await serve(regs, { deadline: 5000 });
});
t.teardown(async () => {
  await s?.close();
  await regs?.stop();
});

const runes = (text: string) => [...text].length;

t.test('10,000 bad images: the denial and the audit annotation stay within their caps', async (t) => {
  // Upper case: none parses, so nothing is asked of a registry.
  const containers = Array.from({ length: 10_000 }, (_, i) => ({ name: `c${i}`, image: `Bad/Image${i}:1` }));
  const res = await s.post(podReview(regs, containers));
  t.equal(res.status, 200);
  const r = res.json.response;
  t.equal(r.allowed, false);
  t.ok(runes(r.status.message) <= DENIAL_MAX, `status.message: ${runes(r.status.message)} characters`);
  t.match(r.status.message, /and \d+ more; run pullguard check/);
  t.ok(
    r.auditAnnotations.findings.length <= AUDIT_FINDINGS_MAX,
    `findings annotation: ${r.auditAnnotations.findings.length}`,
  );
  t.ok(Number(r.auditAnnotations['findings-omitted']) > 9000, 'the rest is counted');
  t.ok(res.text.length < 64 * 1024, `the whole answer: ${res.text.length} bytes`);
});

t.test('ten 700 KB image strings (7 MB under the 8 MiB body limit): a small answer and a small log line', async (t) => {
  const before = s.log.text().length;
  const containers = Array.from({ length: 10 }, (_, i) => ({ name: `c${i}`, image: `${'A'.repeat(700_000)}${i}` }));
  const res = await s.post(podReview(regs, containers));
  t.equal(res.status, 200);
  t.ok(res.text.length < 64 * 1024, `the answer: ${res.text.length} bytes`);
  const logged = s.log.text().length - before;
  t.ok(logged < 64 * 1024, `the log: ${logged} bytes`);
});

t.test('log fields escape C1 controls and U+2028/2029 as the warnings do', async (t) => {
  const body = podReview(
    regs,
    [{ name: 'app\u0085x', image: `${regs.plain.host}/demo/nope\u2028:1` }],
    // not a UUID on purpose: a client can send any uid
    'uid\u0085\u2029' as `${string}-${string}-${string}-${string}-${string}`,
  );
  body.request.name = 'pod\u009bname';
  body.request.kind.kind = 'Pod\u2028';
  await s.post(body);
  const line = s.log
    .text()
    .split('\n')
    .find((l) => l.includes('"msg":"review"') && JSON.parse(l).uid === 'uid\\u0085\\u2029');
  t.ok(line, 'the review is logged with its fields escaped');
  t.notMatch(s.log.text(), /[\u0080-\u009f\u2028\u2029]/, 'no raw C1 control or line separator in the log');
});
