// What the runtime fetches after the tag, checked against real registries in the states partial
// syncs leave behind: a platform manifest, a layer or the config deleted from the repository, a
// stale cache whose tag names a digest it no longer serves. Storage redirects are followed without
// the registry's credentials; a blob that cannot be checked is a note, never a verdict; and a
// cached image costs no request at all.
import t from 'tap';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metrics } from '../../src/server/metrics.ts';
import { faults } from '../helpers/fault-proxy.ts';
import type { PushedImage, PushedIndex } from '../helpers/images.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import {
  deleteBlob,
  deleteManifest,
  pushLayered,
  startStaleCache,
  type StaleCache,
} from '../helpers/registry-states.ts';
import { checkImage, engineFor, isOneLine, keyring } from './lib.ts';

let reg: TestRegistry;
let stale: StaleCache;
let intact: PushedImage;
let noLayer: PushedImage;
let noConfig: PushedImage;
let partial: PushedIndex;
let armLayer: PushedIndex;

t.before(async () => {
  reg = await startRegistry({ auth: 'none', proxy: true });
  // One repository per state: a blob deleted from one repository is still in the others.
  intact = await reg.pushImage('state/intact', '1.0', { seed: 'intact' });
  noLayer = await reg.pushImage('state/layer', '1.0', { seed: 'layer' });
  await deleteBlob(reg, 'state/layer', noLayer.layerDigest);
  noConfig = await reg.pushImage('state/config', '1.0', { seed: 'config' });
  await deleteBlob(reg, 'state/config', noConfig.configDigest);
  partial = await reg.pushIndex('state/partial', '1.0', ['linux/amd64', 'linux/arm64'], { seed: 'partial' });
  await deleteManifest(reg, 'state/partial', partial.manifests[1]!.digest);
  armLayer = await reg.pushIndex('state/armlayer', '1.0', ['linux/amd64', 'linux/arm64'], { seed: 'armlayer' });
  await deleteBlob(reg, 'state/armlayer', armLayer.manifests[1]!.layerDigest);
  stale = await startStaleCache('state/stale', '1.0', { seed: 'stale' });
  reg.resetCounters();
});
t.teardown(async () => {
  await reg.stop();
  await stale.stop();
});

const engine = (verifyLayers = true) => engineFor({ registry: { insecure: [reg.host, stale.host], verifyLayers } });

t.test('an intact image: available, after the manifest by digest, its config and its layer', async (t) => {
  const e = engine();
  reg.resetCounters();
  const v = await checkImage(e, `${reg.host}/state/intact:1.0`, { platforms: ['linux/amd64'] });
  t.equal(v.reason, 'available');
  t.same(reg.proxy!.counts(), {
    'HEAD /v2/state/intact/manifests/1.0': 1,
    [`GET /v2/state/intact/manifests/${intact.digest}`]: 1,
    [`GET /v2/state/intact/blobs/${intact.configDigest}`]: 1,
    [`HEAD /v2/state/intact/blobs/${intact.layerDigest}`]: 1,
  });
  t.match(v.evidence.join('\n'), /fetched: config and 1 layer/);
});

t.test('a cached image costs no request: not the tag, the manifest, the config nor a layer', async (t) => {
  const e = engine();
  await checkImage(e, `${reg.host}/state/intact:1.0`, { platforms: ['linux/amd64'] });
  await checkImage(e, `${reg.host}/state/armlayer:1.0`, { platforms: ['linux/amd64'] });
  reg.resetCounters();
  const again = await checkImage(e, `${reg.host}/state/intact:1.0`, { platforms: ['linux/amd64'] });
  const index = await checkImage(e, `${reg.host}/state/armlayer:1.0`, { platforms: ['linux/amd64'] });
  t.equal(again.reason, 'available');
  t.equal(index.reason, 'available');
  t.equal(reg.proxy!.count(), 0, 'no request at all');
  // without platforms too (a check without a cluster)
  await checkImage(e, `${reg.host}/state/intact:1.0`);
  reg.resetCounters();
  await checkImage(e, `${reg.host}/state/intact:1.0`);
  t.equal(reg.proxy!.count(), 0);
});

t.test('a layer deleted from the repository: blob-missing, naming image, digest and fix', async (t) => {
  const v = await checkImage(engine(), `${reg.host}/state/layer:1.0`, { platforms: ['linux/amd64'] });
  t.equal(v.verdict, 'fail');
  t.equal(v.reason, 'blob-missing');
  t.match(v.message, `image "${reg.host}/state/layer:1.0"`);
  t.match(v.message, `layer ${noLayer.layerDigest}`);
  t.match(v.message, `missing from ${reg.host}/state/layer`);
  t.match(v.hint, 're-push the image, or resync');
  t.match(v.evidence.join('\n'), `HEAD /v2/state/layer/blobs/${noLayer.layerDigest} → 404`);
  t.ok(isOneLine(v.message) && isOneLine(v.hint));
  // pinned by digest: the same
  const pinned = await checkImage(engine(), `${reg.host}/state/layer@${noLayer.digest}`);
  t.equal(pinned.reason, 'blob-missing');
});

t.test('with verifyLayers off (check --no-verify-layers) layers are not fetched', async (t) => {
  const e = engine(false);
  reg.resetCounters();
  const v = await checkImage(e, `${reg.host}/state/layer:1.0`, { platforms: ['linux/amd64'] });
  t.equal(v.reason, 'available');
  t.equal(reg.proxy!.count({ path: /\/blobs\/sha256:/, method: 'HEAD' }), 0);
});

t.test('with verifyLayers off and no platform wanted: the manifest by digest is only HEADed', async (t) => {
  const e = engine(false);
  reg.resetCounters();
  t.equal((await checkImage(e, `${reg.host}/state/intact:1.0`)).reason, 'available');
  t.same(reg.proxy!.counts(), {
    'HEAD /v2/state/intact/manifests/1.0': 1,
    [`HEAD /v2/state/intact/manifests/${intact.digest}`]: 1,
  });
  const v = await checkImage(e, `${stale.host}/state/stale:1.0`);
  t.equal(v.reason, 'manifest-missing', 'which is enough for a stale cache');
});

t.test('the config blob deleted: blob-missing, the config named', async (t) => {
  for (const verifyLayers of [true, false]) {
    const v = await checkImage(engine(verifyLayers), `${reg.host}/state/config:1.0`, { platforms: ['linux/amd64'] });
    t.equal(v.reason, 'blob-missing');
    t.equal(v.verdict, 'fail');
    t.match(v.message, `config blob ${noConfig.configDigest}`);
  }
  const none = await checkImage(engine(), `${reg.host}/state/config:1.0`);
  t.equal(none.reason, 'blob-missing', 'without platforms too');
});

t.test("an index whose arm64 manifest was deleted: that platform's pull fails", async (t) => {
  const image = `${reg.host}/state/partial:1.0`;
  const arm = await checkImage(engine(), image, { platforms: ['linux/arm64'] });
  t.equal(arm.verdict, 'fail');
  t.equal(arm.reason, 'manifest-missing');
  t.match(arm.message, `the linux/arm64 manifest ${partial.manifests[1]!.digest} of its index is not served`);
  t.match(arm.hint, 're-push the image');
  const amd = await checkImage(engine(), image, { platforms: ['linux/amd64'] });
  t.equal(amd.reason, 'available');
  const both = await checkImage(engine(), image, { platforms: ['linux/amd64', 'linux/arm64'] });
  t.equal(both.verdict, 'risk', 'pods on amd64 nodes pull');
  t.equal(both.reason, 'manifest-missing');
  t.match(both.message, 'pods placed on linux/arm64 nodes will fail');
  // with verifyLayers off the platform manifest is still HEADed
  const head = await checkImage(engine(false), image, { platforms: ['linux/arm64'] });
  t.equal(head.reason, 'manifest-missing');
  // no platform known: only the index by digest, which is there
  const none = await checkImage(engine(), image);
  t.equal(none.reason, 'available');
});

t.test("an index whose arm64 layer was deleted: that platform's pull fails", async (t) => {
  const image = `${reg.host}/state/armlayer:1.0`;
  const arm = await checkImage(engine(), image, { platforms: ['linux/arm64'] });
  t.equal(arm.reason, 'blob-missing');
  t.equal(arm.verdict, 'fail');
  t.match(arm.message, `layer ${armLayer.manifests[1]!.layerDigest} of its linux/arm64 build`);
  t.equal((await checkImage(engine(), image, { platforms: ['linux/amd64'] })).reason, 'available');
});

t.test('a stale cache: the tag points to a digest the registry no longer serves', async (t) => {
  const v = await checkImage(engine(), `${stale.host}/state/stale:1.0`, { platforms: ['linux/amd64'] });
  t.equal(v.verdict, 'fail');
  t.equal(v.reason, 'manifest-missing');
  t.match(
    v.message,
    `the tag "1.0" points to ${stale.digest}, which the registry no longer serves (a stale or partly synced cache?)`,
  );
  t.equal(v.digest, stale.digest);
  const none = await checkImage(engine(), `${stale.host}/state/stale:1.0`);
  t.equal(none.reason, 'manifest-missing', 'without platforms too');
});

t.test('a blob answered with 5xx, a timeout or a reset: the verdict stays, with a note and a metric', async (t) => {
  t.teardown(() => reg.proxy!.clearRules());
  const cases = [
    ['500', faults.serverError(500), 'error'],
    ['503', faults.serverError(503), 'error'],
    ['reset', { kind: 'reset' as const }, 'unreachable'],
  ] as const;
  for (const [name, action, cause] of cases) {
    reg.proxy!.clearRules();
    reg.proxy!.fault(action, { method: 'HEAD', path: /\/blobs\// });
    const e = engine();
    const v = await checkImage(e, `${reg.host}/state/intact:1.0`, { platforms: ['linux/amd64'] });
    t.equal(v.reason, 'available', name);
    t.match(v.evidence.join('\n'), `layer ${intact.layerDigest} not verified (${cause})`, name);
    t.equal(e.fetchStats.unverified[cause], 1, name);
    const metrics = new Metrics();
    metrics.observeEngine(e);
    t.match(await metrics.registry.metrics(), `pullguard_fetch_unverified{cause="${cause}"} 1`, name);
  }
});

t.test('blobs still unanswered near the deadline are a note, not a timeout', async (t) => {
  t.teardown(() => reg.proxy!.clearRules());
  reg.proxy!.fault({ kind: 'hang' }, { method: 'HEAD', path: /\/blobs\// });
  const e = engineFor({ registry: { insecure: [reg.host] }, deadline: 3_000 });
  const v = await checkImage(e, `${reg.host}/state/intact:1.0`, { platforms: ['linux/amd64'] });
  t.equal(v.reason, 'available');
  t.match(v.evidence.join('\n'), 'not verified (timeout)');
});

t.test("a platform manifest that cannot be read: a risk like the tag's, never a denial", async (t) => {
  t.teardown(() => reg.proxy!.clearRules());
  reg.proxy!.fault(faults.serverError(500), {
    method: 'GET',
    path: new RegExp(`/manifests/${armLayer.manifests[0]!.digest}`),
  });
  const v = await checkImage(engine(), `${reg.host}/state/armlayer:1.0`, { platforms: ['linux/amd64'] });
  t.equal(v.verdict, 'risk');
  t.equal(v.reason, 'registry-error');
  t.match(v.message, `the linux/amd64 manifest ${armLayer.manifests[0]!.digest} could not be read`);
});

t.test(
  'blobs redirected to storage: followed without the Authorization; 403 from a signed URL is not "missing"',
  async (t) => {
    const alice = { username: 'alice', password: 'wonderland-1' };
    const basic = await startRegistry({ auth: 'htpasswd', users: [alice], proxy: true });
    t.teardown(() => basic.stop());
    const img = await basic.pushImage('private/app', '1.0', { seed: 'storage' });
    let answer = 200;
    const seen: IncomingHttpHeaders[] = [];
    const storage = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(answer, { 'content-length': '0' });
      res.end();
    });
    await new Promise<void>((r) => storage.listen(0, '127.0.0.1', () => r()));
    t.teardown(() => new Promise<void>((r) => storage.close(() => r())));
    const storageUrl = `http://127.0.0.1:${(storage.address() as AddressInfo).port}`;
    basic.proxy!.fault(
      { kind: 'redirect', location: `${storageUrl}/layer?X-Amz-Signature=abc`, status: 307 },
      { method: 'HEAD', path: /\/blobs\// },
    );
    const creds = { keyrings: [keyring({ [basic.host]: alice })] };
    const e1 = engineFor({}, [basic.caPem!]);
    const ok = await checkImage(e1, `${basic.host}/private/app:1.0`, { ...creds, platforms: ['linux/amd64'] });
    t.equal(ok.reason, 'available');
    t.equal(seen.length, 1, 'the layer HEAD reached storage');
    t.equal(seen[0]!.authorization, undefined, "the registry's Authorization did not follow");
    t.ok(
      basic.proxy!.requests({ path: /\/blobs\// }).some((r) => r.authorization?.startsWith('Basic ')),
      'the registry itself got it',
    );

    answer = 403;
    const e2 = engineFor({}, [basic.caPem!]);
    const signed = await checkImage(e2, `${basic.host}/private/app:1.0`, { ...creds, platforms: ['linux/amd64'] });
    t.equal(signed.reason, 'available', 'a signed URL that refuses HEAD says nothing about the blob');
    t.match(signed.evidence.join('\n'), `layer ${img.layerDigest} not verified (signed-url)`);
    t.equal(e2.fetchStats.unverified['signed-url'], 1);

    answer = 404;
    const e3 = engineFor({}, [basic.caPem!]);
    const gone = await checkImage(e3, `${basic.host}/private/app:1.0`, { ...creds, platforms: ['linux/amd64'] });
    t.equal(gone.reason, 'blob-missing', 'a 404 from storage is a missing blob');

    // storage that cannot be reached: a note
    basic.proxy!.clearRules();
    basic.proxy!.fault(
      { kind: 'redirect', location: 'http://127.0.0.1:1/layer', status: 307 },
      { method: 'HEAD', path: /\/blobs\// },
    );
    const e4 = engineFor({}, [basic.caPem!]);
    const cdn = await checkImage(e4, `${basic.host}/private/app:1.0`, { ...creds, platforms: ['linux/amd64'] });
    t.equal(cdn.reason, 'available');
    t.equal(e4.fetchStats.unverified.unreachable, 1);
  },
);

t.test('a missing blob is asked again after cache.negativeTtl, a present one is kept', async (t) => {
  const e = engineFor({ registry: { insecure: [reg.host] }, cache: { negativeTtl: 1, positiveTtl: 1 } });
  await checkImage(e, `${reg.host}/state/layer:1.0`, { platforms: ['linux/amd64'] });
  await new Promise((r) => setTimeout(r, 20));
  reg.resetCounters();
  const v = await checkImage(e, `${reg.host}/state/layer:1.0`, { platforms: ['linux/amd64'] });
  t.equal(v.reason, 'blob-missing');
  t.equal(reg.proxy!.count({ method: 'HEAD', path: new RegExp(`/blobs/${noLayer.layerDigest}`) }), 1, 'asked again');
  t.equal(
    reg.proxy!.count({ path: new RegExp(`/blobs/${noLayer.configDigest}`) }),
    0,
    'the config is kept (digestTtl)',
  );
});

t.test('a nearly spent pull quota is not spent further: no fetch past the tag', async (t) => {
  t.teardown(() => reg.proxy!.clearRules());
  reg.proxy!.fault(faults.rateLimitHeaders(3), { method: 'HEAD', path: /\/manifests\// });
  reg.resetCounters();
  const v = await checkImage(engine(), `${reg.host}/state/layer:1.0`);
  t.equal(v.reason, 'rate-limited');
  t.equal(reg.proxy!.count(), 1, 'the HEAD of the tag only');
});

t.test('at most 128 layers a manifest are checked; a broken CDN is a few lines of evidence', async (t) => {
  const many = await pushLayered(reg, 'state/many', '1.0', 130);
  await deleteBlob(reg, 'state/many', many.layers[5]!);
  const e = engine();
  reg.resetCounters();
  const v = await checkImage(e, `${reg.host}/state/many:1.0`, { platforms: ['linux/amd64'] });
  t.equal(v.reason, 'blob-missing');
  t.match(v.message, `layer ${many.layers[5]}`);
  t.equal(reg.proxy!.count({ method: 'HEAD', path: /\/blobs\// }), 128, 'the first 128 layers');
  t.match(v.evidence.join('\n'), '2 layers past the first 128 not checked');
  const past = await pushLayered(reg, 'state/past', '1.0', 130);
  await deleteBlob(reg, 'state/past', past.layers[129]!);
  const unseen = await checkImage(e, `${reg.host}/state/past:1.0`, { platforms: ['linux/amd64'] });
  t.equal(unseen.reason, 'available', 'a layer past the limit is not looked at');

  t.teardown(() => reg.proxy!.clearRules());
  reg.proxy!.fault(faults.serverError(503), { method: 'HEAD', path: /\/blobs\// });
  const cdn = await pushLayered(reg, 'state/cdn', '1.0', 20);
  const broken = await checkImage(engine(), `${reg.host}/state/cdn:1.0`, { platforms: ['linux/amd64'] });
  t.equal(broken.reason, 'available');
  const notes = broken.evidence.filter((l) => l.includes('not verified (error)'));
  t.equal(notes.length, 5, 'five lines');
  t.ok(broken.evidence.includes('and 15 more blobs like these'));
  t.ok(cdn.layers.length === 20);
});
