// Proves the test registries, the token server, the push helpers and the fault proxy behave as the
// other tests assume, using plain undici (no project code), plus skopeo for interop.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch, request, type Dispatcher } from 'undici';
import { sharedPki } from './pki.ts';
import { startRegistry, type TestRegistry } from './registry.ts';
import { startFaultProxy, faults, type FaultProxy } from './fault-proxy.ts';
import { CONTAINERD_ACCEPT, MEDIA } from './images.ts';
import { waitFor } from './wait.ts';

const pki = await sharedPki();

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function call(
  url: string,
  o: { method?: Dispatcher.HttpMethod; headers?: Record<string, string>; dispatcher?: Dispatcher; body?: string } = {},
): Promise<Answer> {
  const res = await request(url, {
    method: o.method ?? 'GET',
    headers: o.headers ?? {},
    ...(o.body !== undefined ? { body: o.body } : {}),
    ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
const sha256 = (s: string | Buffer) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

function parseChallenge(h: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of String(h).matchAll(/(\w+)="([^"]*)"/g)) if (m[1]) out[m[1]] = m[2] ?? '';
  return out;
}

function jwtClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

function skopeo(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // An empty auth file so no credentials of the machine leak into the test.
  const env = { ...process.env, REGISTRY_AUTH_FILE: join(tmpdir(), `pullguard-no-auth-${process.pid}.json`) };
  return new Promise((resolve) => {
    execFile('skopeo', args, { env }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

// skopeo --cert-dir wants a folder of *.crt CA files (and *.cert/*.key client pairs).
function certDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-certdir-'));
  copyFileSync(pki.caFile, join(dir, 'ca.crt'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('anonymous HTTP registry', async (t) => {
  const reg = await startRegistry({ auth: 'none', proxy: true });
  t.teardown(() => reg.stop());
  t.match(reg.host, /^127\.0\.0\.1:\d+$/);
  t.equal(reg.url, `http://${reg.host}`);

  const img = await reg.pushImage('team/app', 'v1');
  t.equal(reg.proxy?.count(), 0, 'pushes go straight to the registry, not through the counting proxy');

  const head = await call(`${reg.url}/v2/team/app/manifests/v1`, {
    method: 'HEAD',
    headers: { accept: CONTAINERD_ACCEPT },
  });
  t.equal(head.status, 200);
  t.equal(head.headers['docker-content-digest'], img.digest);
  t.equal(head.headers['content-length'], String(img.size));
  t.equal(head.headers['content-type'], MEDIA.ociManifest);
  t.same(
    reg.proxy?.counts(),
    { 'HEAD /v2/team/app/manifests/v1': 1 },
    'exactly one manifest request, counted by the proxy',
  );

  const byDigest = await call(`${reg.url}/v2/team/app/manifests/${img.digest}`, {
    headers: { accept: MEDIA.ociManifest },
  });
  t.equal(byDigest.status, 200);
  t.equal(sha256(byDigest.text), img.digest, 'the body hashes to the digest');

  const missingTag = await call(`${reg.url}/v2/team/app/manifests/nope`, { headers: { accept: CONTAINERD_ACCEPT } });
  t.equal(missingTag.status, 404);
  t.match(missingTag.text, /MANIFEST_UNKNOWN/);

  const docker = await reg.pushImage('team/docker', 'v1', { format: 'docker', platform: 'linux/arm64/v8' });
  const dh = await call(`${reg.url}/v2/team/docker/manifests/v1`, {
    method: 'HEAD',
    headers: { accept: CONTAINERD_ACCEPT },
  });
  t.equal(dh.headers['content-type'], MEDIA.dockerManifest);
  t.equal(dh.headers['docker-content-digest'], docker.digest);

  const again = await reg.pushImage('other/app', 'v1');
  t.equal(again.digest, img.digest, 'content is deterministic');
});

t.test('OCI index and Docker manifest list', async (t) => {
  const reg = await startRegistry();
  t.teardown(() => reg.stop());
  const idx = await reg.pushIndex('team/multi', 'latest', ['linux/amd64', 'linux/arm64/v8']);
  t.equal(idx.manifests.length, 2);

  const got = await call(`${reg.url}/v2/team/multi/manifests/latest`, { headers: { accept: CONTAINERD_ACCEPT } });
  t.equal(got.status, 200);
  t.equal(got.headers['content-type'], MEDIA.ociIndex);
  t.equal(got.headers['docker-content-digest'], idx.digest);
  const body = JSON.parse(got.text) as { manifests: { digest: string; platform: Record<string, string> }[] };
  t.same(
    body.manifests.map((m) => m.platform),
    [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ],
  );
  const child = await call(`${reg.url}/v2/team/multi/manifests/${body.manifests[1]?.digest}`, {
    method: 'HEAD',
    headers: { accept: MEDIA.ociManifest },
  });
  t.equal(child.status, 200, 'children are reachable by digest');

  // distribution refuses an index to clients that do not accept indexes (docs/protocol.md, Registry protocol).
  const noIndex = await call(`${reg.url}/v2/team/multi/manifests/latest`, { headers: { accept: MEDIA.ociManifest } });
  t.equal(noIndex.status, 404);
  t.match(noIndex.text, /MANIFEST_UNKNOWN/);

  const list = await reg.pushIndex('team/list', '1', ['linux/amd64', 'linux/s390x'], { format: 'docker' });
  const lh = await call(`${reg.url}/v2/team/list/manifests/1`, {
    method: 'HEAD',
    headers: { accept: CONTAINERD_ACCEPT },
  });
  t.equal(lh.headers['content-type'], MEDIA.dockerList);
  t.equal(lh.headers['docker-content-digest'], list.digest);
});

t.test('tags/list and pagination', async (t) => {
  const reg = await startRegistry({ proxy: true });
  t.teardown(() => reg.stop());
  const tags = Array.from({ length: 23 }, (_, i) => `1.${String(i).padStart(2, '0')}`);
  await reg.pushTags('team/many', tags);

  // distribution 2.8 ignores n/last on tags/list (no Link, not even sorted): pinned so an upgrade shows up.
  const native = await call(`${reg.direct.url}/v2/team/many/tags/list?n=5`);
  t.equal(native.status, 200);
  t.equal(
    (JSON.parse(native.text) as { tags: string[] }).tags.length,
    23,
    'registry 2.8 returns every tag whatever n says',
  );
  t.equal(native.headers.link, undefined);

  // The proxy's paginate-tags action gives the distribution 3.x behaviour.
  reg.proxy?.fault(faults.paginateTags(), { path: /\/tags\/list/ });
  const seen: string[] = [];
  let next: string | undefined = `/v2/team/many/tags/list?n=5`;
  let pages = 0;
  while (next) {
    const page = await call(new URL(next, reg.url).toString());
    t.equal(page.status, 200);
    seen.push(...(JSON.parse(page.text) as { tags: string[] }).tags);
    const link = page.headers.link;
    next = typeof link === 'string' ? /<([^>]+)>;\s*rel="next"/.exec(link)?.[1] : undefined;
    pages++;
  }
  t.equal(pages, 5);
  t.same(seen, [...tags].sort());
  const zero = await call(`${reg.url}/v2/team/many/tags/list?n=0`);
  t.same(JSON.parse(zero.text), { name: 'team/many', tags: [] });
  t.equal(zero.headers.link, undefined);
  const unknown = await call(`${reg.url}/v2/team/none/tags/list?n=5`);
  t.equal(unknown.status, 404);
  t.match(unknown.text, /NAME_UNKNOWN/);
});

t.test('htpasswd over TLS', async (t) => {
  const alice = { username: 'alice', password: 's3cret' };
  const reg = await startRegistry({ auth: 'htpasswd', tls: true, users: [alice] });
  t.teardown(() => reg.stop());
  t.equal(reg.url, `https://${reg.host}`);
  t.equal(reg.caFile, pki.caFile);
  const img = await reg.pushImage('private/app', '1.0');
  const d = reg.dispatcher;

  const ping = await call(`${reg.url}/v2/`, { dispatcher: d });
  t.equal(ping.status, 401);
  t.match(ping.headers['www-authenticate'], /^Basic realm="pullguard-test"/);
  const anon = await call(`${reg.url}/v2/private/app/manifests/1.0`, {
    method: 'HEAD',
    dispatcher: d,
    headers: { accept: CONTAINERD_ACCEPT },
  });
  t.equal(anon.status, 401);
  const wrong = await call(`${reg.url}/v2/private/app/manifests/1.0`, {
    method: 'HEAD',
    dispatcher: d,
    headers: { accept: CONTAINERD_ACCEPT, authorization: basic('alice', 'nope') },
  });
  t.equal(wrong.status, 401);
  const ok = await call(`${reg.url}/v2/private/app/manifests/1.0`, {
    method: 'HEAD',
    dispatcher: d,
    headers: { accept: CONTAINERD_ACCEPT, authorization: basic(alice.username, alice.password) },
  });
  t.equal(ok.status, 200);
  t.equal(ok.headers['docker-content-digest'], img.digest);

  const untrusted = new Agent();
  t.teardown(() => untrusted.close());
  await t.rejects(
    call(`${reg.url}/v2/`, { dispatcher: untrusted }),
    { code: /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/ },
    'the test CA is not trusted by default',
  );
  const plain = await call(`http://${reg.host}/v2/`);
  t.equal(plain.status, 400, 'Go answers plain HTTP on a TLS port with 400');

  // Interop: skopeo (containers/image) reads the manifest. --tls-verify=false would also work but
  // proves less; --cert-dir makes it verify the chain against the test CA.
  const out = await skopeo([
    'inspect',
    '--raw',
    '--cert-dir',
    certDir(t),
    '--creds',
    `${alice.username}:${alice.password}`,
    `docker://${reg.host}/private/app:1.0`,
  ]);
  t.equal(out.code, 0, out.stderr);
  t.equal(sha256(out.stdout), img.digest, 'skopeo got the exact manifest bytes');
  const denied = await skopeo(['inspect', '--raw', '--cert-dir', certDir(t), `docker://${reg.host}/private/app:1.0`]);
  t.not(denied.code, 0, 'skopeo without credentials is refused');
});

t.test('token auth', async (t) => {
  const alice = { username: 'alice', password: 'a-pass' };
  const bob = { username: 'bob', password: 'b-pass' };
  const reg = await startRegistry({
    auth: 'token',
    users: [alice, bob],
    acl: { public: ['library/*'], pull: { alice: ['private/*'] } },
  });
  t.teardown(() => reg.stop());
  const ts = reg.tokenServer;
  if (!ts) throw new Error('no token server');
  const img = await reg.pushImage('private/app', '1.0');
  const pub = await reg.pushImage('library/nginx', '1.25', { seed: 'nginx' });
  reg.resetCounters();
  t.equal(ts.counts.total, 0);

  const manifest = `${reg.url}/v2/private/app/manifests/1.0`;
  const head = (auth?: string, url = manifest) =>
    call(url, { method: 'HEAD', headers: { accept: CONTAINERD_ACCEPT, ...(auth ? { authorization: auth } : {}) } });

  const challenge = await head();
  t.equal(challenge.status, 401);
  const ch = parseChallenge(challenge.headers['www-authenticate']);
  t.match(challenge.headers['www-authenticate'], /^Bearer /);
  t.equal(ch.realm, ts.realm);
  t.equal(ch.service, 'pullguard-test-registry');
  t.equal(ch.scope, 'repository:private/app:pull');

  const tokenUrl = (scope: string) =>
    `${ch.realm}?service=${encodeURIComponent(ch.service ?? '')}&scope=${encodeURIComponent(scope)}`;
  const getToken = async (scope: string, auth?: string) => {
    const r = await call(tokenUrl(scope), { headers: auth ? { authorization: auth } : {} });
    return { status: r.status, body: r.status === 200 ? (JSON.parse(r.text) as Record<string, unknown>) : {} };
  };

  // Alice: challenge -> token -> 200.
  const at = await getToken(ch.scope ?? '', basic(alice.username, alice.password));
  t.equal(at.status, 200);
  t.equal(at.body.token, at.body.access_token);
  t.equal(at.body.expires_in, 300);
  t.match(at.body.issued_at, /^\d{4}-\d\d-\d\dT/);
  const claims = jwtClaims(String(at.body.token));
  t.match(claims, {
    iss: 'pullguard-test-issuer',
    aud: 'pullguard-test-registry',
    sub: 'alice',
    access: [{ type: 'repository', name: 'private/app', actions: ['pull'] }],
  });
  const ok = await head(`Bearer ${String(at.body.token)}`);
  t.equal(ok.status, 200);
  t.equal(ok.headers['docker-content-digest'], img.digest);

  // Anonymous: a token with no access; the registry then refuses.
  const anon = await getToken(ch.scope ?? '');
  t.equal(anon.status, 200, 'missing access is not a token error');
  t.same(jwtClaims(String(anon.body.token)).access, []);
  const anonHead = await head(`Bearer ${String(anon.body.token)}`);
  t.equal(anonHead.status, 401);
  t.match(anonHead.headers['www-authenticate'], /error="insufficient_scope"/);

  // Bob is a valid user without access to private/*.
  const bt = await getToken(ch.scope ?? '', basic(bob.username, bob.password));
  t.same(jwtClaims(String(bt.body.token)).access, []);
  t.equal((await head(`Bearer ${String(bt.body.token)}`)).status, 401);

  // Bad credentials: 401 from the token server itself.
  t.equal((await getToken(ch.scope ?? '', basic('alice', 'wrong'))).status, 401);
  t.equal((await getToken(ch.scope ?? '', basic('mallory', 'x'))).status, 401);

  // Public repositories: anonymous pull works.
  const pubUrl = `${reg.url}/v2/library/nginx/manifests/1.25`;
  const pt = await getToken('repository:library/nginx:pull');
  const pubHead = await head(`Bearer ${String(pt.body.token)}`, pubUrl);
  t.equal(pubHead.status, 200);
  t.equal(pubHead.headers['docker-content-digest'], pub.digest);
  // Pull is granted, push is not, even when asked.
  t.same(jwtClaims(String((await getToken('repository:library/nginx:pull,push')).body.token)).access, [
    { type: 'repository', name: 'library/nginx', actions: ['pull'] },
  ]);

  // OAuth2 POST variant, with a refresh token.
  const post = (form: Record<string, string>) =>
    call(ts.realm, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  const pr = await post({
    grant_type: 'password',
    username: 'alice',
    password: 'a-pass',
    service: ch.service ?? '',
    client_id: 'pullguard',
    scope: ch.scope ?? '',
    access_type: 'offline',
  });
  t.equal(pr.status, 200);
  const pb = JSON.parse(pr.text) as Record<string, string>;
  t.ok(pb.refresh_token);
  t.equal(pb.scope, 'repository:private/app:pull');
  t.equal((await head(`Bearer ${pb.access_token}`)).status, 200);
  const rr = await post({
    grant_type: 'refresh_token',
    refresh_token: pb.refresh_token ?? '',
    service: ch.service ?? '',
    client_id: 'pullguard',
    scope: ch.scope ?? '',
  });
  t.equal(rr.status, 200);
  t.equal((await head(`Bearer ${(JSON.parse(rr.text) as Record<string, string>).access_token}`)).status, 200);
  t.equal(
    (await post({ grant_type: 'password', username: 'alice', password: 'bad', client_id: 'x', scope: ch.scope ?? '' }))
      .status,
    401,
  );
  t.equal(
    (await post({ grant_type: 'password', username: 'alice', password: 'a-pass', scope: ch.scope ?? '' })).status,
    400,
    'client_id is required',
  );

  // 7 GETs (2 with bad credentials) and 4 POSTs (1 bad password, 1 without client_id).
  t.match(ts.counts, { get: 7, post: 4, issued: 7, unauthorized: 3, rejected: 1, anonymous: 3 });
  t.equal(ts.counts.total, 11);
  t.equal(ts.counts.byUser.alice, 6);
  t.equal(ts.log.length, 11);
});

t.test('token auth over TLS, GCR-style POST refusal, skopeo interop', async (t) => {
  const alice = { username: 'alice', password: 'a-pass' };
  const reg = await startRegistry({ auth: 'token', tls: true, users: [alice], token: { oauthPost: false } });
  t.teardown(() => reg.stop());
  const ts = reg.tokenServer;
  if (!ts) throw new Error('no token server');
  t.match(ts.realm, /^https:\/\/127\.0\.0\.1:\d+\/token$/);
  const img = await reg.pushIndex('private/multi', 'v2', ['linux/amd64', 'linux/arm64/v8']);
  const post = await call(ts.realm, {
    method: 'POST',
    dispatcher: reg.dispatcher,
    body: 'grant_type=password&username=alice&password=a-pass&client_id=x',
  });
  t.equal(post.status, 404, 'POST refused as GCR did; clients fall back to GET');

  reg.resetCounters();
  const out = await skopeo([
    'inspect',
    '--raw',
    '--cert-dir',
    certDir(t),
    '--creds',
    'alice:a-pass',
    `docker://${reg.host}/private/multi:v2`,
  ]);
  t.equal(out.code, 0, out.stderr);
  t.equal(sha256(out.stdout), img.digest);
  t.ok(ts.counts.issued >= 1, `skopeo fetched ${ts.counts.issued} token(s)`);
});

t.test('token server behind its own fault proxy', async (t) => {
  const reg = await startRegistry({ auth: 'token', proxyToken: true, acl: { public: ['*'] } });
  t.teardown(() => reg.stop());
  await reg.pushImage('pub/app', '1');
  reg.resetCounters();
  const tp = reg.tokenProxy;
  if (!tp || !reg.tokenServer) throw new Error('no token proxy');
  const ch = parseChallenge(
    (await call(`${reg.url}/v2/pub/app/manifests/1`, { method: 'HEAD' })).headers['www-authenticate'],
  );
  t.equal(ch.realm, `${tp.url}/token`, 'the realm points at the proxy');
  tp.fault(faults.serverError(503), { path: '/token', times: 1 });
  const url = `${ch.realm}?service=${ch.service}&scope=repository:pub/app:pull`;
  t.equal((await call(url)).status, 503);
  const ok = await call(url);
  t.equal(ok.status, 200);
  const token = (JSON.parse(ok.text) as { token: string }).token;
  t.equal(
    (
      await call(`${reg.url}/v2/pub/app/manifests/1`, {
        method: 'HEAD',
        headers: { authorization: `Bearer ${token}`, accept: CONTAINERD_ACCEPT },
      })
    ).status,
    200,
  );
  t.equal(tp.count({ path: '/token' }), 2, 'the proxy saw both token requests');
  t.equal(reg.tokenServer.counts.total, 1, 'the token server only the one that passed');
});

t.test('fault proxy', async (t) => {
  const reg = await startRegistry();
  t.teardown(() => reg.stop());
  const img = await reg.pushImage('team/app', 'v1');
  const proxy = await startFaultProxy({ upstream: reg.direct.url });
  t.teardown(() => proxy.stop());
  const manifest = `${proxy.url}/v2/team/app/manifests/v1`;
  const accept = { accept: CONTAINERD_ACCEPT };

  t.test('pass-through and counting', async (t) => {
    proxy.resetLog();
    const h = await call(manifest, { method: 'HEAD', headers: accept });
    t.equal(h.status, 200);
    t.equal(h.headers['docker-content-digest'], img.digest);
    await call(manifest, { headers: accept });
    await call(`${proxy.url}/v2/`);
    t.same(proxy.counts(), { 'HEAD /v2/team/app/manifests/v1': 1, 'GET /v2/team/app/manifests/v1': 1, 'GET /v2/': 1 });
    t.equal(proxy.count({ method: 'HEAD', path: /\/manifests\// }), 1);
    t.equal(proxy.log[0]?.status, 200);
  });

  t.test('Docker Hub 401 for a missing repository', async (t) => {
    const rule = proxy.fault(faults.hubMissingRepo('library/ngiinx'), { path: /ngiinx/ });
    t.teardown(() => rule.remove());
    const r = await call(`${proxy.url}/v2/library/ngiinx/manifests/latest`, { headers: accept });
    t.equal(r.status, 401);
    t.equal(
      r.headers['www-authenticate'],
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ngiinx:pull",error="insufficient_scope"',
    );
    t.match(JSON.parse(r.text), { errors: [{ code: 'UNAUTHORIZED' }] });
    t.equal(rule.hits, 1);
    t.equal((await call(manifest, { method: 'HEAD', headers: accept })).status, 200, 'other paths pass');
  });

  t.test('429 with and without Retry-After, 5xx, malformed JSON', async (t) => {
    const cases: [ReturnType<typeof faults.serverError>, number, string | undefined][] = [
      [faults.tooManyRequests({ retryAfter: 7 }), 429, '7'],
      [faults.tooManyRequests(), 429, undefined],
      [faults.serverError(500), 500, undefined],
      [faults.serverError(502, 'bad gateway'), 502, undefined],
      [faults.serverError(503), 503, undefined],
    ];
    for (const [action, status, retryAfter] of cases) {
      const rule = proxy.fault(action, { times: 1 });
      const r = await call(manifest, { headers: accept });
      t.equal(r.status, status);
      t.equal(r.headers['retry-after'], retryAfter);
      t.equal(rule.hits, 1);
      rule.remove();
    }
    const r429 = proxy.fault(faults.tooManyRequests(), { times: 1 });
    t.match(JSON.parse((await call(manifest)).text), {
      errors: [{ code: 'TOOMANYREQUESTS', message: /pull rate limit/ }],
    });
    r429.remove();
    const bad = proxy.fault(faults.malformedJson(404), { times: 1 });
    const m = await call(manifest, { headers: accept });
    t.equal(m.status, 404);
    t.equal(m.headers['content-type'], 'application/json');
    t.throws(() => JSON.parse(m.text));
    bad.remove();
    // `times` lets a test model "fails once, then works" for retry logic.
    proxy.fault(faults.serverError(503), { times: 1 });
    t.equal((await call(manifest, { method: 'HEAD', headers: accept })).status, 503);
    t.equal((await call(manifest, { method: 'HEAD', headers: accept })).status, 200);
    proxy.clearRules();
  });

  t.test('rate-limit headers added to a real answer', async (t) => {
    const rule = proxy.fault(faults.rateLimitHeaders(3), { method: 'HEAD' });
    t.teardown(() => rule.remove());
    const r = await call(manifest, { method: 'HEAD', headers: accept });
    t.equal(r.status, 200);
    t.equal(r.headers['ratelimit-limit'], '100;w=21600');
    t.equal(r.headers['ratelimit-remaining'], '3;w=21600');
    t.equal(r.headers['docker-content-digest'], img.digest, 'the real headers are kept');
    t.equal((await call(manifest, { headers: accept })).headers['ratelimit-limit'], undefined, 'GET not matched');
  });

  t.test('hang before headers', async (t) => {
    const rule = proxy.fault({ kind: 'hang' }, { times: 1 });
    t.teardown(() => rule.remove());
    const started = Date.now();
    await t.rejects(request(manifest, { headers: accept, headersTimeout: 300 }), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    t.ok(Date.now() - started >= 250);
  });

  t.test('hang mid-body', async (t) => {
    const rule = proxy.fault({ kind: 'hang-body' }, { times: 1 });
    t.teardown(() => rule.remove());
    const res = await request(manifest, { headers: accept, bodyTimeout: 300 });
    t.equal(res.statusCode, 200, 'headers arrive');
    t.equal(res.headers['content-length'], String(img.size));
    await t.rejects(res.body.text(), { code: 'UND_ERR_BODY_TIMEOUT' });
  });

  t.test('slow trickle', async (t) => {
    const rule = proxy.fault({ kind: 'trickle', chunkBytes: 100, intervalMs: 20 }, { times: 1 });
    t.teardown(() => rule.remove());
    const started = Date.now();
    const r = await call(manifest, { headers: accept });
    const elapsed = Date.now() - started;
    t.equal(sha256(r.text), img.digest, 'the body arrives intact');
    t.ok(elapsed >= Math.floor(img.size / 100) * 20 * 0.8, `took ${elapsed} ms`);
  });

  t.test('delay', async (t) => {
    const rule = proxy.fault({ kind: 'delay', ms: 200 }, { times: 1 });
    t.teardown(() => rule.remove());
    const started = Date.now();
    t.equal((await call(manifest, { method: 'HEAD', headers: accept })).status, 200);
    t.ok(Date.now() - started >= 180);
  });

  t.test('connection reset', async (t) => {
    const rule = proxy.fault({ kind: 'reset' }, { times: 1 });
    t.teardown(() => rule.remove());
    await t.rejects(call(manifest, { method: 'HEAD', headers: accept }), { code: /ECONNRESET|UND_ERR_SOCKET/ });
    t.equal((await call(manifest, { method: 'HEAD', headers: accept })).status, 200, 'next connection is fine');
  });

  t.test('redirect to another host: what the other host received', async (t) => {
    const other = await startFaultProxy({ upstream: reg.direct.url });
    t.teardown(() => other.stop());
    const rule = proxy.fault({ kind: 'redirect', to: other.url }, { path: /\/manifests\// });
    t.teardown(() => rule.remove());
    const manual = await call(manifest, { headers: { ...accept, authorization: 'Bearer secret' } });
    t.equal(manual.status, 307);
    t.equal(manual.headers.location, `${other.url}/v2/team/app/manifests/v1`);
    t.equal(other.count(), 0);
    // A client following the redirect: fetch drops Authorization across origins; the log proves it.
    const followed = await fetch(manifest, { headers: { ...accept, authorization: 'Bearer secret' } });
    t.equal(followed.status, 200);
    t.equal(sha256(Buffer.from(await followed.arrayBuffer())), img.digest);
    t.equal(other.count(), 1);
    t.equal(other.log[0]?.authorization, undefined, 'credentials did not follow');
    t.equal(
      proxy.requests({ path: /\/manifests\// }).at(-1)?.authorization,
      'Bearer secret',
      'the first host got them',
    );
    // The recorder does see Authorization when a client sends it (so the check above means something).
    await call(`${other.url}/v2/`, { headers: { authorization: 'Bearer leaked' } });
    t.equal(other.log.at(-1)?.authorization, 'Bearer leaked');
  });

  t.test('custom handler and method matching', async (t) => {
    const rule = proxy.fault(
      { kind: 'handler', handle: (_req, res) => void res.writeHead(405, { 'content-length': '0' }).end() },
      { method: 'HEAD' },
    );
    t.teardown(() => rule.remove());
    t.equal((await call(manifest, { method: 'HEAD', headers: accept })).status, 405);
    t.equal((await call(manifest, { headers: accept })).status, 200);
  });

  t.test('TLS: right, wrong and expired certificates', async (t) => {
    const trusting = new Agent({ connect: { ca: pki.caPem } });
    t.teardown(() => trusting.close());
    const good = await startFaultProxy({
      upstream: reg.direct.url,
      tls: { cert: pki.server.certPem, key: pki.server.keyPem },
    });
    const wrong = await startFaultProxy({
      upstream: reg.direct.url,
      tls: { cert: pki.wrongServer.certPem, key: pki.wrongServer.keyPem },
    });
    const expired = await startFaultProxy({
      upstream: reg.direct.url,
      tls: { cert: pki.expiredServer.certPem, key: pki.expiredServer.keyPem },
    });
    t.teardown(() => Promise.all([good.stop(), wrong.stop(), expired.stop()]).then(() => undefined));
    const path = '/v2/team/app/manifests/v1';
    const ok = await call(`${good.url}${path}`, { method: 'HEAD', headers: accept, dispatcher: trusting });
    t.equal(ok.status, 200);
    t.equal(ok.headers['docker-content-digest'], img.digest);
    await t.rejects(call(`${wrong.url}${path}`, { dispatcher: trusting }), {
      code: /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/,
    });
    await t.rejects(call(`${expired.url}${path}`, { dispatcher: trusting }), { code: 'CERT_HAS_EXPIRED' });
    const viaIpv6 = await call(`https://[::1]:${good.port}${path}`, {
      method: 'HEAD',
      headers: accept,
      dispatcher: trusting,
    }).catch((e: Error & { code?: string }) => e);
    // The proxy listens on 127.0.0.1 only: ::1 is refused, but never by a certificate error.
    t.ok(!(viaIpv6 instanceof Error) || viaIpv6.code === 'ECONNREFUSED', 'the certificate covers ::1 too');
    // Only a machine without IPv6 loopback leaves this out; where ::1 exists, a failure fails.
    const hasV6 = Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address === '::1'));
    const v6 = hasV6
      ? await startFaultProxy({
          upstream: reg.direct.url,
          listen: '::1',
          tls: { cert: pki.server.certPem, key: pki.server.keyPem },
        })
      : undefined;
    if (v6) {
      t.teardown(() => v6.stop());
      t.equal(
        (await call(`${v6.url}${path}`, { method: 'HEAD', headers: accept, dispatcher: trusting })).status,
        200,
        'TLS on [::1] with the same certificate',
      );
    } else {
      t.comment('no IPv6 loopback here; [::1] check skipped');
    }
  });

  t.test('stop() ends hung connections', async (t) => {
    const p = await startFaultProxy({ upstream: reg.direct.url, rules: [{ action: { kind: 'hang' } }] });
    // No timeout on the client side: if stop() waited for the hung request it would never return.
    const hung = request(`${p.url}/v2/`, { headersTimeout: 0 });
    hung.catch(() => undefined);
    await waitFor(() => p.count() > 0, { what: 'the request to reach the proxy' });
    t.equal(p.count(), 1, 'the request reached the proxy, which never answers it');
    await p.stop();
    await t.rejects(hung, 'stop() ended the hung request instead of waiting for it');
  });
});

t.test('stop() kills the registry and removes its files', async (t) => {
  const reg: TestRegistry = await startRegistry({ auth: 'token', proxy: true });
  t.ok(existsSync(reg.logFile));
  t.match(reg.logTail(), /listening on 127\.0\.0\.1/);
  await reg.stop();
  t.throws(() => process.kill(reg.pid, 0), { code: 'ESRCH' }, 'process is gone');
  t.notOk(existsSync(reg.dir), 'temp dir removed');
  await t.rejects(call(`${reg.direct.url}/v2/`), 'port closed');
  const p: FaultProxy | undefined = reg.proxy;
  await t.rejects(call(`${p?.url ?? 'http://127.0.0.1:1'}/v2/`), 'proxy closed');
});
