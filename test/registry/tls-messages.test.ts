// A TLS failure is said in words with the fix for its kind: plain HTTP where TLS was expected, a CA
// nobody told pullguard about, a self-signed or expired certificate, one for other names, a TLS
// version the registry does not offer. Never OpenSSL's internals ("40A3…:error:0A00010B:SSL
// routines:…:../deps/openssl/…") nor Node's advice to run Node.js with --use-system-ca, and the fix
// names the face's own setting: --insecure-registry / --registry-ca in `check`,
// registry.insecure / registry.caFiles in the webhook. Real registries, real TLS servers, loopback.
import t from 'tap';
import { createServer, type Server } from 'node:tls';
import { runCheck } from '../../src/cli/check.ts';
import type { Finding } from '../../src/findings.ts';
import { runInProcess } from '../helpers/cli.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { sharedPki, type TestPki } from '../helpers/pki.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { checkImage, engineFor } from '../preflight/lib.ts';
import { podReview, serve } from '../server/lib.ts';

/** OpenSSL's error lines, source paths and library names; Node's advice about its own flags. */
const INTERNALS = /:error:|openssl|deps\/|SSL routines|use-system-ca|0A0[0-9A-F]{5}/i;

let pki: TestPki;
let plain: TestRegistry;
let secure: TestRegistry;
const proxies: FaultProxy[] = [];
const servers: Server[] = [];
/** name -> host:port of a TLS endpoint that fails in that way */
const endpoints = new Map<string, string>();

async function tlsServer(options: Parameters<typeof createServer>[0]): Promise<string> {
  const server = createServer({ cert: pki.server.certPem, key: pki.server.keyPem, ...options }, (socket) =>
    socket.on('error', () => undefined),
  );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return `127.0.0.1:${(server.address() as { port: number }).port}`;
}

t.before(async () => {
  pki = await sharedPki();
  [plain, secure] = await Promise.all([startRegistry({ auth: 'none' }), startRegistry({ auth: 'none', tls: true })]);
  await secure.pushImage('demo/app', '1.0', { platform: 'linux/amd64' });
  const selfSigned = await pki.issue('self-signed', { selfSigned: true });
  const otherName = await pki.issue('other-name', { names: ['registry.other.test'] });
  const certs = {
    'other CA': pki.wrongServer,
    expired: pki.expiredServer,
    'self-signed': selfSigned,
    'other name': otherName,
  };
  for (const [name, cert] of Object.entries(certs)) {
    const proxy = await startFaultProxy({
      upstream: secure.direct.url,
      upstreamCa: secure.caPem!,
      tls: { cert: cert.certPem, key: cert.keyPem },
    });
    proxies.push(proxy);
    endpoints.set(name, proxy.host);
  }
  endpoints.set('plain HTTP', plain.host);
  endpoints.set('TLS 1.1 only', await tlsServer({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }));
  endpoints.set('client certificate required', await tlsServer({ requestCert: true, rejectUnauthorized: true }));
});
t.teardown(async () => {
  for (const p of proxies) await p.stop();
  for (const s of servers) await new Promise((resolve) => s.close(resolve));
  await plain?.stop();
  await secure?.stop();
});

/** What each kind says, and the fix the webhook gives (the CLI's is checked below). */
const EXPECTED: Record<string, { says: string; fix: RegExp }> = {
  'plain HTTP': { says: 'it answered in plain HTTP, not TLS', fix: /list it under registry\.insecure/ },
  'other CA': {
    says: 'its certificate is signed by an untrusted CA',
    fix: /add its CA certificate to registry\.caFiles/,
  },
  'self-signed': {
    says: 'its certificate is self-signed, and not trusted',
    fix: /add its CA certificate to registry\.caFiles/,
  },
  expired: { says: 'its certificate has expired', fix: /renew .*'s certificate/ },
  'other name': {
    says: 'its certificate is not for this host name (it names DNS:registry.other.test)',
    fix: /use the host name .* certificate is issued for/,
  },
  'TLS 1.1 only': { says: 'offers no TLS version pullguard accepts (1.2, 1.3)', fix: /offer TLS 1\.2 or 1\.3/ },
  // TLS 1.3: the refusal comes after the handshake, as a closed connection; no words to gain
  'client certificate required': { says: 'closed the connection', fix: /check the registry host name/ },
};

t.test('every TLS failure on loopback: words for its kind, never OpenSSL internals', async (t) => {
  // The test CA is trusted, as configured: each failure is the one its endpoint was made for.
  const engine = engineFor({}, [pki.caPem]);
  t.teardown(() => engine.close());
  t.same([...endpoints.keys()].sort(), Object.keys(EXPECTED).sort(), 'every kind is tried');
  for (const [name, host] of endpoints) {
    const v = await checkImage(engine, `${host}/demo/app:1.0`);
    t.equal(v.reason, 'registry-unreachable', name);
    t.match(v.message, EXPECTED[name]!.says, `${name}: ${v.message}`);
    t.match(v.hint, EXPECTED[name]!.fix, `${name}: ${v.hint}`);
    for (const text of [v.message, v.hint, ...v.evidence]) t.notMatch(text, INTERNALS, `${name}: ${text}`);
  }
});

t.test('through pullguard check: the same, in every field of the JSON', async (t) => {
  const images = [...endpoints.values()].map((host) => `${host}/demo/app:1.0`);
  const r = await runInProcess(runCheck, [...images, '--registry-ca', pki.caFile, '-o', 'json', '--timeout', '20s']);
  t.equal(r.code, 3, r.stderr);
  const findings = JSON.parse(r.stdout).findings as Finding[];
  t.equal(findings.length, endpoints.size);
  for (const f of findings) {
    t.equal(f.reason, 'registry-unreachable', f.image);
    for (const text of [f.message, f.hint, ...(f.evidence ?? [])]) t.notMatch(text, INTERNALS, text);
  }
  t.notMatch(r.stdout + r.stderr, INTERNALS, 'nothing else either');
});

t.test('plain HTTP: check says --insecure-registry, the webhook registry.insecure', async (t) => {
  const image = `${plain.host}/demo/app:1.0`;
  const r = await runInProcess(runCheck, [image, '-o', 'json', '--timeout', '20s']);
  const f = JSON.parse(r.stdout).findings[0] as Finding;
  t.equal(f.message, `image "${image}": the registry is unreachable over TLS: it answered in plain HTTP, not TLS`);
  t.equal(
    f.hint,
    `if ${plain.host} serves plain HTTP, pass --insecure-registry ${plain.host} (the nodes' runtime must allow it too)`,
  );
  t.notMatch(f.hint, 'registry.insecure', 'the flag, in the command line');

  const s = await serve(null, { mode: 'warn', platforms: [] });
  t.teardown(() => s.close());
  const response = await s.review(podReview({ plain, secure, appDigest: '' }, [{ name: 'app', image }]));
  const warning = (response.warnings as string[]).join('\n');
  t.match(warning, 'it answered in plain HTTP, not TLS');
  t.match(warning, `if ${plain.host} serves plain HTTP, list it under registry.insecure`);
  t.notMatch(warning, '--insecure-registry', 'the configuration key, in the webhook');
  t.notMatch(warning, INTERNALS);
});

t.test('an untrusted certificate: check says --registry-ca, the webhook registry.caFiles', async (t) => {
  const image = `${endpoints.get('other CA')}/demo/app:1.0`;
  const r = await runInProcess(runCheck, [image, '-o', 'json', '--timeout', '20s']);
  const f = JSON.parse(r.stdout).findings[0] as Finding;
  t.match(f.message, 'its certificate is signed by an untrusted CA');
  t.match(f.hint, 'pass its CA certificate with --registry-ca FILE (the nodes must trust it too)');
  t.notMatch(f.message + f.hint, /use-system-ca|registry\.caFiles/);

  const s = await serve(null, { mode: 'warn', platforms: [] });
  t.teardown(() => s.close());
  const response = await s.review(podReview({ plain, secure, appDigest: '' }, [{ name: 'app', image }]));
  const warning = (response.warnings as string[]).join('\n');
  t.match(warning, 'its certificate is signed by an untrusted CA');
  t.match(warning, 'add its CA certificate to registry.caFiles');
  t.notMatch(warning, /--registry-ca|use-system-ca/);
});
