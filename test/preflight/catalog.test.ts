// "Did you mean" for a missing repository on a registry that lists its catalog (GET /v2/_catalog,
// which the CNCF registry serves): the nearest names from the first page only (a catalog can be
// huge), asked with the credential whose answer was "not found" and cached per credential; a
// registry that refuses the catalog to that credential gives no suggestion, and nothing breaks.
import t from 'tap';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { checkImage, engineFor, keyring } from './lib.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
const bob = { username: 'bob', password: 'bob-pa55' };
let open: TestRegistry;
let token: TestRegistry;

t.before(async () => {
  [open, token] = await Promise.all([
    startRegistry({ auth: 'none', proxy: true }),
    // alice may list the catalog, bob may not; both may pull everything
    startRegistry({ auth: 'token', users: [alice, bob], token: { catalogUsers: ['alice'] }, proxy: true }),
  ]);
  for (const repo of ['shop/web', 'shop/api', 'tools/report']) {
    await open.pushImage(repo, '1.0');
    await token.pushImage(repo, '1.0');
  }
  open.resetCounters();
  token.resetCounters();
});
t.teardown(async () => {
  await Promise.all([open.stop(), token.stop()]);
});

const catalogRequests = (r: TestRegistry) => r.proxy!.requests({ path: /^\/v2\/_catalog/ });

t.test('a registry that lists its catalog: the nearest repositories, in a message and as suggestions', async (t) => {
  const engine = engineFor({ registry: { insecure: [open.host] } });
  t.teardown(() => engine.close());
  const v = await checkImage(engine, `${open.host}/shop/wbe:1.0`);
  t.equal(v.reason, 'repository-not-found');
  t.same(v.suggestions, [`${open.host}/shop/web`]);
  t.equal(
    v.message,
    `image "${open.host}/shop/wbe:1.0": repository ${open.host}/shop/wbe does not exist on ${open.host}. Did you mean "${open.host}/shop/web"?`,
  );
  // Another missing repository on the same registry: the catalog is not asked again.
  const other = await checkImage(engine, `${open.host}/tools/reprot:2`);
  t.same(other.suggestions, [`${open.host}/tools/report`]);
  const asked = catalogRequests(open);
  t.equal(asked.length, 1, 'one catalog request for both, from the cache after the first');
  t.match(asked[0]!.url, /\?n=1000$/, 'one page of at most 1000 names');
});

t.test('one page only, of at most maxTagsForSuggestions names, whatever the Link header says', async (t) => {
  open.resetCounters();
  const engine = engineFor({ registry: { insecure: [open.host], maxTagsForSuggestions: 2 } });
  t.teardown(() => engine.close());
  const v = await checkImage(engine, `${open.host}/toolz/report:1`);
  t.equal(v.reason, 'repository-not-found');
  const asked = catalogRequests(open);
  t.equal(asked.length, 1, 'the next page is not followed');
  t.match(asked[0]!.url, /\?n=2$/);
  // The page held shop/api and shop/web (the catalog is sorted): tools/report was not on it.
  t.notOk(v.suggestions, 'nothing near on the first page: no suggestion');
});

t.test('asked with the credential that was used; refused to it: no suggestion, same verdict', async (t) => {
  const engine = engineFor({ registry: { insecure: [token.host] } });
  t.teardown(() => engine.close());
  const image = `${token.host}/shop/ap:1.0`;
  token.resetCounters();
  const asAlice = await checkImage(engine, image, { keyrings: [keyring({ [token.host]: alice })] });
  t.equal(asAlice.reason, 'repository-not-found');
  t.same(asAlice.suggestions, [`${token.host}/shop/api`]);
  const catalogTokens = () =>
    token.tokenServer!.log.filter((r) => r.scopes.some((s) => s.startsWith('registry:catalog:')));
  t.same(
    catalogTokens().map((r) => r.username),
    ['alice'],
    "the catalog token was asked with alice's credentials, the ones whose answer was not found",
  );

  const asBob = await checkImage(engine, image, { keyrings: [keyring({ [token.host]: bob }, 'secret shop/bob')] });
  t.equal(asBob.reason, 'repository-not-found', 'a refused catalog changes nothing else');
  t.notOk(asBob.suggestions, "bob may not list the catalog: alice's list is not shown to him");
  t.notMatch(asBob.message, 'Did you mean');
  t.same(
    catalogTokens().map((r) => r.username),
    ['alice', 'bob'],
    'bob asked for himself',
  );
  t.equal(catalogRequests(token).filter((r) => r.status === 200).length, 1, 'only alice was given a list');
});
