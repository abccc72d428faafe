// The webhook end to end: the captured AdmissionReview bodies sent over HTTPS to the real server,
// which asks real registries (anonymous HTTP, and TLS + basic auth with the nodes' credentials).
// For each sample, the answer the user would see; then modes, namespace override, per-reason
// actions, ephemeral containers, the warning limits, logs and metrics.
import t from 'tap';
import {
  QUALIFIED_NAME_PART,
  CONTROL,
  type SAMPLES,
  podReview,
  runes,
  sample,
  serve,
  startRegistries,
  type Obj,
  type Registries,
  type TestServer,
} from './lib.ts';

let regs: Registries;
t.before(async () => {
  regs = await startRegistries();
});
t.teardown(() => regs?.stop());

/** A server per test: an empty cache, so request counts mean what they say. */
type Tap = { teardown(fn: () => unknown): void };

async function fresh(
  t: Tap,
  input: Parameters<typeof serve>[1] = {},
  opts: Parameters<typeof serve>[2] = {},
): Promise<TestServer> {
  const s = await serve(regs, input, opts);
  t.teardown(() => s.close());
  regs.reset();
  return s;
}

const bad = () => `${regs.plain.host}/demo/bad-app:1.0`;

t.test(
  'Must show: pod-create.json is denied with 403 Forbidden naming the container, the image and the cause',
  async (t) => {
    const s = await fresh(t);
    const body = sample('pod-create.json', regs);
    const r = await s.review(body);
    t.equal(r.uid, body.request.uid, 'the response carries the request uid');
    t.equal(r.allowed, false);
    t.equal(r.status.code, 403);
    t.equal(r.status.reason, 'Forbidden', 'kubectl prints "Error from server (Forbidden)"');
    t.match(r.status.message, 'container "app"');
    t.match(r.status.message, `image "${bad()}"`);
    t.match(r.status.message, `repository ${regs.plain.host}/demo/bad-app does not exist`, 'the cause');
    t.match(r.status.message, /Fix: \S/, 'and what to do');
    t.notMatch(r.status.message, /\.\./, 'no doubled full stop between the cause and the fix');
    t.notMatch(r.status.message, CONTROL);
    t.ok(regs.plain.proxy!.count({ path: '/v2/demo/bad-app/manifests/1.0' }) >= 1, 'the registry was asked');
  },
);

t.test('Must show: deployment-create.json is allowed', async (t) => {
  const s = await fresh(t);
  const r = await s.review(sample('deployment-create.json', regs));
  t.equal(r.allowed, true);
  t.equal(r.status, undefined);
  t.equal(r.warnings, undefined);
  t.equal(
    regs.plain.proxy!.count({ method: 'HEAD', path: '/v2/demo/app/manifests/1.0' }),
    1,
    'the image was checked, with one HEAD',
  );
});

t.test('Must show: deployment-update.json is allowed without any registry request', async (t) => {
  const s = await fresh(t);
  const r = await s.review(sample('deployment-update.json', regs));
  t.equal(r.allowed, true);
  t.equal(r.warnings, undefined);
  t.same(regs.plain.proxy!.counts(), {}, 'no request to the registry');
  t.same(regs.secure.proxy!.counts(), {});
  const line = s.log.reviews().at(-1)!;
  t.match(line, { kind: 'Deployment', operation: 'UPDATE', images: 0, unchanged: 1, action: 'allow' });

  // Even when the image has since disappeared from its registry: an UPDATE that leaves images
  // alone (a scale, a label change) is never blocked.
  const gone = sample('deployment-update.json', regs);
  for (const o of [gone.request.object, gone.request.oldObject])
    o.spec.template.spec.containers[0].image = `${regs.plain.host}/demo/deleted:1.0`;
  gone.request.object.spec.replicas = 5;
  const again = await s.review(gone);
  t.equal(again.allowed, true);
  t.same(regs.plain.proxy!.counts(), {}, 'still no request');
});

t.test('Must show: the same denial in warn mode is an allow with a warning', async (t) => {
  for (const [how, s, path] of [
    ['config mode: warn', await fresh(t, { mode: 'warn' }), undefined],
    ['path /validate/warn on an enforcing server', await fresh(t), '/validate/warn'],
  ] as const) {
    const r = await s.review(sample('pod-create.json', regs), path);
    t.equal(r.allowed, true, how);
    t.equal(r.status, undefined, `${how}: no status`);
    t.equal(r.warnings?.length, 1, `${how}: one warning`);
    t.match(
      r.warnings[0],
      `container "app": image "${bad()}": repository ${regs.plain.host}/demo/bad-app does not exist`,
      how,
    );
    t.ok(runes(r.warnings[0]) <= 256, `${how}: warning under 256 characters`);
    t.match(s.log.reviews().at(-1), { mode: 'warn', verdict: 'fail', action: 'warn' }, `${how}: logged as a warning`);
  }
});

t.test('Must show: in audit mode an allow with audit annotations and no warning', async (t) => {
  for (const [how, s, path] of [
    ['config mode: audit', await fresh(t, { mode: 'audit' }), undefined],
    ['path /validate/audit on an enforcing server', await fresh(t), '/validate/audit'],
  ] as const) {
    const r = await s.review(sample('pod-create.json', regs), path);
    t.equal(r.allowed, true, how);
    t.equal(r.status, undefined, how);
    t.equal(r.warnings, undefined, `${how}: no warning`);
    const ann = r.auditAnnotations as Record<string, string>;
    t.ok(ann, `${how}: auditAnnotations`);
    for (const key of Object.keys(ann))
      t.match(key, QUALIFIED_NAME_PART, `${how}: key "${key}" is valid after "<webhook>/"`);
    t.equal(ann.verdict, 'fail');
    t.same(JSON.parse(ann.findings!), [
      { container: 'app', image: bad(), reason: 'repository-not-found', action: 'record' },
    ]);
    t.match(s.log.reviews().at(-1), {
      mode: 'audit',
      verdict: 'fail',
      action: 'record',
      findings: [{ container: 'app', reason: 'repository-not-found', action: 'record' }],
    });
  }
});

interface Expected {
  allowed: boolean;
  /** the denial names these (container, image, cause) */
  denies?: { container: string; image: (r: Registries) => string; cause: RegExp };
  /** and not these */
  notNamed?: string[];
  /** registry requests: none at all, or some */
  requests: 'none' | 'some';
  log: Obj;
}

/** The denial of an image whose repository does not exist on the plain registry. */
const noRepository = (container: string, repository: string, tag: string): Expected['denies'] => ({
  container,
  image: (r) => `${r.plain.host}/${repository}:${tag}`,
  cause: new RegExp(`repository \\S+/${repository} does not exist`),
});

const table: Record<(typeof SAMPLES)[number], Expected> = {
  'pod-create.json': {
    allowed: false,
    denies: noRepository('app', 'demo/bad-app', '1.0'),
    requests: 'some',
    log: { kind: 'Pod', operation: 'CREATE', name: 'bad-pod', namespace: 'lab-demo', verdict: 'fail', action: 'deny' },
  },
  'pod-create-dryrun.json': {
    allowed: false,
    denies: noRepository('app', 'demo/bad-app', '1.0'),
    requests: 'some',
    log: { kind: 'Pod', operation: 'CREATE', dryRun: true, verdict: 'fail', action: 'deny' },
  },
  'pod-create-init-digest.json': {
    allowed: true,
    requests: 'some',
    log: { kind: 'Pod', operation: 'CREATE', name: 'good-pod', images: 3, verdict: 'ok', action: 'allow' },
  },
  'pod-update-set-image.json': {
    allowed: false,
    denies: noRepository('app', 'demo/bad', '2'),
    notNamed: ['"init"', '"sidecar"', 'demo/app'],
    requests: 'some',
    log: { kind: 'Pod', operation: 'UPDATE', images: 1, unchanged: 2, verdict: 'fail', action: 'deny' },
  },
  'pod-update-server-side-apply.json': {
    allowed: true,
    requests: 'none',
    log: { kind: 'Pod', operation: 'UPDATE', name: 'plain', images: 0, unchanged: 1, verdict: 'ok', action: 'allow' },
  },
  'deployment-create.json': {
    allowed: true,
    requests: 'some',
    log: { kind: 'Deployment', operation: 'CREATE', name: 'web', images: 1, verdict: 'ok', action: 'allow' },
  },
  'deployment-create-latest.json': {
    allowed: false,
    denies: noRepository('web', 'demo/bad', 'latest'),
    requests: 'some',
    log: { kind: 'Deployment', operation: 'CREATE', name: 'web-bad', verdict: 'fail', action: 'deny' },
  },
  'deployment-update.json': {
    allowed: true,
    requests: 'none',
    log: { kind: 'Deployment', operation: 'UPDATE', images: 0, unchanged: 1, verdict: 'ok', action: 'allow' },
  },
  'deployment-update-image.json': {
    allowed: false,
    denies: noRepository('web', 'demo/bad-app', '2.0'),
    notNamed: ['demo/app:1.0'],
    requests: 'some',
    log: { kind: 'Deployment', operation: 'UPDATE', images: 1, unchanged: 0, verdict: 'fail', action: 'deny' },
  },
};

t.test('every captured sample gets the answer the user should see', async (t) => {
  for (const [name, want] of Object.entries(table)) {
    await t.test(name, async (t) => {
      const s = await fresh(t);
      const body = sample(name, regs);
      const r = await s.review(body);
      t.equal(r.uid, body.request.uid);
      t.equal(r.allowed, want.allowed, want.allowed ? 'allowed' : 'denied');
      if (want.denies) {
        t.equal(r.status?.code, 403);
        t.equal(r.status?.reason, 'Forbidden');
        t.match(r.status?.message, `container "${want.denies.container}": image "${want.denies.image(regs)}"`);
        t.match(r.status?.message, want.denies.cause);
      } else {
        t.equal(r.status, undefined);
        t.equal(r.warnings, undefined, 'no warnings');
        t.equal(r.auditAnnotations, undefined, 'nothing to record');
      }
      for (const n of want.notNamed ?? []) t.notMatch(r.status?.message ?? '', n, `does not name ${n}`);
      const seen = regs.requests();
      if (want.requests === 'none') t.equal(seen, 0, 'no registry request');
      else t.ok(seen > 0, `asked the registry (${seen} requests)`);
      const lines = s.log.reviews();
      t.equal(lines.length, 1, 'one log line for the review');
      t.match(lines[0], { uid: body.request.uid, ...want.log });
      if (!('dryRun' in want.log)) t.notOk('dryRun' in lines[0]!, 'no dryRun flag');
    });
  }
});

t.test('pod-create-dryrun.json gets exactly the answer pod-create.json gets', async (t) => {
  const s = await fresh(t);
  const real = await s.review(sample('pod-create.json', regs));
  const dry = await s.review(sample('pod-create-dryrun.json', regs));
  t.not(dry.uid, real.uid);
  t.same({ ...dry, uid: 'x' }, { ...real, uid: 'x' });
});

t.test(
  "pod-create-init-digest.json: the init container by digest, the sidecar index over TLS with the nodes' basic-auth credentials",
  async (t) => {
    const s = await fresh(t);
    const r = await s.review(sample('pod-create-init-digest.json', regs));
    t.equal(r.allowed, true);
    t.equal(
      regs.plain.proxy!.count({ path: `/v2/demo/app/manifests/${regs.appDigest}` }) >= 1,
      true,
      'the pinned digest was asked for',
    );
    const authed = regs.secure.proxy!.requests({ path: '/v2/demo/app/manifests/multi' }).filter((e) => e.authorization);
    t.ok(authed.length >= 1, 'the TLS registry was asked with credentials');
    t.equal(
      authed[0]!.authorization,
      `Basic ${Buffer.from(`${regs.user.username}:${regs.user.password}`).toString('base64')}`,
      "the nodes' docker config credentials",
    );
  },
);

t.test('every kind with a pod spec, init and sidecar containers, and image volumes', async (t) => {
  const s = await fresh(t);
  const template = (image: string) => ({
    metadata: { labels: { app: 'x' } },
    spec: {
      initContainers: [{ name: 'proxy', image: `${regs.plain.host}/demo/app:1.0`, restartPolicy: 'Always' }],
      containers: [{ name: 'main', image }],
    },
  });
  const objects: [string, string, (image: string) => Obj][] = [
    ['', 'PodTemplate', (image) => ({ template: template(image) })],
    [
      '',
      'ReplicationController',
      (image) => ({ spec: { replicas: 1, selector: { app: 'x' }, template: template(image) } }),
    ],
    [
      'apps',
      'ReplicaSet',
      (image) => ({ spec: { selector: { matchLabels: { app: 'x' } }, template: template(image) } }),
    ],
    [
      'apps',
      'StatefulSet',
      (image) => ({ spec: { serviceName: 'x', selector: { matchLabels: { app: 'x' } }, template: template(image) } }),
    ],
    [
      'apps',
      'DaemonSet',
      (image) => ({ spec: { selector: { matchLabels: { app: 'x' } }, template: template(image) } }),
    ],
    ['batch', 'Job', (image) => ({ spec: { template: template(image) } })],
    [
      'batch',
      'CronJob',
      (image) => ({ spec: { schedule: '* * * * *', jobTemplate: { spec: { template: template(image) } } } }),
    ],
  ];
  for (const [group, kind, build] of objects) {
    const image = `${regs.plain.host}/demo/missing-${kind.toLowerCase()}:1.0`;
    const body = sample('deployment-create.json', regs);
    body.request.uid = crypto.randomUUID();
    body.request.kind = { group, version: 'v1', kind };
    body.request.name = `x-${kind.toLowerCase()}`;
    body.request.object = {
      apiVersion: group ? `${group}/v1` : 'v1',
      kind,
      metadata: { name: body.request.name, namespace: 'lab-demo' },
      ...build(image),
    };
    const r = await s.review(body);
    t.equal(r.allowed, false, `${kind}: denied`);
    t.match(r.status?.message, `container "main": image "${image}"`, `${kind}: names the container and image`);
    t.notMatch(r.status?.message, 'container "proxy"', `${kind}: the sidecar's image exists`);
    t.match(s.log.reviews().at(-1), { kind, images: 2, action: 'deny' }, `${kind}: both images checked`);
  }

  const volume = podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/app:1.0` }]);
  volume.request.object.spec.volumes = [
    { name: 'models', image: { reference: `${regs.plain.host}/demo/models:v3`, pullPolicy: 'IfNotPresent' } },
  ];
  const v = await s.review(volume);
  t.equal(v.allowed, false, 'an image volume whose image does not exist is denied');
  t.match(v.status.message, `container "volume models": image "${regs.plain.host}/demo/models:v3"`);
});

t.test('DELETE and CONNECT pass without a look', async (t) => {
  const s = await fresh(t);
  for (const operation of ['DELETE', 'CONNECT']) {
    const body = sample('pod-create.json', regs);
    body.request.operation = operation;
    body.request.oldObject = body.request.object;
    body.request.object = null;
    const r = await s.review(body);
    t.equal(r.allowed, true, operation);
    t.equal(r.warnings, undefined);
  }
  t.equal(regs.requests(), 0, 'no registry request');
});

t.test('the API server retrying one pod at once: one registry request for all', async (t) => {
  const s = await fresh(t);
  const delay = regs.plain.proxy!.fault(
    { kind: 'delay', ms: 300 },
    { method: 'HEAD', path: '/v2/demo/bad-app/manifests/1.0' },
  );
  t.teardown(() => delay.remove());
  const answers = await Promise.all(Array.from({ length: 20 }, () => s.review(sample('pod-create.json', regs))));
  t.ok(
    answers.every((a) => a.allowed === false && a.status.code === 403),
    'every one denied',
  );
  t.equal(
    regs.plain.proxy!.count({ method: 'HEAD', path: '/v2/demo/bad-app/manifests/1.0' }),
    1,
    'one HEAD for twenty reviews',
  );
  t.equal(s.log.reviews().length, 20, 'twenty log lines');
});

t.test('a cached review asks no registry; its latency, from the log', async (t) => {
  const s = await fresh(t);
  const body = sample('pod-create-init-digest.json', regs);
  await s.review(body);
  regs.reset();
  const n = 200;
  for (let i = 0; i < n; i++) {
    body.request.uid = `cached-${i}`;
    const r = await s.review(body);
    if (!r.allowed) t.fail(`review ${i} was denied`);
  }
  t.equal(regs.requests(), 0, `${n} cached reviews of three images: no registry request`);
  const ms = s.log
    .reviews()
    .slice(1)
    .map((l) => l.ms as number)
    .sort((a, b) => a - b);
  t.equal(ms.length, n);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!;
  t.comment(
    `cached review (3 images) server-side latency from the log: median ${at(0.5)} ms, p90 ${at(0.9)} ms, p99 ${at(0.99)} ms, max ${ms.at(-1)} ms`,
  );
  t.ok(at(0.5) < 1000, 'well under any deadline');
});

t.test('pods/ephemeralcontainers: a debug container whose image does not exist is denied', async (t) => {
  const s = await fresh(t);
  const ephemeral = (image: string) => {
    const body = sample('pod-update-server-side-apply.json', regs);
    const req = body.request;
    req.uid = crypto.randomUUID();
    req.subResource = 'ephemeralcontainers';
    req.requestSubResource = 'ephemeralcontainers';
    req.oldObject = structuredClone(req.object);
    req.object.spec.ephemeralContainers = [
      {
        name: 'debugger',
        image,
        imagePullPolicy: 'IfNotPresent',
        stdin: true,
        tty: true,
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
      },
    ];
    return body;
  };
  const denied = await s.review(ephemeral(`${regs.plain.host}/demo/debug-tools:1.0`));
  t.equal(denied.allowed, false);
  t.equal(denied.status.code, 403);
  t.match(denied.status.message, `container "debugger": image "${regs.plain.host}/demo/debug-tools:1.0"`);
  t.notMatch(denied.status.message, 'container "app"', 'the unchanged container is not part of it');
  t.same(
    // the registry's catalog is read for the missing repository's "did you mean"
    Object.keys(regs.plain.proxy!.counts()).filter((k) => !k.includes('debug-tools') && k !== 'GET /v2/_catalog'),
    [],
    'only the debug image was asked for',
  );
  t.match(s.log.reviews().at(-1), {
    kind: 'Pod',
    operation: 'UPDATE',
    subResource: 'ephemeralcontainers',
    images: 1,
    unchanged: 1,
    action: 'deny',
  });

  const ok = await s.review(ephemeral(`${regs.plain.host}/demo/app:multi`));
  t.equal(ok.allowed, true, 'an existing debug image is allowed');
});

t.test('requests shaped as 1.3x API servers send them (test/fixtures/admission/today/)', async (t) => {
  const s = await fresh(t);
  const sidecar = await s.review(sample('today/pod-create-sidecar.json', regs));
  t.equal(sidecar.allowed, false, 'a restartable init container (sidecar) whose image is missing is denied');
  t.match(sidecar.status.message, `container "log-shipper": image "${regs.plain.host}/demo/log-shipper:2.1"`);
  t.notMatch(sidecar.status.message, 'container "app"', 'the main container exists');
  t.match(s.log.reviews().at(-1), { kind: 'Pod', operation: 'CREATE', images: 2, action: 'deny' });

  const volume = await s.review(sample('today/pod-create-image-volume.json', regs));
  t.equal(volume.allowed, false, 'an image volume whose image is missing is denied');
  t.match(volume.status.message, `container "volume models": image "${regs.plain.host}/demo/models:v3"`);

  regs.reset();
  const debug = await s.review(sample('today/pod-debug-ephemeralcontainers.json', regs));
  t.equal(debug.allowed, false, 'kubectl debug with a missing image is denied');
  t.match(debug.status.message, `container "debugger-x7k2p": image "${regs.plain.host}/demo/debug-tools:1.0"`);
  t.match(s.log.reviews().at(-1), {
    kind: 'Pod',
    operation: 'UPDATE',
    subResource: 'ephemeralcontainers',
    images: 1,
    unchanged: 1,
    action: 'deny',
  });
  t.notOk(
    Object.keys(regs.plain.proxy!.counts()).some((k) => k.includes('/demo/app/')),
    "the pod's unchanged container is not asked for again",
  );
});

t.test('namespace override through the path; an unknown mode is a 400', async (t) => {
  const s = await fresh(t, { mode: 'warn' });
  const enforced = await s.review(sample('pod-create.json', regs), '/validate/enforce');
  t.equal(enforced.allowed, false, 'a namespace labelled enforce is enforced on a warn-mode server');
  t.equal(enforced.status.code, 403);
  t.match(s.log.reviews().at(-1), { mode: 'enforce', action: 'deny' });
  const warned = await s.review(sample('pod-create.json', regs), '/validate/warn');
  t.equal(warned.allowed, true);
  const plainPath = await s.review(sample('pod-create.json', regs));
  t.equal(plainPath.allowed, true, '/validate uses the configured default');
  t.equal(plainPath.warnings.length, 1);

  // The API server appends the webhook's timeout to the URL it was given.
  const queried = await s.review(sample('pod-create.json', regs), '/validate/enforce?timeout=10s');
  t.equal(queried.allowed, false, 'the mode in a path with a query string');
  const plainQueried = await s.review(sample('pod-create.json', regs), '/validate?timeout=10s');
  t.equal(plainQueried.allowed, true, '/validate?timeout=10s uses the configured default');
  t.equal(plainQueried.warnings.length, 1);
  // An encoded mode is decoded, as any path parameter is.
  const encoded = await s.review(sample('pod-create.json', regs), '/validate/%65nforce');
  t.equal(encoded.allowed, false, '/validate/%65nforce is /validate/enforce');

  for (const path of ['/validate/off', '/validate/ENFORCE', '/validate/bogus', '/validate/bogus?timeout=10s']) {
    const res = await s.post(sample('pod-create.json', regs), { path });
    t.equal(res.status, 400, path);
    t.match(res.json, { error: /unknown mode/ }, path);
  }
  const after = await s.review(sample('deployment-create.json', regs));
  t.equal(after.allowed, true, 'and serving goes on');
});

t.test('per-reason actions from the configuration', async (t) => {
  const s = await fresh(t, { actions: { 'tag-not-found': 'warn', 'repository-not-found': 'ignore' } });
  const missingTag = await s.review(podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/app:9.9` }]));
  t.equal(missingTag.allowed, true, 'tag-not-found: warn');
  t.equal(missingTag.warnings?.length, 1);
  t.match(missingTag.warnings[0], `container "app": image "${regs.plain.host}/demo/app:9.9": tag "9.9" does not exist`);
  t.match(missingTag.warnings[0], /Did you mean "1\.0"\? Fix: /, 'the suggestion, then the fix, punctuated once');

  const missingRepo = await s.review(sample('pod-create.json', regs));
  t.equal(missingRepo.allowed, true, 'repository-not-found: ignore');
  t.equal(missingRepo.warnings, undefined, 'ignored: no warning');

  const digest = await s.review(
    podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/app@sha256:${'0'.repeat(64)}` }]),
  );
  t.equal(digest.allowed, false, 'digest-not-found keeps its default: deny');
  t.match(digest.status.message, /manifest sha256:0{64} does not exist/);
  t.match(
    s.log.reviews().map((l) => l.action),
    ['warn', 'allow', 'deny'],
  );
});

t.test('warnings stay within the API server limits, whatever the images', async (t) => {
  const s = await fresh(t, { mode: 'warn' });
  const n = 40;
  const containers = Array.from({ length: n }, (_, i) => ({
    name: `c${i}`,
    image: `${regs.plain.host}/demo/missing-${i}-${'x'.repeat(90)}:1.0`,
  }));
  const r = await s.review(podReview(regs, containers));
  t.equal(r.allowed, true);
  const warnings = r.warnings as string[];
  t.ok(warnings.length > 1, `${warnings.length} warnings`);
  for (const w of warnings) {
    t.ok(runes(w) <= 256, `≤ 256 characters (${runes(w)})`);
    t.notMatch(w, CONTROL);
  }
  const total = warnings.reduce((sum, w) => sum + runes(w), 0);
  t.ok(total <= 4096, `≤ 4096 in total (${total})`);
  const summary = /(\d+) more image warnings/.exec(warnings.at(-1)!);
  t.ok(summary, 'the rest is summarised');
  t.equal(warnings.length - 1 + Number(summary![1]), n, 'every image is either warned about or counted in the summary');
  t.equal(new Set(warnings).size, warnings.length, 'no duplicates');

  await t.test('control characters in an image never reach the answer', async (t) => {
    const evil = `${regs.plain.host}/demo/bad\u0007\u001b[31mapp\r\nX-Injected: 1\u0085:1.0`;
    for (const [mode, path] of [
      ['warn', '/validate/warn'],
      ['enforce', '/validate/enforce'],
      ['audit', '/validate/audit'],
    ] as const) {
      const res = await s.post(podReview(regs, [{ name: 'app', image: evil }]), { path });
      t.equal(res.status, 200, mode);
      t.notMatch(res.headers['x-injected'] ?? '', /./, `${mode}: no header injection`);
      const resp = res.json.response as Obj;
      const strings = [
        ...(resp.warnings ?? []),
        resp.status?.message ?? '',
        ...Object.values(resp.auditAnnotations ?? {}),
      ] as string[];
      t.ok(
        strings.some((x) => x.length > 0),
        `${mode}: there is something to read`,
      );
      for (const x of strings)
        t.notMatch(x, CONTROL, `${mode}: no control character in ${JSON.stringify(x).slice(0, 60)}…`);
      if (mode === 'warn') t.match(resp.warnings[0], /invalid/, 'the warning says the reference is invalid');
      if (mode === 'enforce') t.equal(resp.allowed, false, 'an invalid reference is denied in enforce mode');
    }
  });
});

t.test(
  'logs: one line per review with uid, kind, namespace, name, operation, verdict, action, ms; no credentials ever',
  async (t) => {
    // trace: whatever anything logs at any level is in the captured text.
    const s = await fresh(t, {}, { level: 'trace' });
    const uids: string[] = [];
    for (const name of [
      'pod-create.json',
      'pod-create-init-digest.json',
      'deployment-create.json',
      'deployment-update.json',
    ]) {
      const body = sample(name, regs);
      body.request.uid = crypto.randomUUID();
      uids.push(body.request.uid);
      // The API server may authenticate to the webhook: that header must not be logged either.
      const res = await s.post(body, {
        headers: { 'content-type': 'application/json', authorization: 'Bearer apiserver-secret-token-123' },
      });
      t.equal(res.status, 200);
    }
    const lines = s.log.reviews();
    t.same(
      lines.map((l) => l.uid),
      uids,
      'exactly one line per review, in order',
    );
    for (const l of lines) {
      t.match(l, {
        uid: String,
        kind: String,
        namespace: 'lab-demo',
        name: String,
        operation: String,
        verdict: /^(ok|risk|fail)$/,
        action: /^(allow|warn|deny|record)$/,
        ms: Number,
      });
      t.ok(l.ms >= 0 && l.ms < 10_000, `ms ${l.ms}`);
      t.equal(l.level, l.verdict === 'ok' && l.action === 'allow' ? 20 : 30, 'plain allows at debug, the rest at info');
    }
    const text = s.log.text();
    const { username, password } = regs.user;
    t.ok(
      regs.secure.proxy!.requests().some((e) => e.authorization?.startsWith('Basic ')),
      'credentials were used in this test',
    );
    t.notMatch(text, password, 'no password');
    t.notMatch(text, Buffer.from(`${username}:${password}`).toString('base64'), 'no base64 user:password');
    t.notMatch(text, /Basic [A-Za-z0-9+/=]{8}/, 'no Basic header');
    t.notMatch(text, 'apiserver-secret-token-123', 'no incoming Authorization header');
  },
);

t.test(
  'logs at info: reviews with findings get their line with the findings; plain allows only in metrics',
  async (t) => {
    const s = await fresh(t, {}, { level: 'info' });
    const allowed = sample('deployment-create.json', regs);
    allowed.request.uid = 'plain-allow';
    const denied = sample('pod-create.json', regs);
    denied.request.uid = 'denied';
    t.equal((await s.review(allowed)).allowed, true);
    t.equal((await s.review(denied)).allowed, false);
    t.equal((await s.review({ ...allowed, request: { ...allowed.request, uid: 'cached-allow' } })).allowed, true);

    const lines = s.log.reviews();
    t.same(
      lines.map((l) => l.uid),
      ['denied'],
      'only the review with a finding has an info line',
    );
    t.match(lines[0], {
      level: 30,
      kind: 'Pod',
      namespace: 'lab-demo',
      name: String,
      operation: 'CREATE',
      verdict: 'fail',
      action: 'deny',
      ms: Number,
      findings: [{ container: 'app', image: bad(), reason: 'repository-not-found', action: 'deny' }],
    });

    const m = (await s.get('/metrics')).text;
    t.match(m, /\npullguard_reviews_total\{kind="Deployment",operation="CREATE",verdict="ok",action="allow"\} 2\n/);
    t.match(m, /\npullguard_reviews_total\{kind="Pod",operation="CREATE",verdict="fail",action="deny"\} 1\n/);
    t.match(m, /\npullguard_review_duration_seconds_count\{kind="Deployment"\} 2\n/, 'both allows timed');
  },
);

t.test(
  'metrics: reviews by kind, operation, verdict and action; latency; registry requests; cache; rate limit',
  async (t) => {
    const s = await fresh(t);
    const limited = regs.plain.proxy!.fault(
      { kind: 'headers', headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '42;w=21600' } },
      { method: 'HEAD', path: '/v2/demo/app/manifests/1.0' },
    );
    t.teardown(() => limited.remove());
    await s.review(sample('pod-create.json', regs));
    await s.review(sample('deployment-create.json', regs));
    await s.review(sample('deployment-create.json', regs));
    await s.review(sample('deployment-update.json', regs));
    const res = await s.get('/metrics');
    t.equal(res.status, 200);
    t.match(res.headers['content-type'], /text\/plain/);
    const m = res.text;
    const value = (series: string) => {
      const line = m.split('\n').find((l) => l.startsWith(`${series} `));
      return line ? Number(line.slice(series.length + 1)) : undefined;
    };
    t.equal(value('pullguard_reviews_total{kind="Pod",operation="CREATE",verdict="fail",action="deny"}'), 1);
    t.equal(value('pullguard_reviews_total{kind="Deployment",operation="CREATE",verdict="ok",action="allow"}'), 2);
    t.equal(value('pullguard_reviews_total{kind="Deployment",operation="UPDATE",verdict="ok",action="allow"}'), 1);
    t.equal(value('pullguard_review_duration_seconds_count{kind="Deployment"}'), 3);
    t.match(m, /pullguard_review_duration_seconds_bucket\{le="0\.005",kind="Pod"\} \d/);
    t.ok(
      (value(`pullguard_registry_requests_total{registry="${regs.plain.host}",status="200"}`) ?? 0) >= 1,
      'registry requests that found something',
    );
    t.ok(
      (value(`pullguard_registry_requests_total{registry="${regs.plain.host}",status="404"}`) ?? 0) >= 1,
      'and those that did not',
    );
    t.equal(value('pullguard_cache_hits'), 1, 'the second deployment-create came from the cache');
    t.ok((value('pullguard_cache_misses') ?? 0) >= 2);
    t.ok((value('pullguard_cache_entries') ?? 0) >= 2);
    t.match(m, /# TYPE pullguard_cache_shared gauge/);
    t.equal(
      value(`pullguard_registry_ratelimit_remaining{registry="${regs.plain.host}"}`),
      42,
      'the rate limit the registry reported',
    );
    t.equal(value('pullguard_findings_total{reason="repository-not-found",action="deny"}'), 1);
    t.match(m, /\npullguard_process_cpu_seconds_total \d/, 'process metrics, named without a stutter');
  },
);
