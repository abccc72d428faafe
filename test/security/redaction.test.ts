// A registry that echoes the request in its error text (its Authorization header, a token, a
// password) must not get those into a finding: they are redacted from every text that leaves.
import t from 'tap';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { redact } from '../../src/text.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import { checkImage, keyring } from '../preflight/lib.ts';
import { registryClientFor } from '../../src/app/build.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
const basicOfAlice = Buffer.from(`${alice.username}:${alice.password}`).toString('base64');
let basic: TestRegistry;

t.before(async () => {
  basic = await startRegistry({ auth: 'htpasswd', users: [alice], proxy: true });
  await basic.pushImage('private/app', '1.0');
});
t.teardown(() => basic.stop());

t.test('an error body that echoes the Authorization header and the password: redacted in the finding', async (t) => {
  basic.proxy!.fault(
    {
      kind: 'handler',
      handle: (req, res) => {
        const body = JSON.stringify({
          errors: [
            {
              code: 'UNKNOWN',
              message: `bad request; headers: Authorization=${req.headers.authorization ?? '(none)'} user ${alice.username} pw ${alice.password}`,
            },
          ],
        });
        // HEAD: 405, so that the client asks again with GET and reads the body.
        res.writeHead(req.method === 'HEAD' ? 405 : req.headers.authorization ? 500 : 401, {
          'content-type': 'application/json',
          'www-authenticate': 'Basic realm="registry"',
          'content-length': Buffer.byteLength(body),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
    },
    { path: /\/manifests\// },
  );
  t.teardown(() => basic.proxy!.clearRules());
  const engine = new Preflight(
    validateConfig({ deadline: 3000 }),
    registryClientFor(validateConfig({ deadline: 3000 }), [basic.caPem!]),
  );
  t.teardown(() => engine.close());
  const v = await checkImage(engine, `${basic.host}/private/app:1.0`, { keyrings: [keyring({ [basic.host]: alice })] });
  t.equal(v.reason, 'registry-error');
  const text = JSON.stringify(v);
  t.ok(
    basic.proxy!.requests().some((r) => r.authorization === `Basic ${basicOfAlice}`),
    'the credentials were sent',
  );
  t.match(text, /registry says: UNKNOWN bad request/, 'the registry text is kept');
  t.notMatch(text, basicOfAlice, 'no base64 credential');
  t.notMatch(text, alice.password, 'no password');
  t.match(text, /\[redacted\]/);
});

t.test('what looks like a credential is redacted from any text', async (t) => {
  const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
  const cases = [
    `Authorization: Basic ${basicOfAlice}`,
    `authorization: bearer ${jwt}`,
    `token ${jwt}`,
    `the token was ${jwt}`,
    'password=hunter2&user=bob',
    '{"password": "hunter2"}',
    'access_token: abcdef123456',
  ];
  for (const text of cases) {
    const out = redact(text);
    t.notMatch(out, /hunter2|abcdef123456|c2lnbmF0dXJl/, text);
    t.notMatch(out, basicOfAlice, text);
    t.match(out, '[redacted]', text);
  }
  t.equal(
    redact('manifest unknown: tag 1.2 not found'),
    'manifest unknown: tag 1.2 not found',
    'ordinary text is kept',
  );
  t.equal(redact('pw is opensesame', ['opensesame']), 'pw is [redacted]', 'a given secret is redacted wherever it is');
});

t.test('a non-JWT token echoed without the word Bearer (raw and base64): redacted in the finding', async (t) => {
  const hub = await startRegistry({ auth: 'token', tls: true, users: [alice], proxy: true, proxyToken: true });
  t.teardown(() => hub.stop());
  // An opaque token, as many token servers issue: nothing about it looks like a credential.
  const token = `op4que${Date.now().toString(36)}Zq`;
  const token64 = Buffer.from(token).toString('base64');
  hub.tokenProxy!.fault({
    kind: 'handler',
    handle: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token, expires_in: 300 }));
    },
  });
  const challenge = `Bearer realm="${hub.tokenProxy!.url}/token",service="${hub.tokenServer!.service}"`;
  hub.proxy!.fault(
    {
      kind: 'handler',
      handle: (req, res) => {
        if (!req.headers.authorization) {
          res.writeHead(401, { 'www-authenticate': challenge, 'content-length': 0 });
          res.end();
          return;
        }
        const raw = req.headers.authorization.replace(/^Bearer /, '');
        const body = JSON.stringify({
          errors: [
            { code: 'UNKNOWN', message: `credential ${raw} not valid here (${Buffer.from(raw).toString('base64')})` },
          ],
        });
        // HEAD: 405, so that the client asks again with GET and reads the body.
        res.writeHead(req.method === 'HEAD' ? 405 : 500, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-echo': raw,
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
    },
    { path: /\/manifests\// },
  );
  const engine = new Preflight(
    validateConfig({ deadline: 3000 }),
    registryClientFor(validateConfig({ deadline: 3000 }), [hub.caPem!]),
  );
  t.teardown(() => engine.close());
  const v = await checkImage(engine, `${hub.host}/private/app:1.0`, { keyrings: [keyring({ [hub.host]: alice })] });
  t.equal(v.reason, 'registry-error');
  t.ok(
    hub.proxy!.requests().some((r) => r.authorization === `Bearer ${token}`),
    'the token was sent',
  );
  const text = JSON.stringify(v);
  t.match(text, /registry says: UNKNOWN credential \[redacted\] not valid here/, 'the registry text is kept');
  t.notMatch(text, token, 'no token');
  t.notMatch(text, token64, 'no base64 of the token');
});
