// Mirrors as containerd's hosts.toml gives them, against real registries on loopback. The image
// names' hosts (*.test) resolve nowhere: only the hosts directory leads to 127.0.0.1.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { RegistryClient } from '../../src/registry/client.ts';
import { HostsDir } from '../../src/registry/hosts-dir.ts';
import { HostsDirRoutes } from '../../src/registry/routes.ts';
import type { PushedImage } from '../helpers/images.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

let mirror: TestRegistry;
let upstream: TestRegistry;
let image: PushedImage;
let dir: string;
let deadPort: number;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

t.before(async () => {
  [mirror, upstream] = await Promise.all([startRegistry({ proxy: true }), startRegistry({ proxy: true })]);
  image = await mirror.pushImage('demo/app', '1.0');
  await upstream.pushImage('demo/app', '1.0');
  await upstream.pushImage('only/upstream', '1');
  await mirror.pushImage('dockerhub/library/app', '1.0');
  dir = mkdtempSync(join(tmpdir(), 'pg-mirrors-'));
  const write = (host: string, text: string) => {
    mkdirSync(join(dir, host));
    writeFileSync(join(dir, host, 'hosts.toml'), text);
  };
  write(
    'up.pgbar.test',
    `server = "${upstream.url}"\n\n[host."${mirror.url}"]\n  capabilities = ["pull", "resolve"]\n  [host."${mirror.url}".header]\n    x-pg-mirror = "yes"\n`,
  );
  write(
    'docker.io',
    `[host."${mirror.url}/v2/dockerhub"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n`,
  );
  // a pull-only mirror: never asked for a tag
  write('pull.pgbar.test', `server = "${upstream.url}"\n[host."${mirror.url}"]\n  capabilities = ["pull"]\n`);
  // a dead mirror (a port just freed: nothing listens), then the upstream
  deadPort = await freePort();
  write('dead.pgbar.test', `server = "${upstream.url}"\n[host."http://127.0.0.1:${deadPort}"]\n`);
  mirror.resetCounters();
  upstream.resetCounters();
});
t.teardown(async () => {
  rmSync(dir, { recursive: true, force: true });
  await Promise.all([mirror.stop(), upstream.stop()]);
});

function client(): RegistryClient {
  const c = new RegistryClient({
    routes: new HostsDirRoutes(new HostsDir(dir)),
    insecure: [],
    caPems: [],
    concurrency: 4,
    allowLinkLocal: [],
    requestTimeoutMs: 10_000,
  });
  t.teardown(() => c.close());
  return c;
}

const asked = (r: TestRegistry, part: string) => r.proxy!.log.filter((e) => e.url.includes(part));

t.test('mirror hit: the mirror answers, with ns= and its header; the upstream is not asked', async (t) => {
  const a = await client().resolve({ domain: 'up.pgbar.test', path: 'demo/app' }, '1.0', null);
  t.match(a.outcome, { kind: 'found', digest: image.digest });
  t.equal(a.servedBy, mirror.host);
  t.match(a.note, /^served by mirror 127\.0\.0\.1:\d+$/);
  const [req] = asked(mirror, '/v2/demo/app/manifests/1.0');
  t.equal(req?.url, '/v2/demo/app/manifests/1.0?ns=up.pgbar.test');
  t.equal(req?.headers['x-pg-mirror'], 'yes');
  t.equal(asked(upstream, 'demo/app').length, 0);
});

t.test('mirror miss: the upstream serves it, and the note says the mirror lacks it', async (t) => {
  const a = await client().resolve({ domain: 'up.pgbar.test', path: 'only/upstream' }, '1', null);
  t.match(a.outcome, { kind: 'found' });
  t.equal(a.servedBy, upstream.host);
  t.match(a.note, /served by upstream 127\.0\.0\.1:\d+; mirror 127\.0\.0\.1:\d+ did not have it/);
  t.match(a.evidence.join('\n'), /mirror 127\.0\.0\.1:\d+: HEAD \/v2\/only\/upstream\/manifests\/1 → 404/);
});

t.test('both miss: not found', async (t) => {
  const a = await client().resolve({ domain: 'up.pgbar.test', path: 'demo/app' }, 'nope', null);
  t.match(a.outcome, { kind: 'not-found' });
  t.equal(a.servedBy, undefined);
});

t.test('override_path: the path is the API root as written (a Harbor proxy-cache project)', async (t) => {
  const a = await client().resolve({ domain: 'docker.io', path: 'library/app' }, '1.0', null);
  t.match(a.outcome, { kind: 'found' });
  t.equal(a.servedBy, mirror.host);
  t.ok(asked(mirror, '/v2/dockerhub/library/app/manifests/1.0?ns=docker.io').length);
});

t.test('capabilities: a pull-only mirror is not asked for a tag, but is for a digest', async (t) => {
  const c = client();
  mirror.proxy!.resetLog();
  const byTag = await c.resolve({ domain: 'pull.pgbar.test', path: 'demo/app' }, '1.0', null);
  t.equal(byTag.servedBy, upstream.host);
  t.equal(asked(mirror, 'demo/app').length, 0, 'no tag request to the pull-only mirror');
  const byDigest = await c.resolve({ domain: 'pull.pgbar.test', path: 'demo/app' }, image.digest, null);
  t.equal(byDigest.servedBy, mirror.host);
});

t.test('a mirror that cannot be reached is passed over for the upstream', async (t) => {
  const a = await client().resolve({ domain: 'dead.pgbar.test', path: 'demo/app' }, '1.0', null);
  t.match(a.outcome, { kind: 'found' });
  t.equal(a.servedBy, upstream.host);
  t.match(a.evidence.join('\n'), new RegExp(`mirror 127\\.0\\.0\\.1:${deadPort}: cannot connect`));
});

t.test('a mirror answering 500 is passed over; when the upstream lacks the image the 500 is the answer', async (t) => {
  const rule = mirror.proxy!.fault({ kind: 'status', status: 500 });
  t.teardown(() => mirror.proxy!.clearRules());
  const hit = await client().resolve({ domain: 'up.pgbar.test', path: 'demo/app' }, '1.0', null);
  t.equal(hit.servedBy, upstream.host);
  const miss = await client().resolve({ domain: 'up.pgbar.test', path: 'demo/app' }, 'nope', null);
  t.match(miss.outcome, { kind: 'error', status: 500 }, "containerd's first error that is not a 404");
  t.ok(rule);
});

t.test('a TLS mirror trusted by its hosts.toml `ca` alone; skip_verify instead; neither: passed over', async (t) => {
  const tls = await startRegistry({ tls: true });
  t.teardown(() => tls.stop());
  await tls.pushImage('only/tls', '1');
  const root = mkdtempSync(join(tmpdir(), 'pg-mirrors-tls-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, 'ca.pem'), tls.caPem!);
  // one directory per case: a host's TLS settings are the first file's that names it
  const ask = async (name: string, settings: string) => {
    const d = join(root, name);
    mkdirSync(join(d, 'tls.pgbar.test'), { recursive: true });
    writeFileSync(
      join(d, 'tls.pgbar.test', 'hosts.toml'),
      `server = "${upstream.url}"\n[host."https://${tls.host}"]\n${settings}`,
    );
    const c = new RegistryClient({
      routes: new HostsDirRoutes(new HostsDir(d)),
      insecure: [],
      caPems: [],
      concurrency: 2,
      allowLinkLocal: [],
      requestTimeoutMs: 10_000,
    });
    t.teardown(() => c.close());
    return c.resolve({ domain: 'tls.pgbar.test', path: 'only/tls' }, '1', null);
  };
  const trusted = await ask('ca', `  ca = "${join(root, 'ca.pem')}"\n`);
  t.equal(trusted.servedBy, tls.host, 'trusted through its ca');
  const skipped = await ask('skip', '  skip_verify = true\n');
  t.equal(skipped.servedBy, tls.host, 'skip_verify');
  const untrusted = await ask('none', '');
  t.match(
    untrusted.outcome,
    { kind: 'unreachable' },
    'an untrusted certificate is the first failure; the upstream lacks the image',
  );
  t.match(untrusted.evidence.join('\n'), /mirror 127\.0\.0\.1:\d+: .*certificate/);
});
