// The engine against a real anonymous registry (distribution, plain HTTP): every answer such a
// registry can give, the kubelet's reference rules, and what the cache saves.
import t from 'tap';
import { Deadline } from '../../src/deadline.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { checkImage, engineFor, isOneLine } from './lib.ts';

let reg: TestRegistry;
let single: { digest: string };
let multi: { digest: string };

t.before(async () => {
  reg = await startRegistry({ auth: 'none', proxy: true });
  single = await reg.pushImage('demo/app', '1.0', { platform: 'linux/amd64' });
  await reg.pushTags('demo/app', ['1.1', '1.2', '2.0', '2.0.1'], { platform: 'linux/amd64' });
  multi = await reg.pushIndex('demo/app', 'multi', ['linux/amd64', 'linux/arm64/v8']);
  reg.resetCounters();
});
t.teardown(() => reg.stop());

const engine = () => engineFor({ registry: { insecure: [reg.host] } });

t.test('an existing tag is available, with its digest', async (t) => {
  const v = await checkImage(engine(), `${reg.host}/demo/app:1.0`);
  t.equal(v.verdict, 'ok');
  t.equal(v.reason, 'available');
  t.equal(v.digest, single.digest);
  t.equal(v.reference, `${reg.host}/demo/app:1.0`);
});

t.test('a missing tag fails with the nearest existing tags', async (t) => {
  const v = await checkImage(engine(), `${reg.host}/demo/app:1.3`);
  t.equal(v.verdict, 'fail');
  t.equal(v.reason, 'tag-not-found');
  t.same(v.suggestions, ['1.0', '1.1', '1.2']);
  t.match(v.message, `tag "1.3" does not exist in ${reg.host}/demo/app`);
  t.match(v.message, 'Did you mean "1.0" or "1.1" or "1.2"?');
  t.ok(isOneLine(v.message) && isOneLine(v.hint));
});

t.test('a missing repository fails as repository-not-found', async (t) => {
  const v = await checkImage(engine(), `${reg.host}/demo/nope:1.0`);
  t.equal(v.reason, 'repository-not-found');
  t.equal(v.verdict, 'fail');
  t.match(v.message, `repository ${reg.host}/demo/nope does not exist`);
});

t.test('digests: pinned and present, pinned and missing, tag plus digest uses the digest', async (t) => {
  const e = engine();
  const ok = await checkImage(e, `${reg.host}/demo/app@${single.digest}`);
  t.equal(ok.reason, 'available');
  t.equal(ok.reference, `${reg.host}/demo/app@${single.digest}`);
  const missing = await checkImage(e, `${reg.host}/demo/app@sha256:${'0'.repeat(64)}`);
  t.equal(missing.reason, 'digest-not-found');
  t.equal(missing.verdict, 'fail');
  const both = await checkImage(e, `${reg.host}/demo/app:no-such-tag@${single.digest}`);
  t.equal(both.reason, 'available', 'the kubelet pulls only the digest when both are given');
});

t.test('a malformed reference fails before any request', async (t) => {
  reg.resetCounters();
  const e = engine();
  for (const image of [
    `${reg.host}/demo/App:1.0`,
    'nginx:',
    ' nginx',
    `${reg.host}/demo/app@sha256:abc`,
    'a'.repeat(300),
  ]) {
    const v = await checkImage(e, image);
    t.equal(v.reason, 'invalid-reference', image.slice(0, 40));
    t.match(v.message, 'InvalidImageName');
    t.ok(isOneLine(v.message));
  }
  t.equal(reg.proxy!.count(), 0, 'no registry request');
});

t.test('platforms: index entries and single images against node platforms', async (t) => {
  const e = engine();
  const arm = await checkImage(e, `${reg.host}/demo/app:multi`, { platforms: ['linux/arm64'] });
  t.equal(arm.reason, 'available', 'arm64 is in the index');
  const s390 = await checkImage(e, `${reg.host}/demo/app:multi`, { platforms: ['linux/s390x'] });
  t.equal(s390.reason, 'platform-not-found');
  t.equal(s390.verdict, 'fail');
  t.match(
    s390.message,
    'no build for linux/s390x, the nodes the pod may land on (it offers linux/amd64, linux/arm64/v8)',
  );
  const mixed = await checkImage(e, `${reg.host}/demo/app:multi`, { platforms: ['linux/amd64', 'linux/s390x'] });
  t.equal(mixed.reason, 'platform-not-found');
  t.equal(mixed.verdict, 'risk', 'some nodes can run it: a warning, not a denial');
  const singleArm = await checkImage(e, `${reg.host}/demo/app:1.0`, { platforms: ['linux/arm64'] });
  t.equal(singleArm.reason, 'platform-not-found');
  t.equal(singleArm.verdict, 'fail');
  t.match(singleArm.message, 'built for linux/amd64 only');
  const singleAmd = await checkImage(e, `${reg.host}/demo/app:1.0`, { platforms: ['linux/amd64'] });
  t.equal(singleAmd.reason, 'available');
  t.equal(multi.digest, (await checkImage(e, `${reg.host}/demo/app:multi`)).digest);
});

t.test('index bodies are read once per digest', async (t) => {
  const e = engine();
  reg.resetCounters();
  for (const p of ['linux/arm64', 'linux/s390x', 'linux/amd64'])
    await checkImage(e, `${reg.host}/demo/app:multi`, { platforms: [p] });
  t.equal(reg.proxy!.count({ method: 'GET', path: new RegExp(`/manifests/${multi.digest}`) }), 1);
  t.equal(reg.proxy!.count({ method: 'HEAD', path: /\/manifests\// }), 1, 'and the tag resolved once');
});

t.test(
  '50 checks of one new image make one request per thing fetched; a second check is served from the cache',
  async (t) => {
    const e = engine();
    reg.resetCounters();
    const uses = Array.from({ length: 50 }, (_, i) => ({
      object: { kind: 'Pod', namespace: 'shop', name: `p${i}` },
      container: 'app',
      field: 'spec.containers[0].image',
      image: `${reg.host}/demo/app:1.2`,
    }));
    const findings = await e.check(uses, { credentials: { keyrings: [] } });
    t.equal(findings.length, 50);
    t.ok(findings.every((f) => f.reason === 'available' && f.object.name === `p${findings.indexOf(f)}`));
    // the tag's HEAD, the manifest by digest, its config and its one layer: as containerd fetches them
    t.equal(reg.proxy!.count({ path: /\/manifests\// }), 2, 'one HEAD of the tag, one GET by digest');
    t.equal(reg.proxy!.count(), 4, 'and one request for the config and the layer each');
    // 2.0 is the same manifest under another tag: only the tag is new
    await Promise.all(Array.from({ length: 20 }, () => checkImage(e, `${reg.host}/demo/app:2.0`)));
    t.equal(reg.proxy!.count({ path: /\/manifests\// }), 3, 'concurrent checks of another tag share one request');
    t.equal(reg.proxy!.count(), 5, 'the digest, config and layer answers are reused');
    await checkImage(e, `${reg.host}/demo/app:1.2`);
    t.equal(reg.proxy!.count(), 5, 'cached');
    t.ok(e.cacheStats.answers.hits + e.cacheStats.answers.shared >= 20);
  },
);

t.test('each cached answer a check uses is counted as one hit, however the check is answered', async (t) => {
  const e = engine();
  const use = (tag: string) => ({
    object: { kind: 'Pod', namespace: 'shop', name: 'p' },
    container: 'app',
    field: 'spec.containers[0].image',
    image: `${reg.host}/demo/app:${tag}`,
  });
  const opts = { credentials: { keyrings: [] } };
  await e.check([use('1.0')], opts);
  const hits = () => e.cacheStats.answers.hits;
  let before = hits();
  const warm = e.check([use('1.0')], opts);
  t.notOk(warm instanceof Promise, 'answered at once from the cache');
  const one = hits() - before;
  t.ok(one > 0, 'its cached answers are counted');
  // Another image not yet checked: waited for, and the cached one's answers counted once only.
  before = hits();
  const mixed = e.check([use('1.0'), use('1.1')], opts);
  t.ok(mixed instanceof Promise, 'one image must be asked: waited for');
  await mixed;
  t.equal(hits() - before, one, "the cached image's answers, counted once");
});

t.test('negative answers are kept only briefly, so a push is seen soon', async (t) => {
  const ttl = 1000;
  const e = engineFor({ registry: { insecure: [reg.host] }, cache: { negativeTtl: `${ttl}ms` } });
  const late = `${reg.host}/demo/late:1`;
  const asked = () => reg.proxy!.count({ path: '/v2/demo/late/manifests/1' });
  const before = asked();
  t.equal((await checkImage(e, late)).reason, 'repository-not-found');
  // Asked again at once (no I/O in between, so well inside the TTL however busy the machine).
  t.equal((await checkImage(e, late)).reason, 'repository-not-found', 'still cached');
  t.equal(asked() - before, 1, 'the second check did not ask the registry');
  // The push may take long on a busy machine; the wait after it only has to outlast the TTL.
  await reg.pushImage('demo/late', '1', { seed: 'late' });
  await new Promise((r) => setTimeout(r, ttl + 100));
  t.equal((await checkImage(e, late)).reason, 'available', 'seen after the negative TTL');
});

t.test('an available image is decided again once its cached answer expires: a tag gone since is seen', async (t) => {
  const e = engineFor({ registry: { insecure: [reg.host] }, cache: { positiveTtl: '300ms' } });
  const image = `${reg.host}/demo/app:1.1`;
  t.equal((await checkImage(e, image)).reason, 'available');
  const gone = reg.proxy!.fault(
    {
      kind: 'status',
      status: 404,
      body: { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] },
    },
    { path: '/v2/demo/app/manifests/1.1' },
  );
  t.teardown(() => gone.remove());
  t.equal((await checkImage(e, image)).reason, 'available', 'still cached');
  await new Promise((r) => setTimeout(r, 400));
  t.equal((await checkImage(e, image)).reason, 'tag-not-found', 'asked again after the positive TTL');
});

t.test('the cache is bounded', async (t) => {
  const e = engineFor({ registry: { insecure: [reg.host] }, cache: { maxEntries: 3 } });
  for (const tag of ['1.0', '1.1', '1.2', '2.0', '2.0.1']) await checkImage(e, `${reg.host}/demo/app:${tag}`);
  t.equal(e.cacheStats.size, 3);
});

t.test("pullPolicy Never and localhost images are not the registry's to answer", async (t) => {
  reg.resetCounters();
  const e = engine();
  const never = await checkImage(e, `${reg.host}/demo/app:1.0`, { pullPolicy: 'Never' });
  t.equal(never.reason, 'unverifiable');
  t.match(never.message, 'imagePullPolicy Never');
  const neverUse = (container: string) => [
    {
      object: { kind: 'Pod' },
      container,
      field: 'spec.containers[0].image',
      image: `${reg.host}/demo/app:1.0`,
      pullPolicy: 'Never',
    },
  ];
  const [absent] = await e.check(neverUse('absent'), {
    credentials: { keyrings: [] },
    imageOnAnyNode: () => false,
  });
  t.equal(absent!.reason, 'unverifiable');
  t.equal(absent!.verdict, 'risk', 'node image lists are capped: never a denial');
  t.match(absent!.message, 'no node reports having it');
  const [present] = await e.check(neverUse('present'), {
    credentials: { keyrings: [] },
    imageOnAnyNode: (names) => names.includes(`${reg.host}/demo/app:1.0`),
  });
  t.equal(present!.reason, 'available');
  const local = await checkImage(e, 'localhost/app:1');
  t.equal(local.reason, 'unverifiable');
  t.equal(reg.proxy!.count(), 0, 'none of them asked the registry');
});

t.test(
  "KEP-2535: an IfNotPresent image a node has, as the nodes' imagePullCredentialsVerificationPolicy says",
  async (t) => {
    const image = `${reg.host}/demo/app:9.9`;
    const onNode = (names: string[]) => names.includes(image);
    const run = async (credentials: Record<string, unknown>, pullPolicy = 'IfNotPresent', has = onNode) => {
      const e = engineFor({ registry: { insecure: [reg.host] }, credentials });
      const [f] = await e.check(
        [{ object: { kind: 'Pod' }, container: 'app', field: 'spec.containers[0].image', image, pullPolicy }],
        { credentials: { keyrings: [] }, imageOnAnyNode: has },
      );
      return f!;
    };
    const preloaded = await run({});
    t.same([preloaded.verdict, preloaded.reason], ['risk', 'unverifiable'], 'the default, NeverVerifyPreloadedImages');
    t.match(preloaded.message, 'tag "9.9" does not exist');
    t.match(preloaded.message, 'if it was preloaded there (not pulled for another pod), the kubelet uses it without');
    t.match(preloaded.hint, 'keep the pod on the nodes that have the image');
    t.ok(isOneLine(preloaded.message) && isOneLine(preloaded.hint));
    const never = await run({ imagePullCredentialsVerificationPolicy: 'NeverVerify' });
    t.same([never.verdict, never.reason], ['risk', 'unverifiable']);
    t.match(never.message, 'NeverVerify)');
    const always = await run({ imagePullCredentialsVerificationPolicy: 'AlwaysVerify' });
    t.same([always.verdict, always.reason], ['fail', 'tag-not-found'], 'AlwaysVerify: the kubelet asks the registry');
    const listed = await run({
      imagePullCredentialsVerificationPolicy: 'NeverVerifyAllowlistedImages',
      preloadedImagesVerificationAllowlist: [`${reg.host}/demo/*`],
    });
    t.equal(listed.reason, 'unverifiable', 'allowlisted by prefix');
    const unlisted = await run({
      imagePullCredentialsVerificationPolicy: 'NeverVerifyAllowlistedImages',
      preloadedImagesVerificationAllowlist: [`${reg.host}/other`],
    });
    t.equal(unlisted.reason, 'tag-not-found', 'not on the allowlist');
    t.equal((await run({}, 'Always')).reason, 'tag-not-found', 'pullPolicy Always pulls whatever the node has');
    t.equal((await run({}, 'IfNotPresent', () => false)).reason, 'tag-not-found', 'on no node');
    t.throws(
      () => engineFor({ credentials: { preloadedImagesVerificationAllowlist: ['r.test/app:1.0'] } }),
      /preloadedImagesVerificationAllowlist/,
    );
  },
);

t.test('the check deadline turns the unfinished into timeout risks', async (t) => {
  const e = engine();
  // The fast image is answered from the cache, so on a busy machine too only the hanging one is late.
  t.equal((await checkImage(e, `${reg.host}/demo/app:1.0`)).reason, 'available');
  const rule = reg.proxy!.fault({ kind: 'hang' }, { path: /\/demo\/app\/manifests\/2\.0\.1$/ });
  const deadline = 500;
  const started = Date.now();
  const findings = await e.check(
    [
      { object: { kind: 'Pod' }, container: 'slow', field: 'f', image: `${reg.host}/demo/app:2.0.1` },
      { object: { kind: 'Pod' }, container: 'fast', field: 'f', image: `${reg.host}/demo/app:1.0` },
    ],
    { credentials: { keyrings: [] }, deadline: Deadline.after(deadline) },
  );
  rule.remove();
  t.ok(Date.now() - started < deadline * 10, 'answered by the deadline');
  t.same(
    findings.map((f) => [f.container, f.reason, f.verdict]),
    [
      ['slow', 'timeout', 'risk'],
      ['fast', 'available', 'ok'],
    ],
  );
});

t.test('tag suggestions follow paginated tag lists, bounded by maxTagsForSuggestions', async (t) => {
  const tags = Array.from({ length: 150 }, (_, i) => `v${String(i).padStart(3, '0')}`);
  await reg.pushTags('demo/paged', tags);
  reg.proxy!.fault({ kind: 'paginate-tags' }, { path: /\/tags\/list/ });
  t.teardown(() => reg.proxy!.clearRules());
  reg.resetCounters();
  const all = await checkImage(engineFor({ registry: { insecure: [reg.host] } }), `${reg.host}/demo/paged:v149x`);
  t.equal(all.reason, 'tag-not-found');
  t.same(all.suggestions?.[0], 'v149', 'found on the second page');
  t.equal(reg.proxy!.count({ path: /\/tags\/list/ }), 2, 'two pages of 100');
  reg.resetCounters();
  const bounded = await checkImage(
    engineFor({ registry: { insecure: [reg.host], maxTagsForSuggestions: 50 } }),
    `${reg.host}/demo/paged:v149x`,
  );
  t.equal(reg.proxy!.count({ path: /\/tags\/list/ }), 1, 'one page when 50 tags are enough');
  t.notOk(bounded.suggestions?.includes('v149'), 'tags past the bound are not read');
});

t.test('at most registry.concurrency requests are in flight to one registry', async (t) => {
  let inFlight = 0;
  let most = 0;
  reg.proxy!.fault({
    kind: 'handler',
    handle: async (_req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 50));
      inFlight--;
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] }));
    },
  });
  t.teardown(() => reg.proxy!.clearRules());
  const e = engineFor({ registry: { insecure: [reg.host], concurrency: 2 } });
  const uses = Array.from({ length: 12 }, (_, i) => ({
    object: { kind: 'Pod' },
    container: `c${i}`,
    field: 'f',
    image: `${reg.host}/demo/n${i}:1`,
  }));
  const findings = await e.check(uses, { credentials: { keyrings: [] } });
  t.ok(findings.every((f) => f.reason === 'repository-not-found'));
  t.equal(most, 2, 'never more than two at once');
});

t.test(
  'one kept-alive connection serves successive HEADs (undici closes after a HEAD unless told not to)',
  async (t) => {
    const { subscribe, unsubscribe } = await import('node:diagnostics_channel');
    let connections = 0;
    const onConnect = () => connections++;
    subscribe('undici:client:connected', onConnect);
    t.teardown(() => unsubscribe('undici:client:connected', onConnect));
    const e = engine();
    // The first check learns that this insecure registry speaks plain HTTP (a TLS attempt first), and
    // undici drops the first connection's HEAD (Go's server sends no "Connection: keep-alive").
    await checkImage(e, `${reg.host}/demo/app:multi`);
    await checkImage(e, `${reg.host}/demo/app@${single.digest}`);
    connections = 0;
    for (const tag of ['1.0', '1.1', '1.2', '2.0', '2.0.1'])
      t.equal((await checkImage(e, `${reg.host}/demo/app:${tag}`)).reason, 'available');
    t.equal(connections, 0, `five more HEADs on the same connection (saw ${connections} new)`);
  },
);

t.test("a tag list in one page over 64 KiB (as Debian's registry sends it) still gives suggestions", async (t) => {
  const tags = Array.from({ length: 4000 }, (_, i) => `release-2026.01.${String(i).padStart(4, '0')}`);
  reg.proxy!.fault(
    {
      kind: 'handler',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ name: 'demo/app', tags }));
      },
    },
    { path: /\/demo\/app\/tags\/list/ },
  );
  t.teardown(() => reg.proxy!.clearRules());
  t.ok(JSON.stringify({ tags }).length > 64 * 1024, 'the answer is larger than 64 KiB');
  const v = await checkImage(
    engineFor({ registry: { insecure: [reg.host], maxTagsForSuggestions: 5000 } }),
    `${reg.host}/demo/app:release-2026.01.3999x`,
  );
  t.equal(v.reason, 'tag-not-found');
  t.equal(v.suggestions?.[0], 'release-2026.01.3999');
});
