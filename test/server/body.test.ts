// Memory per request and overall: bodies are read with limits on nesting depth and element count
// that the largest real objects stay far below, a budget shared by all bodies in flight, and a cap
// on reviews running at once. Each refusal is prompt and plain, and the server keeps serving.
import t from 'tap';
import { connect } from 'node:tls';
import { bigDeploymentUpdate, deepArrays, manyObjects, reviewWithManyObjects } from '../helpers/big-objects.ts';
import { JsonShape, MAX_DEPTH, MAX_ELEMENTS } from '../../src/server/body.ts';
import { type Obj, podReview, runes, sample, serve, startRegistries, type Registries, type TestServer } from './lib.ts';
import { waitFor } from '../helpers/wait.ts';

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

t.test(
  'a limit passed inside a chunk: the rest is scanned all the same, so the body is followed to its end',
  async (t) => {
    const text = Buffer.from('{"a":[[[1,2,3]]],"b":[4,5,6,7],"c":"[[[,,,"}');
    const full = new JsonShape();
    t.equal(full.feed(text, { depth: Infinity, elements: Infinity }), undefined);
    for (const [limits, why] of [
      [{ depth: 2, elements: Infinity }, /nests deeper than 2 levels/],
      [{ depth: Infinity, elements: 3 }, /has more than 3 JSON elements/],
    ] as const) {
      const shape = new JsonShape();
      t.match(shape.feed(text, limits), why);
      t.same(
        { elements: shape.elements, containers: shape.containers, maxDepth: shape.maxDepth, closed: shape.closed },
        { elements: full.elements, containers: full.containers, maxDepth: full.maxDepth, closed: true },
        `past ${JSON.stringify(limits)}: counted to the end`,
      );
    }
    const open = new JsonShape();
    open.feed(Buffer.from('{"a":[1,"]'));
    t.equal(open.closed, false, 'a text that stops inside a string or a container is not closed');
  },
);

t.test(
  'bodies that are no AdmissionReview past the depth or element limits get a plain 400 before they are parsed',
  async (t) => {
    const cases: [string, Buffer, RegExp][] = [
      ['2M empty objects in an array', manyObjects(6 * 1024 * 1024), /no AdmissionReview/],
      ['arrays 1M deep', deepArrays(1_000_000), /nests deeper than 64 levels/],
      ['arrays 65 deep', deepArrays(65), /nests deeper than 64 levels/],
      [
        'a review without request.uid',
        Buffer.from(
          reviewWithManyObjects(6 * 1024 * 1024)
            .toString()
            .replace('"uid":"x",', ''),
        ),
        /request\.uid/,
      ],
    ];
    for (const [name, body, reason] of cases) {
      const res = await s.post(body);
      t.equal(res.status, 400, name);
      t.match(res.json.error, reason, name);
    }
    const shallow = await s.post(deepArrays(64));
    t.match(shallow.json.error, /AdmissionReview/, '64 deep is parsed (and is no AdmissionReview)');
    await stillServing(t, s, 'after hostile bodies');
  },
);

/**
 * A real review (a captured fixture) whose containers carry `n` empty args, written where and how
 * the API server writes them: after the image (Go's field order), compact, with managedFields
 * naming the field.
 */
function withEmptyArgs(review: Obj, sides: ('object' | 'oldObject')[], n: number): Buffer {
  for (const side of sides) {
    const pod = review.request[side];
    pod.spec.containers = pod.spec.containers.map((c: Obj) => {
      const { name, image, ...rest } = c;
      return { name, image, args: new Array(n).fill(''), ...rest };
    });
    for (const entry of pod.metadata.managedFields ?? []) {
      const containers = entry.fieldsV1?.['f:spec']?.['f:containers'] ?? {};
      for (const fields of Object.values(containers) as Obj[]) fields['f:args'] = {};
    }
  }
  return Buffer.from(JSON.stringify(review));
}

/** The count of a series on /metrics, 0 when absent. */
async function metric(server: TestServer, series: string): Promise<number> {
  const text = (await server.get('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

t.test('valid objects the API server accepts are checked, however many elements they hold', async (t) => {
  // Issue 28 item 6: 510,000 empty args got a 400 "more than 500000 JSON elements", which the
  // chart's failurePolicy: Ignore turned into an unchecked pod.
  const create = withEmptyArgs(sample('pod-create.json', regs), ['object'], 510_000);
  const update = withEmptyArgs(sample('pod-update-set-image.json', regs), ['object', 'oldObject'], 260_000);
  for (const [name, body] of [
    ['a Pod CREATE with 510,000 empty args', create],
    ['a Pod UPDATE with 260,000 empty args in object and oldObject', update],
  ] as const) {
    const shape = new JsonShape();
    shape.feed(body, { depth: Infinity, elements: Infinity });
    t.comment(`${name}: ${body.length} bytes, ${shape.elements} elements`);
    const res = await s.post(body);
    t.equal(res.status, 200, name);
    t.equal(res.json.response?.allowed, false, `${name}: its missing image is found and denied`);
    t.match(res.json.response?.status?.message, /demo\/bad/, name);
  }
});

/** A Pod CREATE (pod-create.json) whose container's args nest `depth` levels below the body's top. */
function deepInReview(depth: number): Buffer {
  const review = sample('pod-create.json', regs);
  const text = JSON.stringify(review);
  // the container's args array is the 7th level: review, request, object, spec, containers, container, args
  const nested = `${'['.repeat(depth - 6)}${']'.repeat(depth - 6)}`;
  return Buffer.from(text.replace('"name":"app",', `"name":"app","args":${nested},`));
}

t.test("well-formed reviews past pullguard's own limits are allowed, saying they were not checked", async (t) => {
  const small = await serve(regs, { server: { bodyLimit: 1024 * 1024 } });
  const roomy = await serve(regs, { server: { bodyLimit: 16 * 1024 * 1024, bodyMemory: 512 * 1024 * 1024 } });
  t.teardown(() => Promise.all([small.close(), roomy.close()]));
  const elements = MAX_ELEMENTS + 1000;
  const pod = () => sample('pod-create.json', regs);
  const uid = pod().request.uid as string;
  const cases: [string, TestServer, Buffer, string, string, RegExp][] = [
    [
      'over the byte limit',
      small,
      withEmptyArgs(pod(), ['object'], 510_000),
      uid,
      'size',
      /larger than the limit \(1048576 bytes/,
    ],
    [
      'over the element limit',
      roomy,
      withEmptyArgs(pod(), ['object'], elements),
      uid,
      'elements',
      new RegExp(`more than ${MAX_ELEMENTS} JSON elements`),
    ],
    ['over the depth limit', s, deepInReview(MAX_DEPTH + 1), uid, 'depth', /nests deeper than 64 levels/],
    ['more than the memory budget', s, reviewWithManyObjects(6 * 1024 * 1024), 'x', 'memory', /server\.bodyMemory/],
  ];
  for (const [name, server, body, wantUid, limit, why] of cases) {
    const before = await metric(server, `pullguard_reviews_unchecked_total{limit="${limit}"}`);
    const res = await server.post(body);
    t.equal(res.status, 200, name);
    const r = res.json.response ?? {};
    t.equal(r.allowed, true, `${name}: allowed`);
    t.equal(r.uid, wantUid, `${name}: for its uid`);
    t.equal(r.warnings?.length, 1, `${name}: one warning`);
    t.match(r.warnings?.[0], /^pullguard: .*not checked/, `${name}: the warning says so`);
    t.match(r.warnings?.[0], why, `${name}: and why`);
    t.match(r.warnings?.[0], /; run pullguard check on its manifest$/, `${name}: and what to do`);
    t.ok(runes(r.warnings?.[0] ?? '') <= 256, `${name}: within the API server's warning limit`);
    t.equal(r.auditAnnotations?.verdict, 'unchecked', `${name}: audit annotation`);
    t.match(r.auditAnnotations?.unchecked, why, `${name}: audit annotation says why`);
    t.equal(
      await metric(server, `pullguard_reviews_unchecked_total{limit="${limit}"}`),
      before + 1,
      `${name}: counted`,
    );
  }
  await stillServing(t, s, 'after them');
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
  const heldBytes = await waitFor(
    async () => {
      const n = await bodyBytes();
      return n >= 700_000 * 4 ? n : undefined;
    },
    { what: 'the held body to be read' },
  );
  t.ok(heldBytes <= 4 * 1024 * 1024, `the held body takes ${heldBytes} of the 4 MiB budget`);
  const big = podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/app:1.0` }]);
  big.request.object.metadata.annotations = { blob: 'b'.repeat(400_000) };
  const refused = await tight.post(big);
  t.equal(refused.status, 429, 'a body that does not fit beside it is refused at once');
  t.match(refused.json.error, /too many large review bodies/);
  t.equal(refused.headers['retry-after'], '1');
  held.close();
  await waitFor(async () => (await bodyBytes()) === 0, { what: 'the budget to be given back' });
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
  await waitFor(() => regs.plain.proxy!.count({ path: /\/v2\/demo\/slow\// }) > 0, {
    what: 'the first review to reach the registry',
  });
  const second = await one.post(sample('pod-create.json', regs));
  t.equal(second.status, 429);
  t.match(second.json.error, /answering 1 reviews already/);
  const first = await slow;
  t.equal(first.status, 200, 'the review in flight is answered');
  await stillServing(t, one, 'once the first is done');
});

t.test(
  'past a limit: a long name leaves the fix whole, audit mode records without a warning, a DELETE just passes',
  async (t) => {
    const named = sample('pod-create.json', regs);
    named.request.name = 'n'.repeat(253);
    named.request.object.metadata.name = 'n'.repeat(253);
    const body = withEmptyArgs(named, ['object'], 10_000);
    const small = await serve(regs, { server: { bodyLimit: 16 * 1024 } });
    t.teardown(() => small.close());
    const enforce = (await small.post(body)).json.response;
    t.ok(runes(enforce.warnings[0]) <= 256, `${runes(enforce.warnings[0])} characters`);
    t.match(
      enforce.warnings[0],
      /^pullguard: the images of Pod "lab-demo\/n+…" were not checked: its review body is larger/,
    );
    t.match(enforce.warnings[0], /; run pullguard check on its manifest$/);
    const audit = (await small.post(body, { path: '/validate/audit' })).json.response;
    t.equal(audit.allowed, true);
    t.equal(audit.warnings, undefined, 'audit mode: no warning');
    t.equal(audit.auditAnnotations.verdict, 'unchecked', 'audit mode: the annotation');
    t.equal(await metric(small, 'pullguard_reviews_unchecked_total{limit="size"}'), 2, 'both counted');
    const line = small.log.lines().find((l) => l.msg === 'review not checked');
    t.match(
      line,
      { level: 40, operation: 'CREATE', limit: 'size', reason: /larger than the limit \(16384 bytes/ },
      'logged at warn',
    );
    // A DELETE past the limit: never checked anyway, so nothing was skipped and there is nothing to say.
    const gone = sample('pod-update-set-image.json', regs);
    gone.request.operation = 'DELETE';
    const del = (await small.post(withEmptyArgs(gone, ['oldObject'], 10_000))).json.response;
    t.same(del, { uid: gone.request.uid, allowed: true });
    t.equal(await metric(small, 'pullguard_reviews_unchecked_total{limit="size"}'), 2, 'and not counted');
  },
);

t.test(
  'a key that reaches a prototype is refused however it is spelled; a string "constructor" key is not',
  async (t) => {
    const text = JSON.stringify(sample('pod-create.json', regs));
    // Issue 28 item 11: JSON.parse decodes "\u005f_proto__" to __proto__; the check read the raw text.
    const spellings = ['\\u005f_proto__', '_\\u005fproto__', '__proto\\u005f_', '\\u005F\\u005F\\u0070roto__'];
    for (const key of spellings) {
      for (const [where, body] of [
        ['in the pod spec', text.replace('"containers":[', `"${key}":{"x":1},"containers":[`)],
        ['in managedFields', text.replace('"managedFields":[', `"managedFields":[{"${key}":{"x":1}},`)],
      ]) {
        t.not(body, text);
        const res = await s.post(body!);
        t.equal(res.status, 400, `"${key}" ${where}`);
        t.match(res.json.error, /sets __proto__ or constructor/, `"${key}" ${where}`);
      }
    }
    const constructorObject = await s.post(
      text.replace('"containers":[', '"constructor":{"prototype":{}},"containers":['),
    );
    t.equal(constructorObject.status, 400, 'constructor holding an object');
    // A label (or nodeSelector) key "constructor" is valid Kubernetes: the pod is checked, not refused.
    const labelled = sample('pod-create.json', regs);
    labelled.request.object.metadata.labels = { constructor: 'yes' };
    labelled.request.object.spec.nodeSelector = { constructor: 'yes', __protocol: 'x' };
    const res = await s.post(labelled);
    t.equal(res.status, 200, 'a pod labelled constructor: yes is reviewed');
    t.equal(res.json.response?.allowed, false, 'and its missing image denied');
  },
);

t.test('invalid JSON inside a managedFields array is accepted: it is never parsed', async (t) => {
  // Decision (src/server/body.ts): the content of an object's managedFields is left out unparsed, so
  // what is inside is not validated. The API server writes it with encoding/json and never sends
  // invalid JSON; only a forged body could, and its answer uses nothing from there. Brackets and
  // strings must still balance, or the text around it is not JSON and the body is refused.
  const text = JSON.stringify(sample('pod-create.json', regs));
  const valid = await s.post(text);
  for (const inside of ['not JSON at all, ', '{"a":}, ', "{'single':quotes}, ", '[1,,2], ', '"\\x", ']) {
    const res = await s.post(text.replace('"managedFields":[', `"managedFields":[${inside}`));
    t.equal(res.status, 200, inside);
    t.same(res.json, valid.json, `${inside}: the same answer as the valid body`);
  }
  for (const broken of ['{"a":1, ', '"open, ', ']], ']) {
    const res = await s.post(text.replace('"managedFields":[', `"managedFields":[${broken}`));
    t.equal(res.status, 400, `${broken}: brackets or strings that do not balance`);
  }
});
