// The authenticator on its own, against a plain node:http token server that counts its requests:
// concurrent asks share one token request, tokens are reused until they expire and forgotten on
// demand, Basic challenges need credentials, and the OAuth2 POST falls back to GET.
import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Authenticator } from '../../src/registry/auth.ts';
import type { Challenge } from '../../src/registry/challenge.ts';
import { RegistryTransport } from '../../src/registry/transport.ts';

interface TokenRequest {
  method: string;
  authorization?: string;
  body: string;
}

async function tokenServer(answer: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const requests: TokenRequest[] = [];
  const s = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        body,
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      });
      answer(req, res, body);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => s.close(r)));
  const host = `127.0.0.1:${(s.address() as AddressInfo).port}`;
  const transport = new RegistryTransport({
    insecure: [host],
    caPems: [],
    concurrency: 8,
    allowLinkLocal: [],
    requestTimeoutMs: 10_000,
  });
  t.teardown(() => transport.close());
  const bearer: Challenge = { scheme: 'bearer', params: { realm: `http://${host}/token`, service: 'test' } };
  return { requests, auth: new Authenticator(transport), bearer };
}

const alice = { username: 'alice', password: 'alice-s3cret!' };
const scope = 'repository:demo/app:pull';
const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

t.test('concurrent asks share one token request; the token is reused, and asked again once forgotten', async (t) => {
  let n = 0;
  const { requests, auth, bearer } = await tokenServer((_req, res) =>
    setTimeout(() => json(res, 200, { token: `tok-${++n}`, expires_in: 300 }), 50),
  );
  const answers = await Promise.all([1, 2, 3].map(() => auth.authorize(bearer, scope, null)));
  t.same(answers, Array(3).fill({ ok: true, authorization: 'Bearer tok-1' }));
  t.equal(requests.length, 1, 'one token request for three asks');
  t.same(await auth.authorize(bearer, scope, null), { ok: true, authorization: 'Bearer tok-1' }, 'reused');
  t.equal(requests.length, 1);
  auth.forget(bearer, scope, null);
  t.same(await auth.authorize(bearer, scope, null), { ok: true, authorization: 'Bearer tok-2' });
  t.equal(requests.length, 2, 'forgotten: asked again');
  await auth.authorize(bearer, scope, alice);
  t.equal(requests.length, 3, 'another credential is another token');
});

t.test('a token that would expire within the safety margin is not kept', async (t) => {
  const { requests, auth, bearer } = await tokenServer((_req, res) =>
    json(res, 200, { token: 'short', expires_in: 5 }),
  );
  await auth.authorize(bearer, scope, null);
  await auth.authorize(bearer, scope, null);
  t.equal(requests.length, 2);
});

t.test('with credentials: the OAuth2 POST first, GET with Basic when the POST is not supported', async (t) => {
  const { requests, auth, bearer } = await tokenServer((req, res) =>
    req.method === 'POST' ? json(res, 404, {}) : json(res, 200, { access_token: 'from-get' }),
  );
  t.same(await auth.authorize(bearer, scope, alice), { ok: true, authorization: 'Bearer from-get' });
  t.same(
    requests.map((r) => r.method),
    ['POST', 'GET'],
  );
  t.match(requests[0]!.body, 'grant_type=password');
  t.equal(requests[1]!.authorization, `Basic ${Buffer.from('alice:alice-s3cret!').toString('base64')}`);
});

t.test('refused credentials, broken answers and Basic challenges', async (t) => {
  const refused = await tokenServer((_req, res) => json(res, 401, {}));
  t.match(await refused.auth.authorize(refused.bearer, scope, alice), { ok: false, failure: 'rejected', status: 401 });
  const broken = await tokenServer((_req, res) => res.end('<html>'));
  t.match(await broken.auth.authorize(broken.bearer, scope, null), { ok: false, failure: 'token-error' });
  const basic: Challenge = { scheme: 'basic', params: { realm: 'registry' } };
  t.match(await refused.auth.authorize(basic, scope, null), { ok: false, failure: 'no-credentials' });
  t.same(await refused.auth.authorize(basic, scope, alice), {
    ok: true,
    authorization: `Basic ${Buffer.from('alice:alice-s3cret!').toString('base64')}`,
  });
});
