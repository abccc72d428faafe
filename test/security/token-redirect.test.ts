// Credentials go to the host they were meant for and nowhere else: a token server that redirects
// the password form to another host, and a realm over plain HTTP for a registry reached over HTTPS.
import t from 'tap';
import type { IncomingMessage } from 'node:http';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import { checkImage, keyring } from '../preflight/lib.ts';
import { registryClientFor } from '../../src/app/build.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
const basicOfAlice = Buffer.from(`${alice.username}:${alice.password}`).toString('base64');
let hub: TestRegistry;

t.before(async () => {
  hub = await startRegistry({
    auth: 'token',
    tls: true,
    users: [alice],
    acl: { pull: { alice: ['*'] } },
    proxy: true,
    proxyToken: true,
  });
  await hub.pushImage('private/app', '1.0');
});
t.teardown(() => hub.stop());
t.afterEach(() => {
  hub.proxy!.clearRules();
  hub.tokenProxy!.clearRules();
});

function engine(): Preflight {
  return new Preflight(
    validateConfig({ deadline: 3000 }),
    registryClientFor(validateConfig({ deadline: 3000 }), [hub.caPem!]),
  );
}

/** Another host (the token server behind another proxy) that records every body it is sent. */
async function elsewhere(tls: boolean): Promise<{ proxy: FaultProxy; bodies: string[] }> {
  const bodies: string[] = [];
  const proxy = await startFaultProxy({
    upstream: hub.tokenServer!.url,
    upstreamCa: hub.caPem!,
    ...(tls ? { tls: { cert: hub.pki.server.certPem, key: hub.pki.server.keyPem } } : {}),
    listen: '::1',
  });
  proxy.fault({
    kind: 'handler',
    handle: async (req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: 'from-elsewhere', expires_in: 300 }));
    },
  });
  return { proxy, bodies };
}

function leaked(proxy: FaultProxy, bodies: string[]): string[] {
  return [
    ...proxy.log.filter((r) => r.authorization).map((r) => `Authorization on ${r.method} ${r.url}`),
    ...proxy.log.filter((r) => r.url.includes(alice.password) || r.url.includes(basicOfAlice)).map((r) => r.url),
    ...bodies.filter((b) => b.includes('s3cret') || b.includes(basicOfAlice)),
  ];
}

t.test(
  'a token server that redirects the password form to another host: nothing reaches it, a registry-error says why',
  async (t) => {
    for (const status of [301, 302, 303, 307, 308]) {
      const other = await elsewhere(true);
      hub.tokenProxy!.clearRules();
      hub.tokenProxy!.fault({ kind: 'redirect', to: other.proxy.url, status });
      const v = await checkImage(engine(), `${hub.host}/private/app:1.0`, {
        keyrings: [keyring({ [hub.host]: alice })],
      });
      t.same(leaked(other.proxy, other.bodies), [], `HTTP ${status}: no credential crossed to ${other.proxy.host}`);
      t.equal(v.reason, 'registry-error', `HTTP ${status}`);
      t.match(v.message, /redirect/i, `HTTP ${status}: the finding says the token server redirected`);
      t.match(v.message, other.proxy.host, `HTTP ${status}: and names where to`);
      t.notMatch(v.message, alice.password);
      await other.proxy.stop();
    }
  },
);

t.test('a redirect of the token request on the same host is followed with the credentials', async (t) => {
  hub.tokenProxy!.fault({ kind: 'redirect', location: '/token', status: 307 }, { path: '/moved', times: 5 });
  hub.proxy!.fault({
    kind: 'headers',
    headers: {
      'www-authenticate': `Bearer realm="${hub.tokenProxy!.url}/moved",service="${hub.tokenServer!.service}"`,
    },
  });
  const v = await checkImage(engine(), `${hub.host}/private/app:1.0`, { keyrings: [keyring({ [hub.host]: alice })] });
  t.equal(v.reason, 'available');
});

t.test('a plain-HTTP realm for a registry reached over HTTPS gets no credentials; the finding says so', async (t) => {
  const plain = await elsewhere(false);
  t.teardown(() => plain.proxy.stop());
  hub.proxy!.fault({
    kind: 'headers',
    headers: { 'www-authenticate': `Bearer realm="${plain.proxy.url}/token",service="${hub.tokenServer!.service}"` },
  });
  const v = await checkImage(engine(), `${hub.host}/private/app:1.0`, { keyrings: [keyring({ [hub.host]: alice })] });
  t.same(leaked(plain.proxy, plain.bodies), [], 'nothing carrying the password went over plain HTTP');
  t.equal(v.reason, 'registry-error');
  t.match(v.message, /plain HTTP/);
  t.match(v.message, plain.proxy.host);
});
