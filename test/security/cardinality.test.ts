// What anyone who may create a pod (or reach the webhook port) can make pullguard keep: per-host
// connection pools and slots are dropped when idle past a bound (never a host with requests in
// flight), the client remembers challenges and rate limits of a bounded number of hosts, and metric
// labels take only the kinds pullguard reviews and hosts that answered like registries, up to a cap;
// everything else is `other`.
import t from 'tap';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { MAX_REMEMBERED_HOSTS, RegistryClient } from '../../src/registry/client.ts';
import { POD_SPEC_KINDS } from '../../src/workload/kinds.ts';
import {
  MAX_GUARDED,
  MAX_IDLE_HOSTS,
  RegistryTransport,
  TransportError,
  type LookupFunction,
} from '../../src/registry/transport.ts';
import { MAX_REGISTRY_LABELS } from '../../src/server/metrics.ts';
import { podReview, serve, startRegistries, type Registries } from '../server/lib.ts';
import { waitFor } from '../helpers/wait.ts';

let reg: TestRegistry;
let regs: Registries;

t.before(async () => {
  [reg, regs] = await Promise.all([startRegistry({ auth: 'none', proxy: true }), startRegistries()]);
});
t.teardown(async () => {
  await Promise.all([reg?.stop(), regs?.stop()]);
});

/** Every name is another host, and all of them are loopback: what a wildcard DNS name gives a pod author. */
const toLoopback: LookupFunction = (_hostname, _options, callback) =>
  callback(null, [{ address: '127.0.0.1', family: 4 }]);

/** Transport settings with every name resolving to loopback. */
const loopbackSettings = {
  insecure: [],
  caPems: [],
  concurrency: 4,
  allowLinkLocal: [],
  requestTimeoutMs: 30_000,
  lookup: toLoopback,
};

function transport(): RegistryTransport {
  return new RegistryTransport(loopbackSettings);
}

/** `count` requests, `parallel` at a time; each ends with an answer or a TransportError. */
async function requests(tr: RegistryTransport, count: number, url: (i: number) => string, parallel = 16) {
  const outcomes: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = next++; i < count; i = next++) {
        let key: string;
        try {
          key = String((await tr.request(new URL(url(i)), { method: 'GET' })).status);
        } catch (err) {
          if (!(err instanceof TransportError)) throw err;
          key = err.kind;
        }
        outcomes[key] = (outcomes[key] ?? 0) + 1;
      }
    }),
  );
  return outcomes;
}

t.test('20,000 hosts that refuse leave at most MAX_IDLE_HOSTS pools and slots', async (t) => {
  const closed = await freePort();
  const tr = transport();
  t.teardown(() => tr.close());
  const outcomes = await requests(tr, 20_000, (i) => `http://h${i}.pullguard.test:${closed}/v2/`);
  t.equal(
    Object.values(outcomes).reduce((a, b) => a + b, 0),
    20_000,
    `every request ended: ${JSON.stringify(outcomes)}`,
  );
  const held = tr.held;
  t.ok(held.pools <= MAX_IDLE_HOSTS, `${held.pools} connection pools held after 20,000 hosts`);
  t.ok(held.hosts <= MAX_IDLE_HOSTS, `${held.hosts} hosts' slots held after 20,000 hosts`);
});

t.test(
  'hosts that answer: their idle pools are closed past the bound, and an evicted host is reached again',
  async (t) => {
    const port = reg.direct.host.split(':')[1];
    const tr = transport();
    t.teardown(() => tr.close());
    const hosts = MAX_IDLE_HOSTS * 4;
    const outcomes = await requests(tr, hosts, (i) => `http://r${i}.pullguard.test:${port}/v2/`, 8);
    t.same(outcomes, { 200: hosts }, 'every host answered');
    t.ok(tr.held.pools <= MAX_IDLE_HOSTS, `${tr.held.pools} pools held after ${hosts} registries`);
    const again = await tr.request(new URL(`http://r0.pullguard.test:${port}/v2/`), { method: 'GET' });
    t.equal(again.status, 200, 'the first host, long evicted, answers again');
  },
);

t.test('a host with requests in flight is never evicted: its cap on requests holds through the churn', async (t) => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  reg.proxy!.fault({ kind: 'hold', until: released }, { path: /\/v2\/held\// });
  t.teardown(() => reg.proxy!.clearRules());
  const tr = transport();
  t.teardown(() => tr.close());
  const busy = `http://${reg.host}/v2/held/manifests/1.0`;
  // concurrency is 4: four requests take every slot of the busy host and wait at the proxy.
  const inFlight = Array.from({ length: 4 }, () => tr.request(new URL(busy), { method: 'GET' }));
  await waitFor(() => reg.proxy!.count({ path: /\/v2\/held\// }) === 4, {
    what: 'four requests held at the proxy',
    timeoutMs: 20_000,
  });

  const closed = await freePort();
  await requests(tr, MAX_IDLE_HOSTS * 10, (i) => `http://c${i}.pullguard.test:${closed}/v2/`);

  // A fifth request must still wait for a slot: with an already-aborted signal it ends there, not on
  // the wire (a fresh slot counter, after an eviction, would have let it through).
  const fifth = await tr.request(new URL(busy), { method: 'GET', signal: AbortSignal.abort() }).then(
    () => 'answered',
    (err: Error) => err.message,
  );
  t.match(fifth, /waiting for a connection slot/, 'the fifth request waited for a slot');
  t.equal(reg.proxy!.count({ path: /\/v2\/held\// }), 4, 'and never reached the registry');

  release();
  const answers = await Promise.all(inFlight);
  t.same(
    answers.map((a) => a.status),
    [404, 404, 404, 404],
    'the held requests were answered by the registry',
  );
});

t.test('through a proxy, the link-local guard remembers at most MAX_GUARDED hosts', async (t) => {
  // The guard asks DNS before the proxy is asked, and remembers a host that passed for a while; the
  // proxy here refuses connections (nothing listens), which is all the requests need to get that far.
  const asked: string[] = [];
  const counting: LookupFunction = (hostname, options, callback) => {
    asked.push(hostname);
    toLoopback(hostname, options, callback);
  };
  const proxy = `http://127.0.0.1:${await freePort()}`;
  const tr = new RegistryTransport({
    ...loopbackSettings,
    lookup: counting,
    proxy: { httpProxy: proxy, httpsProxy: proxy, noProxy: '' },
  });
  t.teardown(() => tr.close());
  const names = Array.from({ length: MAX_GUARDED + 100 }, (_, i) => `g${i}.pullguard.test`);
  const outcomes = await requests(tr, names.length, (i) => `http://${names[i]}/v2/`);
  t.same(outcomes, { connect: names.length }, 'every request got as far as the proxy, which refused the connection');
  t.equal(asked.length, names.length, 'each name was looked up once');
  await requests(tr, 1, () => `http://${names.at(-1)}/v2/`);
  t.equal(asked.length, names.length, 'a recent name is remembered');
  await requests(tr, 1, () => `http://${names[0]}/v2/`);
  t.equal(asked.at(-1), names[0], 'the oldest was forgotten and is looked up again');
});

t.test('the client remembers challenges and rate limits of at most MAX_REMEMBERED_HOSTS hosts', async (t) => {
  reg.proxy!.fault(
    {
      kind: 'status',
      status: 401,
      headers: {
        'www-authenticate': 'Basic realm="registry"',
        'docker-distribution-api-version': 'registry/2.0',
        'ratelimit-limit': '100;w=21600',
        'ratelimit-remaining': '99;w=21600',
      },
    },
    { path: /\/v2\/limits\// },
  );
  t.teardown(() => reg.proxy!.clearRules());
  const port = reg.host.split(':')[1];
  const hosts = Array.from({ length: MAX_REMEMBERED_HOSTS + 100 }, (_, i) => `l${i}.pullguard.test:${port}`);
  const client = new RegistryClient({
    ...loopbackSettings,
    endpoints: Object.fromEntries(hosts.map((h) => [h, `http://${h}`])),
  });
  t.teardown(() => client.close());
  const cred = { username: 'u', password: 'p4ssword' };
  for (const host of hosts) await client.resolve({ domain: host, path: 'limits/app' }, '1.0', cred);
  t.ok(
    client.rateLimits.size <= MAX_REMEMBERED_HOSTS,
    `${client.rateLimits.size} rate limits kept after ${hosts.length} hosts`,
  );
  // The first host's challenge was forgotten: its next request goes out without credentials and
  // gets the challenge again (a remembered one is answered up front).
  reg.proxy!.resetLog();
  await client.resolve({ domain: hosts[0]!, path: 'limits/app' }, '1.0', cred);
  const [first] = reg.proxy!.requests({ path: /\/v2\/limits\// });
  t.equal(first?.headers.host, hosts[0]);
  t.equal(first?.authorization, undefined, 'the oldest challenge is no longer kept');
  reg.proxy!.resetLog();
  await client.resolve({ domain: hosts.at(-1)!, path: 'limits/app' }, '1.0', cred);
  t.match(reg.proxy!.requests()[0]?.authorization, /^Basic /, 'a recent one still is');
});

t.test(
  'metrics: 2,000 reviews of odd kinds and hosts leave the series bounded; registries keep their names',
  async (t) => {
    const s = await serve(regs, { deadline: 5000, registry: { insecure: ['127.0.0.1'], caFiles: [regs.pki.caFile] } });
    t.teardown(() => s.close());
    const scrape = async () => (await s.get('/metrics')).text;
    /** pullguard's own series (the process's, GC and heap, come and go on their own) */
    const series = (text: string) => text.split('\n').filter((l) => /^pullguard_(?!nodejs_|process_)/.test(l)).length;
    /** the values of a label on pullguard's own series (not the process's: GC has a `kind` of its own) */
    const labels = (text: string, name: string) =>
      new Set(
        [...text.matchAll(new RegExp(`^pullguard_(?!nodejs_|process_)\\w+\\{(?:[^}]*,)?${name}="([^"]*)"`, 'gm'))].map(
          (m) => m[1]!,
        ),
      );
    const review = (i: number) => {
      if (i % 2 === 0) {
        // A kind the webhook does not review: request.kind.kind is whatever a client sends.
        const body = podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/app:1.0` }]);
        body.request.kind.kind = `Odd${i}Kind`;
        return body;
      }
      // A host of its own that is no registry (a loopback alias where nothing listens).
      const host = `127.1.${(i >> 8) & 255}.${i & 255}:${closed}`;
      return podReview(regs, [{ name: 'app', image: `${host}/x/y:1` }]);
    };
    const flood = async (from: number, to: number) => {
      let next = from;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let i = next++; i < to; i = next++) await s.review(review(i));
        }),
      );
    };
    const closed = await freePort();

    await s.review(podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/app:1.0` }]));
    const before = series(await scrape());
    await flood(0, 1000);
    const half = series(await scrape());
    await flood(1000, 2000);
    const after = await scrape();
    t.ok(
      series(after) - half <= 10,
      `the second 1,000 reviews added ${series(after) - half} series (first: ${half - before})`,
    );
    t.ok(series(after) - before <= 100, `${before} series before, ${series(after)} after 2,000 odd reviews`);
    const known = new Set([...POD_SPEC_KINDS.map((k) => k.kind), 'other']);
    t.same(
      [...labels(after, 'kind')].filter((k) => !known.has(k)),
      [],
      'kind labels are kinds pullguard reviews, or other',
    );
    t.ok(labels(after, 'kind').has('other'));
    t.same(
      [...labels(after, 'registry')].sort(),
      [regs.plain.host, 'other'].sort(),
      'the registry that answered is named; 1,000 hosts that never did are other',
    );

    // A registry first seen after the flood still gets its name: hosts that never answered took no place.
    await s.review(podReview(regs, [{ name: 'app', image: `${regs.secure.host}/demo/app:1.0` }]));
    t.ok(labels(await scrape(), 'registry').has(regs.secure.host), 'a registry seen after the flood is named');

    // Hosts that do answer like registries (proxies in front of one) fill the label set only up to its cap.
    const proxies: FaultProxy[] = await Promise.all(
      Array.from({ length: MAX_REGISTRY_LABELS + 10 }, () => startFaultProxy({ upstream: regs.plain.direct.url })),
    );
    t.teardown(() => Promise.all(proxies.map((p) => p.stop())));
    for (let i = 0; i < proxies.length; i += 10)
      await s.review(
        podReview(
          regs,
          proxies.slice(i, i + 10).map((p, j) => ({ name: `c${j}`, image: `${p.host}/demo/app:1.0` })),
        ),
      );
    const full = await scrape();
    const registries = labels(full, 'registry');
    t.equal(registries.size, MAX_REGISTRY_LABELS + 1, `${registries.size} registry label values: the cap and other`);
    t.ok(registries.has(regs.plain.host) && registries.has(regs.secure.host), 'the first registries keep their names');
    t.ok(
      proxies.every((p) => p.count() > 0),
      'every registry-like host was asked',
    );
  },
);
