// Registries behind a real HTTP proxy (tinyproxy on loopback). The registries' host name resolves only
// inside the proxy, so a check that answers at all went through it; tinyproxy's log shows how.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCheck } from '../../src/cli/check.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { PROXY_ONLY_HOST, proxyAvailable, startProxy, type TestProxy } from '../helpers/http-proxy.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { runInProcess, runProcess } from '../helpers/cli.ts';
import { podReview, serve } from '../server/lib.ts';

const unavailable = proxyAvailable();
if (unavailable) throw new Error(unavailable);

const carol = { username: 'carol', password: 'carol-Reg1stry-pw' };
const dave = { username: 'dave', password: 'dave-Htpass-pw' };
const proxyUser = { username: 'proxyuser', password: 'Pr0xy-Secret-42' };
let token: TestRegistry;
let basic: TestRegistry;
let plain: TestRegistry;
let open: TestProxy;
let authed: TestProxy;
let strict: TestProxy;
let dir: string;
const nameOf = (r: TestRegistry) => `${PROXY_ONLY_HOST}:${r.direct.host.split(':')[1]}`;
const b64 = (u: { username: string; password: string }) =>
  Buffer.from(`${u.username}:${u.password}`).toString('base64');
const secrets = [carol.password, dave.password, proxyUser.password, b64(carol), b64(dave), b64(proxyUser)];

t.before(async () => {
  [token, basic, plain, open, authed, strict] = await Promise.all([
    startRegistry({ auth: 'token', tls: true, users: [carol], extraNames: [PROXY_ONLY_HOST] }),
    startRegistry({ auth: 'htpasswd', users: [dave], extraNames: [PROXY_ONLY_HOST] }),
    startRegistry({ auth: 'none' }),
    startProxy(),
    startProxy({ auth: proxyUser }),
    startProxy({ connectPorts: [443] }),
  ]);
  await Promise.all([
    token.pushImage('team/app', '1.0'),
    basic.pushImage('team/secret', '1.0'),
    plain.pushImage('demo/app', '1.0'),
  ]);
  await token.pushTags(
    'team/app',
    Array.from({ length: 20 }, (_, i) => `t${i}`),
  );
  dir = mkdtempSync(join(tmpdir(), 'pullguard-proxy-'));
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({ auths: { [nameOf(token)]: { auth: b64(carol) }, [nameOf(basic)]: { auth: b64(dave) } } }),
  );
  writeFileSync(join(dir, 'ca.pem'), token.caPem!);
});
t.teardown(async () => {
  await Promise.all([token, basic, plain, open, authed, strict].map((x) => x?.stop()));
  rmSync(dir, { recursive: true, force: true });
});

const common = () => ['--docker-config', join(dir, 'config.json'), '--registry-ca', join(dir, 'ca.pem'), '-o', 'json'];

/** The real command, as a person or CI runs it. */
async function cli(args: string[], env: Record<string, string>) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$/i.test(k)));
  const out = await runProcess(['check', ...args, ...common()], { env: { ...clean, NO_COLOR: '1', ...env } });
  return { ...out, findings: (JSON.parse(out.stdout) as { findings: Record<string, any>[] }).findings };
}

/** The same command in this process (a process per case costs seconds on a loaded machine). */
async function check(args: string[], env: Record<string, string>) {
  const out = await runInProcess(runCheck, [...args, ...common()], { env });
  return { ...out, findings: (JSON.parse(out.stdout) as { findings: Record<string, any>[] }).findings };
}

function noSecrets(t: { notOk: (v: unknown, m: string) => void }, text: string, where: string) {
  for (const s of secrets) t.notOk(text.includes(s), `no credential in ${where}`);
}

t.test('must show: a check through tinyproxy reaches the registries; the log shows the CONNECT', async (t) => {
  const images = [`${nameOf(token)}/team/app:1.0`, `${nameOf(basic)}/team/secret:1.0`];
  const r = await cli(images, { HTTPS_PROXY: open.url });
  t.same(
    r.findings.map((f) => [f.reason, f.verdict]),
    [
      ['available', 'ok'],
      ['available', 'ok'],
    ],
    r.stdout,
  );
  t.match(r.findings[0]!.evidence.join('\n'), `via proxy ${open.url}`, 'the evidence says the proxy was used');
  t.ok(open.requests().includes(`CONNECT ${nameOf(token)} HTTP/1.1`), open.requests().join('\n'));
  t.ok(open.requests().includes(`CONNECT ${nameOf(basic)} HTTP/1.1`));
  noSecrets(t, r.stdout + r.stderr, 'the output');
  noSecrets(t, open.log(), "the proxy's log");

  const direct = await check([images[0]!], {});
  t.equal(direct.findings[0]!.reason, 'registry-unreachable', 'without the proxy the name does not resolve');
});

t.test('must show: with proxy authentication, and a refusal that names the proxy without its password', async (t) => {
  const image = `${nameOf(token)}/team/app:1.0`;
  const ok = await check([image, '--timeout', '20s'], { https_proxy: authed.authUrl });
  t.equal(ok.findings[0]!.reason, 'available', ok.stdout);
  t.ok(authed.requests().includes(`CONNECT ${nameOf(token)} HTTP/1.1`));
  noSecrets(t, ok.stdout + ok.stderr, 'the output');
  noSecrets(t, authed.log(), "the proxy's log");

  const wrong = `http://${proxyUser.username}:not-the-Pr0xy-pw@127.0.0.1:${authed.port}`;
  const refused = await check([image], { HTTPS_PROXY: wrong });
  const f = refused.findings[0]!;
  t.same([f.verdict, f.reason], ['risk', 'registry-unreachable']);
  // tinyproxy answers a CONNECT with wrong credentials 401 (407 when none are given)
  t.match(f.message, `the proxy ${authed.url} refused the request to ${nameOf(token)} (HTTP 401`);
  const none = await check([image], { HTTPS_PROXY: authed.url });
  t.match(none.findings[0]!.message, `(HTTP 407, proxy authentication required)`);
  t.notOk((refused.stdout + refused.stderr).includes('not-the-Pr0xy-pw'), 'the wrong password is not printed');
  t.equal(refused.code, 3, 'a refusing proxy is a risk: not verified (exit 3), not a failure');
});

t.test('NO_PROXY is honoured, and loopback registries never go through the proxy', async (t) => {
  const before = open.requests().length;
  const images = [`${nameOf(token)}/team/app:1.0`, `${plain.direct.host}/demo/app:1.0`];
  const r = await check([...images, '--insecure-registry', plain.direct.host], {
    HTTPS_PROXY: open.url,
    NO_PROXY: 'example.org, .pullguard.test',
  });
  t.equal(r.findings[0]!.reason, 'registry-unreachable', 'exempt: asked directly, where the name does not resolve');
  t.match(r.findings[0]!.message, /does not resolve/);
  t.equal(r.findings[1]!.reason, 'available', 'the loopback address is reached directly');
  t.notMatch(r.findings[1]!.evidence.join('\n'), 'via proxy');
  t.equal(open.requests().length, before, 'the proxy saw nothing');
});

t.test('plain-HTTP registries go through the absolute-URI form', async (t) => {
  const image = `${nameOf(plain)}/demo/app:1.0`;
  // An insecure registry is tried over TLS first (through the tunnel), then over plain HTTP.
  const r = await check([image, '--insecure-registry', nameOf(plain)], { HTTP_PROXY: open.url, HTTPS_PROXY: open.url });
  t.equal(r.findings[0]!.reason, 'available', r.stdout);
  t.ok(
    open.requests().some((l) => l.startsWith(`HEAD http://${nameOf(plain)}/v2/demo/app/manifests/1.0 `)),
    open.requests().join('\n'),
  );
});

t.test(
  'an insecure registry behind a proxy that refuses CONNECT to its port: plain HTTP through the proxy, said so',
  async (t) => {
    const image = `${nameOf(plain)}/demo/app:1.0`;
    const env = { HTTP_PROXY: strict.url, HTTPS_PROXY: strict.url };
    const r = await check([image, '--insecure-registry', nameOf(plain)], env);
    t.equal(r.findings[0]!.reason, 'available', r.stdout);
    const lines = strict.requests();
    t.ok(
      lines.some((l) => l.startsWith(`CONNECT ${nameOf(plain)} `)),
      'the tunnel was asked for first',
    );
    t.ok(
      lines.some((l) => l.startsWith(`HEAD http://${nameOf(plain)}/v2/demo/app/manifests/1.0 `)),
      lines.join('\n'),
    );
    t.match(
      (r.findings[0]!.evidence as string[]).join('\n'),
      /refused CONNECT.*plain HTTP through it/,
      'the evidence says the proxy refused the tunnel and plain HTTP was used',
    );
    // not insecure: the refusal is the answer, with the proxy named
    const secure = await check([image], env);
    t.equal(secure.findings[0]!.reason, 'registry-unreachable', secure.stdout);
    t.match(secure.findings[0]!.message, /proxy/);
  },
);

t.test('connection reuse and the concurrency cap hold through the proxy', async (t) => {
  const tags = Array.from({ length: 20 }, (_, i) => `t${i}`);
  const connects = () => open.requests().filter((l) => l.startsWith(`CONNECT ${nameOf(token)} `)).length;
  const cred = { username: carol.username, password: carol.password, source: 'test', key: nameOf(token) };
  const client = new RegistryClient({
    insecure: [],
    caPems: [token.caPem!],
    concurrency: 2,
    allowLinkLocal: [],
    requestTimeoutMs: 20_000,
    proxy: { httpProxy: '', httpsProxy: open.url, noProxy: '' },
  });
  try {
    // Tunnels are connections: the pool opens at most the cap (2) and keeps reusing them, one after
    // another and all at once alike.
    const before = connects();
    const resolve = (tag: string) => client.resolve({ domain: nameOf(token), path: 'team/app' }, tag, cred);
    const sequential = [];
    for (const tag of tags) sequential.push(await resolve(tag));
    const parallel = await Promise.all(tags.map(resolve));
    t.ok([...sequential, ...parallel].every((a) => a.outcome.kind === 'found'));
    const opened = connects() - before;
    t.comment(`${opened} tunnels (CONNECTs) for ${tags.length * 2} HEADs, concurrency cap 2`);
    t.ok(opened >= 1 && opened <= 2, `${opened} tunnels for ${tags.length * 2} HEADs: at most the cap`);
  } finally {
    await client.close();
  }
});

t.test('the link-local guard decides on the image host before the proxy is asked', async (t) => {
  const before = open.requests().length;
  const client = new RegistryClient({
    insecure: [],
    caPems: [],
    concurrency: 2,
    allowLinkLocal: [],
    requestTimeoutMs: 5_000,
    proxy: { httpProxy: open.url, httpsProxy: open.url, noProxy: '' },
    // This name resolves, here, to the cloud metadata address; the proxy would resolve it its own way.
    lookup: (_host, _o, cb) => cb(null, [{ address: '169.254.169.254', family: 4 }]),
  });
  try {
    for (const domain of ['metadata.pullguard.test', '169.254.169.254']) {
      const a = await client.resolve({ domain, path: 'x/y' }, '1', null);
      t.same(a.outcome, { kind: 'unreachable', transport: 'forbidden-address' }, domain);
    }
  } finally {
    await client.close();
  }
  t.equal(open.requests().length, before, 'the proxy was never asked');
});

t.test(
  'serve: registry.proxy wins over the environment; metrics say a proxy was used, without credentials',
  async (t) => {
    const server = await serve(null, {
      registry: { caFiles: [token.caFile!], proxy: { url: authed.authUrl } },
      credentials: { nodeDockerConfigs: [join(dir, 'config.json')] },
    });
    try {
      const image = `${nameOf(token)}/team/app:1.0`;
      const review = podReview({ plain, secure: basic, appDigest: '' }, [{ name: 'app', image }]);
      const response = await server.review(review);
      t.equal(response.allowed, true);
      t.notOk(response.warnings?.length, JSON.stringify(response.warnings));
      const metrics = await server.get('/metrics');
      t.match(
        metrics.text,
        `pullguard_registry_proxied_requests_total{registry="${nameOf(token)}",proxy="${authed.url}",status="200"}`,
      );
      noSecrets(t, metrics.text, 'the metrics');
      noSecrets(t, server.log.text(), 'the log');
    } finally {
      await server.close();
    }
  },
);
