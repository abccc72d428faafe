// The registry client on its own, against the real distribution registry: what a HEAD answers for
// a tag, a digest, a missing tag and a missing repository; index bodies verified against their
// digest; tag lists; and a Basic challenge answered up front once the host has sent it.
import t from 'tap';
import { RegistryClient } from '../../src/registry/client.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import type { PushedImage, PushedIndex } from '../helpers/images.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
let open: TestRegistry;
let priv: TestRegistry;
let plainToken: TestRegistry;
let image: PushedImage;
let index: PushedIndex;

t.before(async () => {
  [open, priv, plainToken] = await Promise.all([
    startRegistry({ auth: 'none' }),
    startRegistry({ auth: 'htpasswd', users: [alice], proxy: true }),
    // plain HTTP, with a token server on plain HTTP too
    startRegistry({ auth: 'token', users: [alice] }),
  ]);
  image = await open.pushImage('demo/app', '1.0', { platform: 'linux/amd64' });
  index = await open.pushIndex('demo/app', 'multi', ['linux/amd64', 'linux/arm64/v8']);
  await open.pushTags('demo/app', ['1.1', '2.0'], { platform: 'linux/amd64' });
  await priv.pushImage('team/secret', '1.0');
  await plainToken.pushImage('team/secret', '1.0');
});
t.teardown(() => Promise.all([open.stop(), priv.stop(), plainToken.stop()]));

function client(): RegistryClient {
  const c = new RegistryClient({
    insecure: [open.host, plainToken.host],
    caPems: [priv.caPem!],
    concurrency: 4,
    allowLinkLocal: [],
    requestTimeoutMs: 10_000,
  });
  t.teardown(() => c.close());
  return c;
}

const app = () => ({ domain: open.host, path: 'demo/app' });

t.test('a tag, a digest, a missing tag and a missing repository', async (t) => {
  const c = client();
  t.match((await c.resolve(app(), '1.0', null)).outcome, { kind: 'found', digest: image.digest });
  t.match((await c.resolve(app(), image.digest, null)).outcome, { kind: 'found', digest: image.digest });
  t.match((await c.resolve(app(), '9.9', null)).outcome, { kind: 'not-found' });
  const repo = await c.tags({ domain: open.host, path: 'demo/nope' }, null, 10);
  t.match(repo.outcome, { kind: 'not-found', code: 'NAME_UNKNOWN' }, 'the tag list tells a missing repository');
});

t.test('an index body is read by digest and checked against it', async (t) => {
  const c = client();
  const res = await c.manifest(app(), index.digest, null);
  t.match(res.outcome, { kind: 'found', digest: index.digest });
  const platforms = ((res.body?.json.manifests ?? []) as { platform: { architecture: string } }[]).map(
    (m) => m.platform.architecture,
  );
  t.same(platforms.sort(), ['amd64', 'arm64']);
  // The image manifest's body under the index's digest does not match it.
  const wrong = await c.manifest(app(), `sha256:${'0'.repeat(64)}`, null);
  t.not(wrong.outcome.kind, 'found');
});

t.test('tag lists', async (t) => {
  const c = client();
  const list = await c.tags(app(), null, 100);
  t.same([...(list.tags ?? [])].sort(), ['1.0', '1.1', '2.0', 'multi']);
});

t.test('Basic: unauthorized without credentials; with them the challenge is answered up front next time', async (t) => {
  const c = client();
  const target = { domain: priv.host, path: 'team/secret' };
  t.match((await c.resolve(target, '1.0', null)).outcome, { kind: 'unauthorized', noCredentials: true });
  t.match((await c.resolve(target, '1.0', alice)).outcome, { kind: 'found' });
  priv.proxy!.resetLog();
  t.match((await c.resolve(target, '1.0', alice)).outcome, { kind: 'found' });
  const sent = priv.proxy!.requests();
  t.equal(sent.length, 1, 'no 401 round trip once the challenge is known');
  t.match(sent[0]!.authorization, /^Basic /);
  t.match((await c.resolve(target, '1.0', { ...alice, password: 'wrong' })).outcome, { kind: 'unauthorized' });
});

t.test(
  'an insecure host found to speak plain HTTP may send its pull secret to its plain-HTTP token realm',
  async (t) => {
    // The first HEAD tries TLS and falls back to HTTP; the realm is then judged against the scheme
    // the registry is reached by now, not the https:// the question started with.
    const c = client();
    plainToken.resetCounters();
    const answer = await c.resolve({ domain: plainToken.host, path: 'team/secret' }, '1.0', alice);
    t.match(answer.outcome, { kind: 'found' }, answer.evidence.join('; '));
    t.same(
      plainToken.tokenServer!.log.map((r) => r.username),
      ['alice'],
      'one token asked, with the credential',
    );
  },
);

t.test('a tag list or catalog that is JSON but not an object is an error answer, not a crash', async (t) => {
  const c = client();
  const target = { domain: priv.host, path: 'team/secret' };
  for (const body of ['null', '[1,2]', '"tags"', '7']) {
    const rule = priv.proxy!.fault(
      { kind: 'status', status: 200, body, headers: { 'content-type': 'application/json' } },
      { path: /\/tags\/list|\/_catalog/ },
    );
    const tags = await c.tags(target, alice, 10);
    t.match(tags, { outcome: { kind: 'error', status: 200 } }, `tag list ${body}`);
    t.match(tags.evidence.at(-1), 'the tag list is not a JSON object');
    const catalog = await c.catalog(priv.host, alice, 10);
    t.match(catalog, { outcome: { kind: 'error', status: 200 } }, `catalog ${body}`);
    t.match(catalog.evidence.at(-1), 'the catalog is not a JSON object');
    rule.remove();
  }
});
