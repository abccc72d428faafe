// The registry transport on its own, against plain node:http servers: credentials never follow a
// redirect to another host, bodies are bounded, link-local literals are refused without a
// connection, the per-host cap queues requests (and a queued one can give up), a silent host is a
// timeout, HTTP/1.1 is spoken even to a TLS server that offers HTTP/2, and a failure is classified
// from its whole cause chain, directly and through a proxy.
import t from 'tap';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { classify, RegistryTransport, TransportError, type TransportOptions } from '../../src/registry/transport.ts';
import { freePort } from '../helpers/registry.ts';
import { sharedPki } from '../helpers/pki.ts';
import { silentServer } from '../helpers/silent.ts';
import { waitFor } from '../helpers/wait.ts';

interface Seen {
  path: string;
  authorization?: string;
}

async function server(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: Seen[] = [];
  const s: Server = createServer((req, res) => {
    seen.push({
      path: req.url ?? '',
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
    handle(req, res);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(s.address() as AddressInfo).port}`;
  t.teardown(() => {
    s.closeAllConnections();
    return new Promise((r) => s.close(r));
  });
  return { host, seen };
}

function transport(hosts: string[], opts: Partial<TransportOptions> = {}): RegistryTransport {
  const tr = new RegistryTransport({
    insecure: hosts,
    caPems: [],
    concurrency: 4,
    allowLinkLocal: [],
    requestTimeoutMs: 10_000,
    ...opts,
  });
  for (const h of hosts) tr.usePlainHttp(h);
  t.teardown(() => tr.close());
  return tr;
}

/** The kind of TransportError a request fails with ('' when it does not fail). */
async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return '';
  } catch (err) {
    return err instanceof TransportError ? err.kind : String(err);
  }
}

const auth = { authorization: 'Basic c2VjcmV0OnNlY3JldA==' };

t.test('a redirect to another host drops Authorization; one on the same host keeps it', async (t) => {
  const other = await server((_req, res) => res.end('blob'));
  const reg = await server((req, res) => {
    if (req.url === '/same') res.writeHead(307, { location: '/final' }).end();
    else if (req.url === '/away') res.writeHead(307, { location: `http://${other.host}/blob` }).end();
    else res.end('ok');
  });
  const tr = transport([reg.host, other.host]);
  const same = await tr.registryRequest(reg.host, '/same', { method: 'GET', headers: auth });
  t.equal(same.status, 200);
  t.same(reg.seen.at(-1), { path: '/final', ...auth }, 'same host: credentials kept');
  const away = await tr.registryRequest(reg.host, '/away', { method: 'GET', headers: auth });
  t.equal(away.body.toString(), 'blob');
  t.same(other.seen, [{ path: '/blob' }], 'the other host never sees them');
});

t.test('bodies are bounded: too large is an error, or cut when truncating', async (t) => {
  const reg = await server((_req, res) => res.end(Buffer.alloc(10_000, 'x')));
  const tr = transport([reg.host]);
  t.equal(await failure(tr.registryRequest(reg.host, '/big', { method: 'GET', maxBody: 1000 })), 'too-large');
  const cut = await tr.registryRequest(reg.host, '/big', { method: 'GET', maxBody: 1000, truncateBody: true });
  t.equal(cut.body.length, 1000);
});

t.test('a link-local literal is refused before any connection', async (t) => {
  const tr = transport([]);
  const err = await tr.request(new URL('http://169.254.169.254/latest/meta-data/'), { method: 'GET' }).catch((e) => e);
  t.ok(err instanceof TransportError);
  t.equal(err.kind, 'forbidden-address');
});

t.test('the per-host cap queues requests; a queued one whose signal aborts gives up without being sent', async (t) => {
  const held: ServerResponse[] = [];
  const reg = await server((_req, res) => held.push(res));
  const tr = transport([reg.host], { concurrency: 1 });
  const first = tr.registryRequest(reg.host, '/first', { method: 'GET' });
  await waitFor(() => held.length > 0, { what: 'the first request to reach the registry' });
  const ac = new AbortController();
  const second = tr.registryRequest(reg.host, '/second', { method: 'GET', signal: ac.signal });
  ac.abort();
  t.equal(await failure(second), 'aborted', 'the queued request ends at once');
  held[0]!.end('done');
  t.equal((await first).body.toString(), 'done');
  t.same(
    reg.seen.map((s) => s.path),
    ['/first'],
    'the abandoned one was never sent',
  );
});

t.test('a host that accepts and never answers is a timeout', async (t) => {
  const reg = await server(() => undefined);
  const tr = transport([reg.host], { requestTimeoutMs: 300 });
  t.equal(await failure(tr.registryRequest(reg.host, '/v2/', { method: 'GET' })), 'timeout');
});

t.test('a request stuck in a TLS handshake ends at its abort; close() ends the connection', async (t) => {
  const silent = await silentServer();
  t.teardown(silent.stop);
  const host = silent.host;
  // Verified TLS (not insecure): the handshake waits for a ServerHello that never comes. The
  // connect timeout is a minute: only the abort, or close(), can end it within the margins here.
  const tr = new RegistryTransport({
    insecure: [],
    caPems: [],
    concurrency: 1,
    allowLinkLocal: [],
    requestTimeoutMs: 60_000,
  });
  const ac = new AbortController();
  const pending = failure(tr.registryRequest(host, '/v2/', { method: 'GET', signal: ac.signal }));
  await waitFor(() => silent.open() === 1, { what: 'connected', timeoutMs: 10_000 });
  ac.abort();
  t.equal(await pending, 'aborted', 'the request (and its slot) ends at the abort, not at the connect timeout');
  const left = failure(tr.registryRequest(host, '/v2/', { method: 'GET' }));
  await tr.close();
  await waitFor(() => silent.open() === 0, {
    what: 'close() to end the connections still handshaking',
    timeoutMs: 10_000,
  });
  t.not(await left, '', 'its request fails');
});

t.test('registries are spoken to in HTTP/1.1, also over TLS to a server that offers HTTP/2', async (t) => {
  // The transport is built for HTTP/1.1 (keep-alive pools, a cap on requests per host); a TLS
  // server that offers h2 in ALPN (docker-registry does) must not get it.
  const pki = await sharedPki();
  const s = createSecureServer(
    { cert: pki.server.certPem, key: pki.server.keyPem, allowHTTP1: true },
    (req: Http2ServerRequest, res: Http2ServerResponse) => res.end(req.httpVersion),
  );
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => s.close(r)));
  const host = `127.0.0.1:${(s.address() as AddressInfo).port}`;
  const tr = new RegistryTransport({
    insecure: [],
    caPems: [pki.caPem],
    concurrency: 1,
    allowLinkLocal: [],
    requestTimeoutMs: 10_000,
  });
  t.teardown(() => tr.close());
  const res = await tr.registryRequest(host, '/v2/', { method: 'GET' });
  t.equal(res.status, 200);
  t.equal(res.body.toString(), '1.1', 'HTTP/1.1');
});

t.test(
  'a failure is classified by the codes anywhere in its cause chain, which is walked a bounded length',
  async (t) => {
    const url = new URL('https://r.example/v2/');
    const chain = (codes: (string | undefined)[]): Error => {
      let cause: Error | undefined;
      for (const code of codes.toReversed()) cause = Object.assign(new Error(`code ${code}`, { cause }), { code });
      return cause!;
    };
    const kinds = (err: unknown) => {
      const c = classify(err, url);
      return [c.kind, c.message];
    };
    t.same(kinds(chain([undefined, undefined, 'ECONNREFUSED'])), [
      'connect',
      'cannot connect to r.example (ECONNREFUSED)',
    ]);
    t.same(kinds(chain([undefined, 'EAI_AGAIN', 'ECONNRESET'])), [
      'dns',
      'the name r.example does not resolve (EAI_AGAIN)',
    ]);
    t.same(
      kinds(chain([undefined, undefined, undefined, undefined, 'ENOTFOUND'])),
      ['dns', 'the name r.example does not resolve (ENOTFOUND)'],
      'the fifth error of the chain counts',
    );
    t.same(
      kinds(chain([undefined, undefined, undefined, undefined, undefined, 'ENOTFOUND'])),
      ['connect', 'request to r.example failed: code undefined'],
      'the sixth does not',
    );
    const looped = new Error('socket hang up') as Error & { cause?: unknown };
    looped.cause = looped;
    t.same(kinds(looped), ['connect', 'request to r.example failed: socket hang up'], 'a cause chain that loops ends');
    const aborted = new Error('outer', { cause: Object.assign(new Error('stop'), { name: 'AbortError' }) });
    t.same(kinds(aborted), ['aborted', 'request to r.example was cut off by the deadline']);
  },
);

t.test('through a proxy: a refused tunnel names the proxy and its answer; an unreachable proxy is named', async (t) => {
  const refusing = createServer();
  refusing.on('connect', (_req, socket) => socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n'));
  await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => refusing.close(r)));
  const closed = await freePort();
  const through = async (proxy: string) => {
    const tr = new RegistryTransport({
      insecure: [],
      caPems: [],
      concurrency: 1,
      allowLinkLocal: [],
      requestTimeoutMs: 10_000,
      proxy: { httpProxy: '', httpsProxy: proxy, noProxy: '' },
      // The guard asks for the name first; the registry itself is never reached, only the proxy.
      lookup: (_host, _o, cb) => cb(null, [{ address: '192.0.2.1', family: 4 }]),
    });
    t.teardown(() => tr.close());
    const err = await tr.request(new URL('https://registry.pullguard.test/v2/'), { method: 'GET' }).catch((e) => e);
    t.ok(err instanceof TransportError, String(err));
    return [err.kind, err.message];
  };
  const refusedBy = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`;
  t.same(await through(refusedBy), [
    'proxy',
    `the proxy ${refusedBy} refused the request to registry.pullguard.test (HTTP 403, forbidden by the proxy)`,
  ]);
  t.same(await through(`http://127.0.0.1:${closed}`), [
    'connect',
    `cannot connect to registry.pullguard.test (ECONNREFUSED) (through the proxy http://127.0.0.1:${closed})`,
  ]);
});
