import t from 'tap';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import {
  admissionReviewSchema,
  BadReview,
  imagesToCheck,
  parseReview,
  respond,
  reviewHead,
  uncheckedResponse,
  warningsFor,
  type Decided,
} from '../../src/admission/review.ts';
import type { Finding } from '../../src/findings.ts';
import { ADMISSION_SAMPLES } from '../helpers/fixtures.ts';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/admission/${name}`, import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;

function finding(over: Partial<Finding> = {}): Finding {
  return {
    image: 'registry.example/app:1',
    reference: 'registry.example/app:1',
    container: 'app',
    field: 'spec.containers[0].image',
    object: { kind: 'Pod', namespace: 'shop', name: 'p' },
    verdict: 'fail',
    reason: 'tag-not-found',
    message: 'image "registry.example/app:1": tag "1" does not exist in registry.example/app',
    hint: 'push tag "1", or use a tag that exists',
    evidence: [],
    ...over,
  };
}

t.test('every captured AdmissionReview parses', async (t) => {
  for (const name of ADMISSION_SAMPLES) {
    const req = parseReview(fixture(name));
    t.ok(req.uid, `${name}: uid`);
  }
  t.equal(parseReview(fixture('pod-create-dryrun.json')).dryRun, true);
});

t.test('malformed reviews are refused with a plain reason', async (t) => {
  const base = fixture('pod-create.json');
  const cases: [unknown, RegExp][] = [
    [null, /request|AdmissionReview/],
    ['text', /AdmissionReview/],
    [{ ...base, apiVersion: 'admission.k8s.io/v1beta1' }, /apiVersion must be admission\.k8s\.io\/v1/],
    [{ ...base, kind: 'Pod' }, /kind must be AdmissionReview/],
    [{ ...base, request: { ...(base.request as object), uid: '' } }, /uid is required/],
    [{ ...base, request: { ...(base.request as object), uid: undefined } }, /uid/],
    [{ ...base, request: { ...(base.request as object), operation: 'EXPLODE' } }, /operation/],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /request is required/],
  ];
  for (const [body, re] of cases) t.throws(() => parseReview(body), { name: 'BadReview', message: re }, String(re));
  let caught: unknown;
  try {
    parseReview({});
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof BadReview, 'a BadReview, which the server turns into a 400');
});

t.test('parseReview accepts exactly what the schema accepts, and gives the same request', async (t) => {
  const base = fixture('deployment-create.json') as { request: { object: Record<string, unknown> } };
  const other = fc.oneof(
    fc.constantFrom(undefined, null, '', 'x', 0, 1, true, false, [], {}, ['CREATE'], { kind: 'Pod' }),
    fc.jsonValue({ maxDepth: 2 }),
  );
  // Each field mostly its well-formed value, else anything; optional keys may be missing.
  const field = <T>(...good: T[]) =>
    fc.oneof({ arbitrary: fc.constantFrom(...good), weight: 12 }, { arbitrary: other, weight: 1 });
  const review = fc.record(
    {
      apiVersion: field('admission.k8s.io/v1'),
      kind: field('AdmissionReview'),
      request: fc.oneof(
        { arbitrary: other, weight: 1 },
        {
          weight: 12,
          arbitrary: fc.record(
            {
              uid: field('0b4d-uid'),
              kind: fc.oneof(
                { arbitrary: other, weight: 1 },
                {
                  weight: 12,
                  arbitrary: fc.record(
                    { group: field('', 'apps'), version: field('v1'), kind: field('Pod', 'Deployment') },
                    { requiredKeys: ['group', 'version', 'kind'] },
                  ),
                },
              ),
              resource: fc.oneof(
                { arbitrary: other, weight: 1 },
                {
                  weight: 6,
                  arbitrary: fc.record(
                    { group: field(''), version: field('v1'), resource: field('pods') },
                    { requiredKeys: ['group', 'version', 'resource'] },
                  ),
                },
              ),
              subResource: field('status'),
              name: field('web'),
              namespace: field('shop'),
              operation: field('CREATE', 'UPDATE', 'DELETE', 'CONNECT'),
              object: field(base.request.object, null),
              oldObject: field(base.request.object, null),
              dryRun: field(true, false),
              extra: field('kept'),
            },
            { requiredKeys: ['uid', 'kind', 'operation'] },
          ),
        },
      ),
    },
    { requiredKeys: ['apiVersion', 'kind', 'request'] },
  );
  // Key order aside (zod rebuilds objects), the same JSON.
  const canon = (v: unknown): string =>
    JSON.stringify(v, (_k, x: unknown) =>
      x && typeof x === 'object' && !Array.isArray(x)
        ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : x,
    );
  let accepted = 0;
  fc.assert(
    fc.property(review, (body) => {
      const schema = admissionReviewSchema.safeParse(body);
      let got: unknown;
      try {
        got = parseReview(body);
      } catch (err) {
        got = err;
      }
      if (!schema.success) return got instanceof BadReview;
      accepted++;
      return !(got instanceof Error) && canon(got) === canon(schema.data.request);
    }),
    { numRuns: 3000 },
  );
  t.ok(accepted > 100, `well-formed reviews were among them (${accepted})`);
  t.same(canon(parseReview(base)), canon(admissionReviewSchema.parse(base).request), 'the fixture');
});

t.test('UPDATE checks only images new against oldObject', async (t) => {
  const unchanged = imagesToCheck(parseReview(fixture('deployment-update.json')));
  t.same(unchanged.uses, [], 'deployment update that keeps images: nothing to check');
  t.equal(unchanged.unchanged, 1);
  t.same(
    imagesToCheck(parseReview(fixture('pod-update-server-side-apply.json'))).uses,
    [],
    'server-side apply keeping images',
  );
  const changed = imagesToCheck(parseReview(fixture('deployment-update-image.json')));
  t.same(
    changed.uses.map((u) => u.image),
    ['127.0.0.1:5000/demo/bad-app:2.0'],
  );
  const setImage = imagesToCheck(parseReview(fixture('pod-update-set-image.json')));
  t.same(
    setImage.uses.map((u) => u.image),
    ['127.0.0.1:5000/demo/bad:2'],
    'the untouched sidecar image is not checked again',
  );
  t.equal(setImage.uses[0]!.object.namespace, 'lab-demo');
});

t.test('CREATE checks every image, namespace from the request when the object has none', async (t) => {
  const body = fixture('pod-create-init-digest.json');
  const uses = imagesToCheck(parseReview(body)).uses;
  t.same(
    uses.map((u) => u.container),
    ['init', 'app', 'sidecar'],
  );
  const req = structuredClone(body.request) as { object: { metadata: { namespace?: string } }; namespace: string };
  delete req.object.metadata.namespace;
  const again = imagesToCheck(parseReview({ ...body, request: req }));
  t.equal(again.uses[0]!.object.namespace, req.namespace);
});

t.test('ephemeral containers subresource: the new debug container is checked', async (t) => {
  const body = fixture('pod-update-set-image.json');
  const req = structuredClone(body.request) as Record<string, any>;
  req.subResource = 'ephemeralcontainers';
  req.oldObject = structuredClone(req.object);
  req.object.spec.ephemeralContainers = [{ name: 'debugger', image: 'busybox:1.36', imagePullPolicy: 'IfNotPresent' }];
  const uses = imagesToCheck(parseReview({ ...body, request: req })).uses;
  t.same(
    uses.map((u) => [u.container, u.image, u.field]),
    [['debugger', 'busybox:1.36', 'spec.ephemeralContainers[0].image']],
  );
});

t.test('DELETE and CONNECT are never checked', async (t) => {
  const body = fixture('pod-create.json');
  t.same(
    imagesToCheck(parseReview({ ...body, request: { ...(body.request as object), operation: 'DELETE' } })).uses,
    [],
  );
});

t.test('denial: 403 Forbidden naming container, image, cause and fix', async (t) => {
  const res = respond('u1', [{ finding: finding(), action: 'deny' }]);
  t.equal(res.response.uid, 'u1');
  t.equal(res.response.allowed, false);
  t.equal(res.response.status?.code, 403);
  t.equal(res.response.status?.reason, 'Forbidden');
  t.match(
    res.response.status?.message,
    /container "app": image "registry\.example\/app:1": tag "1" does not exist.*Fix: push tag/,
  );
  t.notMatch(res.response.status?.message, /[\u0000-\u001f]/);
  t.equal(res.apiVersion, 'admission.k8s.io/v1');
  t.equal(res.kind, 'AdmissionReview');
});

t.test('warnings: one per finding, no control characters, ≤256 each and ≤4096 in all', async (t) => {
  const evil = finding({
    image: 'x\n\u0007y',
    message: 'image "x\\ny": line\nbreak\ttab',
    verdict: 'risk',
    reason: 'timeout',
  });
  const one = warningsFor([{ finding: evil, action: 'warn' }]);
  t.equal(one.length, 1);
  t.notMatch(one[0]!, /[\u0000-\u001f\u007f]/);
  const many: Decided[] = Array.from({ length: 60 }, (_, i) => ({
    finding: finding({
      container: `c${i}`,
      message: `image "app-${i}": ${'slow '.repeat(60)}`,
      verdict: 'risk',
      reason: 'timeout',
    }),
    action: 'warn',
  }));
  const out = warningsFor(many);
  t.ok(
    out.every((w) => [...w].length <= 256),
    'each under 256',
  );
  t.ok(
    out.slice(0, -1).every((w) => w.includes('Fix: push tag') && /image "app-\d+"/.test(w)),
    'a long warning is cut in its cause, keeping the image and the fix',
  );
  t.ok(out.reduce((n, w) => n + [...w].length, 0) <= 4096, 'all under 4096');
  t.match(out.at(-1)!, /more image warnings/, 'the rest is summarised');
  t.same(
    warningsFor([
      { finding: finding(), action: 'deny' },
      { finding: finding({ verdict: 'ok', reason: 'available' }), action: 'ignore' },
    ]),
    [],
    'denials and ok findings are not warnings',
  );
});

t.test('audit annotations record what was found', async (t) => {
  const res = respond('u2', [{ finding: finding(), action: 'record' }]);
  t.equal(res.response.allowed, true);
  t.equal(res.response.warnings, undefined);
  t.equal(res.response.auditAnnotations?.verdict, 'fail');
  t.same(JSON.parse(res.response.auditAnnotations!.findings!), [
    { container: 'app', image: 'registry.example/app:1', reason: 'tag-not-found', action: 'record' },
  ]);
  t.equal(respond('u3', []).response.auditAnnotations, undefined, 'nothing to record');
});

t.test(
  'reviewHead: the fields of a review from its start, cut anywhere, as parseReview reads them whole',
  async (t) => {
    for (const name of ADMISSION_SAMPLES) {
      const text = JSON.stringify(fixture(name));
      const req = parseReview(JSON.parse(text));
      const want = {
        uid: req.uid,
        kind: req.kind,
        operation: req.operation,
        ...(req.subResource !== undefined ? { subResource: req.subResource } : {}),
        ...(req.name !== undefined ? { name: req.name } : {}),
        ...(req.namespace !== undefined ? { namespace: req.namespace } : {}),
      };
      t.same(reviewHead(text), want, `${name}: whole`);
      // As the API server writes it, everything ReviewHead holds comes before the object.
      t.same(reviewHead(text.slice(0, text.indexOf('"object":'))), want, `${name}: up to the object`);
      let wrong = 0;
      for (let cut = 0; cut < text.length; cut += 7) {
        const head = reviewHead(text.slice(0, cut));
        // Cut early, there is no review yet; never a review with other fields.
        if (typeof head !== 'string' && JSON.stringify(head) !== JSON.stringify(want)) wrong++;
        if (typeof head === 'string' && !/no AdmissionReview/.test(head)) wrong++;
      }
      t.equal(wrong, 0, `${name}: cut anywhere, the review or none`);
    }
  },
);

t.test('reviewHead: escapes decoded, keys in any order, values skipped by their brackets', async (t) => {
  const kind = '"kind":{"group":"","version":"v1","kind":"Pod"}';
  const review = (request: string) =>
    `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{${request}}}`;
  t.same(reviewHead(review(`"object":{"a":["}",{"b":"]"}]},"uid":"\\u0061b",${kind},"operation":"CREATE"`)), {
    uid: 'ab',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE',
  });
  t.same(reviewHead(review(`"\\u0075id":"x",${kind},"operation":"UPDATE","namespace":"n\\u00e9"`)), {
    uid: 'x',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'UPDATE',
    namespace: 'né',
  });
  const none: [string, RegExp][] = [
    ['[1,2]', /no AdmissionReview/],
    ['"text"', /no AdmissionReview/],
    [review(`"uid":"",${kind},"operation":"CREATE"`), /no AdmissionReview/],
    [review(`"uid":"x",${kind},"operation":"EXPLODE"`), /no AdmissionReview/],
    [review(`"uid":1,${kind},"operation":"CREATE"`), /no AdmissionReview/],
    [review(`"uid":"x","operation":"CREATE"`), /no AdmissionReview/],
    [review(`"uid":"x",${kind},"operation":"CREATE"`).replace('admission.k8s.io/v1', 'v1beta1'), /no AdmissionReview/],
    [review(`"uid":"x" ${kind}`), /not valid JSON/],
    [review(`"uid":'x'`), /not valid JSON/],
    [review(`"uid":"\\q"`), /not valid JSON/],
  ];
  for (const [text, re] of none) t.match(reviewHead(text), re, text);
  // A key "__proto__" in the head is only a key: nothing is set on any prototype.
  const proto = review(`"__proto__":{"polluted":1},"uid":"x",${kind},"operation":"CREATE"`);
  t.equal(typeof reviewHead(proto), 'object');
  t.equal(({} as Record<string, unknown>).polluted, undefined);
});

t.test('uncheckedResponse: allowed, one warning within the limits, an annotation; nothing for a DELETE', async (t) => {
  const head = {
    uid: 'u1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE' as const,
    namespace: 'shop',
    name: 'web\u202e\u0007',
  };
  const r = uncheckedResponse(head, 'has more than 4893355 JSON elements', true).response;
  t.equal(r.allowed, true);
  t.equal(r.uid, 'u1');
  t.equal(r.warnings?.length, 1);
  t.match(
    r.warnings![0],
    /^pullguard: the images of Pod "shop\/web\\u202e\\u0007" were not checked: its review body has more than 4893355 JSON elements; run pullguard check on its manifest$/,
  );
  t.same(r.auditAnnotations, {
    verdict: 'unchecked',
    unchecked: 'its review body has more than 4893355 JSON elements',
  });
  t.equal(uncheckedResponse(head, 'x', false).response.warnings, undefined, 'no warning when told (audit mode)');
  t.same(uncheckedResponse({ ...head, operation: 'DELETE' }, 'x', true).response, { uid: 'u1', allowed: true });
  t.same(uncheckedResponse({ ...head, kind: { ...head.kind, kind: 'ConfigMap' } }, 'x', true).response, {
    uid: 'u1',
    allowed: true,
  });
});
