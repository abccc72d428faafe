// The webhooks' matchCondition "images-changed" (GA in 1.30): an UPDATE that changes no image never
// reaches pullguard. Run with a CEL implementation from npm (@marcbachmann/cel-js) on captured
// requests (v1.20), requests shaped as 1.3x servers send them, and one UPDATE per kind; checked
// against the server's own answer to the same question (admission/review.ts imagesToCheck): whenever
// pullguard would check an image, the condition must send the request.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluate } from '@marcbachmann/cel-js';
import { imagesToCheck, parseReview } from '../../src/admission/review.ts';
import { POD_SPEC_KINDS } from '../../src/workload/kinds.ts';
import { ADMISSION_SAMPLES } from '../helpers/fixtures.ts';
import { baseObjects, only, repoRoot, type Obj } from './lib.ts';

const webhooks = only(baseObjects(), 'ValidatingWebhookConfiguration').webhooks as Obj[];
const chartFile = readFileSync(join(repoRoot, 'charts/pullguard/files/images-changed.cel'), 'utf8');
const expression = (webhooks[0]!.matchConditions as Obj[]).find((c) => c.name === 'images-changed')
  ?.expression as string;

const body = (name: string): Obj =>
  JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/admission', name), 'utf8')) as Obj;

/** The condition as the API server evaluates it: `request` without the objects, `object`, `oldObject` (null on CREATE). */
function sends(review: Obj): boolean {
  const { object, oldObject, ...request } = review.request as Obj;
  const out = evaluate(expression, { request, object: object ?? null, oldObject: oldObject ?? null });
  if (typeof out !== 'boolean') throw new Error(`the condition gave ${String(out)}, not a bool`);
  return out;
}

/** Whether pullguard would check any image of it (its own decision on the same request). */
const checks = (review: Obj) => imagesToCheck(parseReview(review)).uses.length > 0;

t.test('one text: in every webhook of the kustomize base, and the chart file', async (t) => {
  t.ok(expression, 'the base has images-changed');
  t.equal(expression.trim(), chartFile.trim(), 'charts/pullguard/files/images-changed.cel is the same text');
  for (const w of webhooks)
    t.same(w.matchConditions, webhooks[0]!.matchConditions, `${w.name}: the same matchConditions`);
});

t.test('captured (v1.20) and 1.3x-shaped requests', async (t) => {
  const expected: Record<string, boolean> = {
    'pod-create.json': true,
    'pod-create-dryrun.json': true,
    'pod-create-init-digest.json': true,
    'pod-update-set-image.json': true,
    'pod-update-server-side-apply.json': false,
    'deployment-create.json': true,
    'deployment-create-latest.json': true,
    'deployment-update.json': false,
    'deployment-update-image.json': true,
    'today/pod-create-sidecar.json': true,
    'today/pod-create-image-volume.json': true,
    'today/pod-debug-ephemeralcontainers.json': true,
  };
  t.same(
    Object.keys(expected).filter((n) => !n.startsWith('today/')),
    [...ADMISSION_SAMPLES],
    'every captured sample',
  );
  for (const [name, want] of Object.entries(expected)) {
    const review = body(name);
    t.equal(sends(review), want, `${name}: ${want ? 'sent' : 'not sent'}`);
    t.equal(checks(review), want, `${name}: pullguard would ${want ? '' : 'not '}check an image`);
  }
});

t.test('one UPDATE per kind: a new image is sent; a scale or a label is not; a missing template is sent', async (t) => {
  const pod = (image: string, extra: Obj = {}) => ({
    initContainers: [{ name: 'proxy', image: 'r.test/proxy:1', restartPolicy: 'Always' }],
    containers: [{ name: 'main', image }],
    volumes: [
      { name: 'models', image: { reference: 'r.test/models:1' } },
      { name: 'tmp', emptyDir: {} },
    ],
    ...extra,
  });
  for (const k of POD_SPEC_KINDS) {
    const wrap = (spec: Obj, replicas = 1): Obj => {
      const o: Obj = { apiVersion: k.apiGroup ? `${k.apiGroup}/v1` : 'v1', kind: k.kind, metadata: { name: 'x' } };
      let node: Obj = o;
      const path = k.specPath;
      for (const key of path.slice(0, -1)) node = node[key] ??= {};
      node[path.at(-1)!] = spec;
      if (o.spec && k.kind !== 'Pod') o.spec.replicas = replicas;
      return o;
    };
    const review = (object: Obj, oldObject: Obj | null, operation = 'UPDATE'): Obj => ({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: crypto.randomUUID(),
        kind: { group: k.apiGroup, version: 'v1', kind: k.kind },
        resource: { group: k.apiGroup, version: 'v1', resource: k.resource },
        namespace: 'shop',
        name: 'x',
        operation,
        userInfo: { username: 'u' },
        object,
        oldObject,
      },
    });
    const cases: [string, Obj, boolean][] = [
      ['CREATE', review(wrap(pod('r.test/app:1')), null, 'CREATE'), true],
      ['new container image', review(wrap(pod('r.test/app:2')), wrap(pod('r.test/app:1'))), true],
      [
        'new sidecar image',
        review(
          wrap(pod('r.test/app:1', { initContainers: [{ name: 'proxy', image: 'r.test/proxy:2' }] })),
          wrap(pod('r.test/app:1')),
        ),
        true,
      ],
      [
        'new image volume',
        review(
          wrap(pod('r.test/app:1', { volumes: [{ name: 'models', image: { reference: 'r.test/models:2' } }] })),
          wrap(pod('r.test/app:1')),
        ),
        true,
      ],
      [
        'scale or label only',
        review(wrap(pod('r.test/app:1'), 3), { ...wrap(pod('r.test/app:1')), metadata: { labels: { a: 'b' } } }),
        false,
      ],
      [
        'env only',
        review(
          wrap(pod('r.test/app:1', { containers: [{ name: 'main', image: 'r.test/app:1', env: [{ name: 'A' }] }] })),
          wrap(pod('r.test/app:1')),
        ),
        false,
      ],
    ];
    if (k.kind === 'Pod')
      cases.push([
        'an ephemeral container added (kubectl debug)',
        review(
          wrap(pod('r.test/app:1', { ephemeralContainers: [{ name: 'dbg', image: 'r.test/debug:1' }] })),
          wrap(pod('r.test/app:1')),
        ),
        true,
      ]);
    else
      cases.push([
        'no pod spec at all (a nil template): sent, pullguard decides',
        review({ ...wrap({}), spec: {}, template: undefined }, { ...wrap({}), spec: {}, template: undefined }),
        true,
      ]);
    for (const [what, r, want] of cases) {
      t.equal(sends(r), want, `${k.kind}: ${what}`);
      if (checks(r)) t.ok(sends(r), `${k.kind}: ${what}: pullguard checks an image, so it must be sent`);
    }
  }
});
