// What a registry can do wrong, each case through a fault-injecting proxy in front of a real
// registry. Whatever happens, the verdict is a risk (never a denial, which is for certainties), the
// answer comes by the deadline, and no credential goes where it should not.
import t from 'tap';
import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns';
import { startFaultProxy, faults } from '../helpers/fault-proxy.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { validateConfig, type ConfigInput } from '../../src/config/schema.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import type { LookupFunction } from '../../src/registry/transport.ts';
import { checkImage, keyring } from './lib.ts';
import { registryClientFor } from '../../src/app/build.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
let anon: TestRegistry;
let hub: TestRegistry;
let basic: TestRegistry;

/** Names resolve here, never at a DNS server: *.invalid does not exist, metadata.test is the metadata address. */
const testLookup: LookupFunction = (hostname, options, callback) => {
  if (hostname.endsWith('.invalid')) {
    const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
    err.code = 'ENOTFOUND';
    return callback(err, []);
  }
  if (hostname === 'metadata.test') return callback(null, [{ address: '169.254.169.254', family: 4 } as LookupAddress]);
  if (hostname === 'localhost') return dnsLookup(hostname, options, callback);
  const err: NodeJS.ErrnoException = new Error(`tests resolve no other names (${hostname})`);
  err.code = 'EAI_FAIL';
  callback(err, []);
};

// A deadline far longer than any answer takes, so that only the tests about hangs see a timeout;
// those configure a short one and allow a generous margin derived from it.
const LONG_DEADLINE = 60_000;
const SHORT_DEADLINE = 800;

function engine(input: ConfigInput = {}): Preflight {
  const config = validateConfig({
    deadline: LONG_DEADLINE,
    ...input,
    registry: { insecure: [anon.host], endpoints: { 'docker.io': hub.url }, ...input.registry },
  });
  return new Preflight(config, registryClientFor(config, [hub.caPem!, basic.caPem!], { lookup: testLookup }));
}

t.before(async () => {
  [anon, hub, basic] = await Promise.all([
    startRegistry({ auth: 'none', proxy: true }),
    // Docker Hub's shape: token auth, public official images under library/.
    startRegistry({
      auth: 'token',
      tls: true,
      users: [alice],
      acl: { public: ['library/*'], pull: { alice: ['*'] } },
      proxy: true,
      proxyToken: true,
      token: { service: 'registry.docker.io' },
    }),
    startRegistry({ auth: 'htpasswd', users: [alice], proxy: true }),
  ]);
  await anon.pushImage('demo/app', '1.0');
  await anon.pushIndex('demo/app', 'multi', ['linux/amd64', 'linux/arm64/v8']);
  await hub.pushImage('library/nginx', '1.25');
  await hub.pushImage('library/nginx', '1.24', { seed: 'old' });
  await basic.pushImage('private/app', '1.0');
  for (const r of [anon, hub, basic]) r.resetCounters();
});
t.teardown(async () => {
  await Promise.all([anon.stop(), hub.stop(), basic.stop()]);
});
t.afterEach(() => {
  for (const r of [anon, hub, basic]) r.proxy!.clearRules();
  hub.tokenProxy!.clearRules();
});

t.test(
  'Docker Hub: a missing repository answers 401, reported as access-denied with the ambiguity and a near official name',
  async (t) => {
    hub.proxy!.fault(
      faults.hubMissingRepo('library/ngiinx', { realm: hub.tokenServer!.realm, service: 'registry.docker.io' }),
      { path: /^\/v2\/library\/ngiinx\// },
    );
    const v = await checkImage(engine(), 'ngiinx:1.14.2', { scope: 'namespace "shop"' });
    t.equal(v.reason, 'access-denied');
    t.equal(v.verdict, 'fail');
    t.equal(v.reference, 'docker.io/library/ngiinx:1.14.2');
    t.match(
      v.message,
      'repository docker.io/library/ngiinx does not exist or needs credentials (Docker Hub answers both the same way',
    );
    t.match(v.message, 'no imagePullSecret in namespace "shop" matches docker.io');
    t.match(v.message, 'Did you mean "nginx"?');
    t.same(v.suggestions?.[0], 'nginx');
    t.match(v.hint, 'fix a typo in the name');
  },
);

t.test('Docker Hub: an official image with a missing tag suggests near tags', async (t) => {
  const v = await checkImage(engine(), 'nginx:1.23');
  t.equal(v.reason, 'tag-not-found');
  t.same(v.suggestions, ['1.24', '1.25']);
});

t.test('rate limits: remaining pulls under the threshold, 429 with and without Retry-After', async (t) => {
  hub.proxy!.fault(faults.rateLimitHeaders(3), { method: 'HEAD' });
  const low = await checkImage(engine(), 'nginx:1.25');
  t.equal(low.reason, 'rate-limited');
  t.equal(low.verdict, 'risk');
  t.match(low.message, 'allows only 3 more pulls per 6 h');
  t.equal(low.digest?.startsWith('sha256:'), true, 'the image itself exists');
  hub.proxy!.clearRules();
  hub.proxy!.fault(faults.rateLimitHeaders(80), { method: 'HEAD' });
  const e = engine();
  t.equal((await checkImage(e, 'nginx:1.25')).reason, 'available', 'plenty left');
  t.equal([...e.client.rateLimits.values()][0]?.remaining, 80, 'the figures are kept for metrics');
  hub.proxy!.clearRules();
  hub.proxy!.fault(faults.tooManyRequests({ retryAfter: 30 }), { method: 'HEAD' });
  const limited = await checkImage(engine(), 'nginx:1.25');
  t.equal(limited.reason, 'rate-limited');
  t.equal(limited.verdict, 'risk');
  t.match(limited.message, 'retry after 30 s');
  hub.proxy!.clearRules();
  hub.proxy!.fault(faults.tooManyRequests(), { method: 'HEAD' });
  t.equal((await checkImage(engine(), 'nginx:1.25')).reason, 'rate-limited');
});

const transient: [string, () => void, string, string][] = [
  ['500', () => anon.proxy!.fault(faults.serverError(500), { method: 'HEAD' }), 'registry-error', 'HTTP 500'],
  [
    '502',
    () => anon.proxy!.fault(faults.serverError(502, 'bad gateway'), { method: 'HEAD' }),
    'registry-error',
    'HTTP 502',
  ],
  ['503', () => anon.proxy!.fault(faults.serverError(503), { method: 'HEAD' }), 'registry-error', 'HTTP 503'],
  [
    '500 with a malformed JSON body',
    () => anon.proxy!.fault(faults.malformedJson(500), { method: 'HEAD' }),
    'registry-error',
    'HTTP 500',
  ],
  ['hang before headers', () => anon.proxy!.fault({ kind: 'hang' }), 'timeout', 'did not answer'],
  ['connection reset', () => anon.proxy!.fault({ kind: 'reset' }), 'registry-unreachable', 'closed the connection'],
];
for (const [name, inject, reason, text] of transient) {
  t.test(`${name}: a ${reason} risk, by the deadline`, async (t) => {
    inject();
    // Only a hang is decided by the deadline; every other fault must win over it, however slow the machine.
    const deadline = reason === 'timeout' ? SHORT_DEADLINE : LONG_DEADLINE;
    const started = Date.now();
    const v = await checkImage(engine({ deadline }), `${anon.host}/demo/app:1.0`);
    t.equal(v.reason, reason);
    t.equal(v.verdict, 'risk');
    t.match(v.message, text);
    t.ok(Date.now() - started < deadline * 10, 'answered by the deadline');
  });
}

t.test('hang in the body and a slow trickle of an index: timeout risks by the deadline', async (t) => {
  for (const action of [
    { kind: 'hang-body', bytes: 20 } as const,
    { kind: 'trickle', chunkBytes: 1, intervalMs: 100 } as const,
  ]) {
    anon.proxy!.clearRules();
    anon.proxy!.fault(action, { method: 'GET', path: /\/manifests\/sha256:/ });
    const started = Date.now();
    const v = await checkImage(engine({ deadline: SHORT_DEADLINE }), `${anon.host}/demo/app:multi`, {
      platforms: ['linux/arm64'],
    });
    t.equal(v.reason, 'timeout', action.kind);
    t.equal(v.verdict, 'risk');
    t.ok(Date.now() - started < SHORT_DEADLINE * 10, 'answered by the deadline');
  }
});

t.test('an index whose body cannot be read leaves the platforms unknown: a risk, never ok', async (t) => {
  anon.proxy!.fault(faults.serverError(500), { method: 'GET', path: /\/manifests\/sha256:/ });
  const v = await checkImage(engine(), `${anon.host}/demo/app:multi`, { platforms: ['linux/arm64'] });
  t.equal(v.reason, 'registry-error');
  t.equal(v.verdict, 'risk');
  t.match(v.message, 'its platforms could not be read');
});

t.test('TLS: a certificate from another CA, and an expired one', async (t) => {
  for (const cert of ['wrongServer', 'expiredServer'] as const) {
    const pki = basic.pki;
    const bad = await startFaultProxy({
      upstream: basic.direct.url,
      upstreamCa: basic.caPem!,
      tls: { cert: pki[cert].certPem, key: pki[cert].keyPem },
    });
    t.teardown(() => bad.stop());
    const v = await checkImage(engine(), `${bad.host}/private/app:1.0`, { keyrings: [keyring({ [bad.host]: alice })] });
    t.equal(v.reason, 'registry-unreachable', cert);
    t.equal(v.verdict, 'risk');
    t.match(v.message, 'TLS');
    t.equal(bad.log.filter((e) => e.authorization).length, 0, 'no credentials sent over an untrusted connection');
  }
});

t.test('a registry name that does not resolve, and a closed port', async (t) => {
  const dns = await checkImage(engine(), 'registry.invalid:5000/team/app:1');
  t.equal(dns.reason, 'registry-unreachable');
  t.match(dns.message, 'does not resolve');
  const refused = await checkImage(engine(), '127.0.0.1:1/team/app:1');
  t.equal(refused.reason, 'registry-unreachable');
  t.match(refused.message, 'ECONNREFUSED');
});

t.test('a redirect to another host: followed, without the credentials', async (t) => {
  const elsewhere = await startFaultProxy({ upstream: basic.direct.url, upstreamCa: basic.caPem! });
  t.teardown(() => elsewhere.stop());
  // Once the registry's challenge is known, requests carry credentials from the start.
  const creds = { keyrings: [keyring({ [basic.host]: alice })] };
  t.equal((await checkImage(engine(), `${basic.host}/private/app:1.0`, creds)).reason, 'available');
  const e = engine();
  await checkImage(e, `${basic.host}/private/other:1`, creds);
  basic.proxy!.resetLog();
  // The manifest moves to a host that needs no credentials; the password must not follow it there.
  basic.proxy!.fault(
    { kind: 'redirect', location: `${anon.url}/v2/demo/app/manifests/1.0`, status: 307 },
    { path: /\/manifests\// },
  );
  const v = await checkImage(e, `${basic.host}/private/app:1.0`, creds);
  t.ok(
    basic.proxy!.requests({ path: /\/manifests\// }).every((r) => r.authorization?.startsWith('Basic ')),
    'the registry itself got the credentials',
  );
  const arrived = anon.proxy!.requests({ path: /\/manifests\// });
  t.ok(arrived.length >= 1, 'the redirect was followed');
  t.equal(arrived.filter((r) => r.authorization).length, 0, 'no Authorization header crossed to the other host');
  t.equal(v.reason, 'available');
});

t.test('a token server that fails, hangs or answers garbage: a risk', async (t) => {
  const cases: [string, () => void, string][] = [
    ['fails', () => hub.tokenProxy!.fault(faults.serverError(500)), 'registry-error'],
    [
      'answers garbage',
      () =>
        hub.tokenProxy!.fault({
          kind: 'status',
          status: 200,
          headers: { 'content-type': 'application/json' },
          body: '{"token":',
        }),
      'registry-error',
    ],
    ['hangs', () => hub.tokenProxy!.fault({ kind: 'hang' }), 'timeout'],
  ];
  for (const [name, inject, reason] of cases) {
    hub.tokenProxy!.clearRules();
    inject();
    const v = await checkImage(
      engine({ deadline: reason === 'timeout' ? SHORT_DEADLINE : LONG_DEADLINE }),
      'nginx:1.24',
      {
        keyrings: [keyring({ 'docker.io': alice })],
      },
    );
    t.equal(v.reason, reason, name);
    t.equal(v.verdict, 'risk', name);
  }
});

t.test('405 on HEAD falls back to GET; a missing digest header is computed from the body', async (t) => {
  // only this test's requests (an earlier one redirected manifest GETs here)
  anon.proxy!.resetLog();
  anon.proxy!.fault({ kind: 'status', status: 405, body: '' }, { method: 'HEAD' });
  const e = engine();
  const v = await checkImage(e, `${anon.host}/demo/app:1.0`);
  t.equal(v.reason, 'available');
  t.equal(anon.proxy!.count({ method: 'GET', path: /\/manifests\/1\.0$/ }), 1, 'one GET after the 405');
  const expected = v.digest;
  anon.proxy!.clearRules();
  anon.proxy!.fault(
    {
      kind: 'handler',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
        res.end();
      },
    },
    { method: 'HEAD' },
  );
  const noDigest = await checkImage(engine(), `${anon.host}/demo/app:1.0`);
  t.equal(noDigest.reason, 'available');
  t.equal(noDigest.digest, expected, 'sha256 of the manifest body');
});

t.test('link-local and metadata addresses are refused unless configured', async (t) => {
  for (const image of ['169.254.169.254/latest/meta-data:1', '[fe80::1]:5000/x/y:1', 'metadata.test/x/y:1']) {
    const v = await checkImage(engine(), image);
    t.equal(v.reason, 'registry-unreachable', image);
    t.equal(v.verdict, 'risk');
    t.match(v.message, 'link-local or metadata', image);
  }
});
