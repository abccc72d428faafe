// The engine with the kubelet's credential rules against real registries: TLS with htpasswd (Basic)
// and token auth. Every matching credential is tried in order, anonymous only when none matches,
// and an answer obtained with one tenant's credentials is never served to another.
import t from 'tap';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { checkImage, engineFor, keyring } from './lib.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
const bob = { username: 'bob', password: 'bob-pa55' };
let basic: TestRegistry;
let token: TestRegistry;

t.before(async () => {
  [basic, token] = await Promise.all([
    startRegistry({ auth: 'htpasswd', users: [alice], proxy: true }),
    startRegistry({
      auth: 'token',
      tls: true,
      users: [alice, bob],
      acl: { public: ['public/*'], pull: { alice: ['private/*', 'public/*'], bob: ['public/*'] } },
      proxy: true,
    }),
  ]);
  await basic.pushImage('private/app', '1.0');
  await token.pushImage('private/app', '1.0');
  await token.pushImage('private/app', '1.1', { seed: 'b' });
  await token.pushImage('public/app', '1.0');
  basic.resetCounters();
  token.resetCounters();
});
t.teardown(async () => {
  await Promise.all([basic.stop(), token.stop()]);
});

const engine = () => engineFor({}, [basic.caPem!, token.caPem!]);

t.test('basic auth: without credentials access is denied and the message says what is missing', async (t) => {
  const v = await checkImage(engine(), `${basic.host}/private/app:1.0`, { scope: 'namespace "shop"' });
  t.equal(v.reason, 'access-denied');
  t.equal(v.verdict, 'fail');
  t.match(v.message, `no imagePullSecret in namespace "shop" matches ${basic.host}`);
  t.match(v.message, 'asks for a username and password');
  t.match(v.hint, `add an imagePullSecret for ${basic.host} to the pod or its ServiceAccount`);
});

t.test('basic auth: the right credentials open it, wrong ones are named', async (t) => {
  const ok = await checkImage(engine(), `${basic.host}/private/app:1.0`, {
    keyrings: [keyring({ [basic.host]: alice })],
  });
  t.equal(ok.reason, 'available');
  const wrong = await checkImage(engine(), `${basic.host}/private/app:1.0`, {
    keyrings: [keyring({ [basic.host]: { username: 'alice', password: 'nope' } }, 'secret shop/stale')],
  });
  t.equal(wrong.reason, 'access-denied');
  t.match(wrong.message, 'secret shop/stale');
});

t.test('TLS is verified: without the test CA the registry is unreachable (a risk, not a denial)', async (t) => {
  const v = await checkImage(engineFor({}), `${basic.host}/private/app:1.0`, {
    keyrings: [keyring({ [basic.host]: alice })],
  });
  t.equal(v.reason, 'registry-unreachable');
  t.equal(v.verdict, 'risk');
  t.match(v.message, /TLS/);
  const insecure = await checkImage(
    engineFor({ registry: { insecure: [basic.host] } }),
    `${basic.host}/private/app:1.0`,
    { keyrings: [keyring({ [basic.host]: alice })] },
  );
  t.equal(insecure.reason, 'available', 'an insecure registry skips verification');
});

t.test('token auth: anonymous is denied a private repository, allowed a public one', async (t) => {
  const e = engine();
  const priv = await checkImage(e, `${token.host}/private/app:1.0`);
  t.equal(priv.reason, 'access-denied');
  const pub = await checkImage(e, `${token.host}/public/app:1.0`);
  t.equal(pub.reason, 'available');
});

t.test('token auth: credentials through the token server, and a refused password', async (t) => {
  const ok = await checkImage(engine(), `${token.host}/private/app:1.0`, {
    keyrings: [keyring({ [token.host]: alice })],
  });
  t.equal(ok.reason, 'available');
  const refused = await checkImage(engine(), `${token.host}/private/app:1.0`, {
    keyrings: [keyring({ [token.host]: { ...alice, password: 'wrong' } }, 'secret shop/old')],
  });
  t.equal(refused.reason, 'access-denied');
  t.match(refused.message, 'the credentials from secret shop/old were refused');
  t.match(refused.hint, 'renew the credentials in secret shop/old');
  const noScope = await checkImage(engine(), `${token.host}/private/app:1.0`, {
    keyrings: [keyring({ [token.host]: bob }, 'secret shop/bob')],
  });
  t.equal(noScope.reason, 'access-denied');
  t.match(noScope.message, 'do not grant pull access');
});

t.test('kubelet rule: no anonymous fallback once a credential matched', async (t) => {
  const v = await checkImage(engine(), `${token.host}/public/app:1.0`, {
    keyrings: [keyring({ [token.host]: { ...alice, password: 'wrong' } })],
  });
  t.equal(v.reason, 'access-denied', 'a wrong secret breaks even a public image, as on the node');
});

t.test('kubelet rule: every matching credential in order, first success wins', async (t) => {
  const pod = keyring({ [`${token.host}/private`]: { ...alice, password: 'wrong' } }, 'secret shop/first');
  const node = keyring({ [token.host]: alice }, 'file /var/lib/kubelet/config.json');
  const e = engine();
  token.resetCounters();
  const v = await checkImage(e, `${token.host}/private/app:1.1`, { keyrings: [pod, node] });
  t.equal(v.reason, 'available', 'the node credential after the failing pod secret');
  t.ok(
    v.evidence.some((line) => line.startsWith('[secret shop/first]')),
    'evidence says which credential was tried',
  );
  t.ok(
    v.evidence.every((line) => !line.includes(alice.password)),
    'never the secret',
  );
});

t.test('tenant isolation: a private answer is never served to a pod with other credentials', async (t) => {
  const e = engine();
  const withCreds = await checkImage(e, `${token.host}/private/app:1.0`, {
    keyrings: [keyring({ [token.host]: alice })],
  });
  t.equal(withCreds.reason, 'available');
  const anonymous = await checkImage(e, `${token.host}/private/app:1.0`);
  t.equal(anonymous.reason, 'access-denied', 'the namespace without credentials learns nothing from the cache');
  const other = await checkImage(e, `${token.host}/private/app:1.0`, { keyrings: [keyring({ [token.host]: bob })] });
  t.equal(other.reason, 'access-denied');
  const again = await checkImage(e, `${token.host}/private/app:1.0`, {
    keyrings: [keyring({ [token.host]: alice }, 'secret other/same-creds')],
  });
  t.equal(again.reason, 'available', 'the same credentials from elsewhere may use the answer');
});

t.test('token reuse: a second image of the same repository costs no token and no 401', async (t) => {
  const e = engine();
  const creds = { keyrings: [keyring({ [token.host]: alice })] };
  token.resetCounters();
  await checkImage(e, `${token.host}/private/app:1.0`, creds);
  // the 401, the tag's HEAD with the token, the manifest by digest, its config and its layer
  const cold = { registry: token.proxy!.count(), tokens: token.tokenServer!.counts.total };
  t.ok(cold.registry + cold.tokens <= 6, `cold: ${cold.registry} registry + ${cold.tokens} token requests`);
  token.resetCounters();
  await checkImage(e, `${token.host}/private/app:1.1`, creds);
  t.equal(token.proxy!.count({ method: 'HEAD', path: /\/manifests\// }), 1, 'one HEAD of the tag');
  t.equal(token.proxy!.count(), 4, 'and the manifest, config and layer, each once, none refused first');
  t.equal(token.tokenServer!.counts.total, 0, 'no token request');
});

t.test('a Basic challenge with the OAuth2 POST refused falls back to GET (GCR, JFrog, ACR)', async (t) => {
  const noPost = await startRegistry({ auth: 'token', tls: true, users: [alice], token: { oauthPost: false } });
  t.teardown(() => noPost.stop());
  await noPost.pushImage('private/app', '1.0');
  const v = await checkImage(engineFor({}, [noPost.caPem!]), `${noPost.host}/private/app:1.0`, {
    keyrings: [keyring({ [noPost.host]: alice })],
  });
  t.equal(v.reason, 'available');
});
