// Property tests of the webhook's front door: random bodies, real AdmissionReviews with parts
// replaced by random values, truncated, deeply nested and huge bodies. Every one gets a
// well-formed AdmissionReview answer or a 400, the server never crashes, memory stays bounded.
// Each body goes in the one way the server has for reviews: its own request listener (fastify's
// routes answer everything else).
import t from 'tap';
import fc from 'fast-check';
import { inject, type DispatchFunc } from 'light-my-request';
import { readFileSync, readdirSync } from 'node:fs';
import { AdmissionHandler } from '../../src/admission/handler.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { PodCredentials } from '../../src/podcheck/credentials.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import { PodCheck } from '../../src/podcheck/podcheck.ts';
import type { LookupFunction } from '../../src/registry/transport.ts';
import { buildApp } from '../../src/server/app.ts';
import { createLogger } from '../../src/server/logger.ts';
import { Metrics } from '../../src/server/metrics.ts';
import { registryClientFor } from '../../src/app/build.ts';

const fixtures = new URL('../fixtures/admission/', import.meta.url);
const samples = readdirSync(fixtures)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(new URL(f, fixtures), 'utf8')) as Record<string, unknown>);

// No name is ever resolved (a DNS server is not loopback), and bodies are kept free of other IPs below.
const noDns: LookupFunction = (hostname, _o, cb) => {
  const err: NodeJS.ErrnoException = new Error(`not resolved in tests: ${hostname}`);
  err.code = 'ENOTFOUND';
  cb(err, []);
};
const onlyLoopback = (text: string) =>
  ![...text.matchAll(/\b(\d{1,3})\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g)].some((m) => m[1] !== '127') &&
  !/\[[0-9a-fA-F:]*:[0-9a-fA-F:]*\]/.test(text);

const config = validateConfig({ deadline: 300, server: { bodyLimit: 4 * 1024 * 1024 } });
const engine = new Preflight(config, registryClientFor(config, [], { lookup: noDns }));
const app = await buildApp({
  handler: new AdmissionHandler({
    config,
    podCheck: new PodCheck({ engine, credentials: new PodCredentials(null, null) }),
    logger: createLogger('silent'),
  }),
  metrics: new Metrics(),
  logger: createLogger('silent'),
  tls: null,
  bodyLimit: config.server.bodyLimit,
});
t.teardown(async () => {
  await app.close();
  await engine.close();
});

// What the server's socket hands each request to: the review route, then fastify for the rest.
const listener = app.server.listeners('request')[0] as DispatchFunc;

async function post(payload: string, contentType = 'application/json') {
  const options = { method: 'POST' as const, url: '/validate', headers: { 'content-type': contentType }, payload };
  const own = await inject(listener, options);
  return { status: own.statusCode, body: own.body };
}

/** A well-formed answer: 200 with an AdmissionReview for the same uid, or 400 with a reason. */
function wellFormed(res: { status: number; body: string }, uid?: unknown): boolean {
  const json = JSON.parse(res.body) as { response?: { uid?: unknown; allowed?: unknown }; error?: unknown };
  if (res.status === 400)
    return typeof json.error === 'string' && json.error.length > 0 && !/[\u0000-\u001f]/.test(json.error);
  if (res.status !== 200) return false;
  return typeof json.response?.allowed === 'boolean' && (uid === undefined || json.response.uid === uid);
}

/** Replaces the value at a random path of a JSON value. */
function mutate(value: unknown, path: number[], replacement: unknown): unknown {
  if (!path.length || value === null || typeof value !== 'object') return replacement;
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  if (!entries.length) return replacement;
  const [key, child] = entries[path[0]! % entries.length]!;
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? [...value] : { ...value };
  (copy as Record<string, unknown>)[key] = mutate(child, path.slice(1), replacement);
  return copy;
}

t.test('random JSON values get a 400 or an answer', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (value) => {
      const text = JSON.stringify(value);
      fc.pre(onlyLoopback(text));
      return wellFormed(await post(text));
    }),
    { numRuns: 300 },
  );
});

t.test('real reviews with a part replaced by anything get an answer for their uid, or a 400', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...samples),
      fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
      fc.jsonValue({ maxDepth: 3 }),
      async (sample, path, replacement) => {
        const body = mutate(sample, path, replacement) as { request?: { uid?: unknown } };
        const text = JSON.stringify(body);
        fc.pre(onlyLoopback(text));
        return wellFormed(await post(text), body.request?.uid);
      },
    ),
    { numRuns: 400 },
  );
});

t.test(
  'real reviews past the body limit, a part replaced by anything: an answer for their uid, or a 400',
  async (t) => {
    // Past a limit only the body's start is read for the review (src/server/body.ts): what is there
    // decides between an unchecked allow for its uid and a 400.
    const padding = 'p'.repeat(config.server.bodyLimit);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...samples),
        fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
        fc.jsonValue({ maxDepth: 3 }),
        async (sample, path, replacement) => {
          const body = mutate(sample, path, replacement) as { request?: { uid?: unknown } };
          const text = JSON.stringify(body);
          fc.pre(onlyLoopback(text) && text.startsWith('{') && text.length > 2);
          const res = await post(`${text.slice(0, -1)},"padding":"${padding}"}`);
          if (res.status === 200 && JSON.parse(res.body).response.allowed !== true) return false;
          return wellFormed(res, body.request?.uid);
        },
      ),
      { numRuns: 40 },
    );
  },
);

t.test('truncated bodies get a 400', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...samples),
      fc.double({ min: 0, max: 0.999, noNaN: true }),
      async (sample, fraction) => {
        const text = JSON.stringify(sample);
        const res = await post(text.slice(0, Math.floor(text.length * fraction)));
        return res.status === 400 && wellFormed(res);
      },
    ),
    { numRuns: 200 },
  );
});

t.test('deep nesting, huge bodies, wrong types and wrong content types', async (t) => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  t.ok(wellFormed(await post(deep)), 'deeply nested array');
  const deepObject = `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`;
  t.ok(wellFormed(await post(deepObject)), 'deeply nested object');
  // A review over the body limit is answered, allowed unchecked; anything else over it is refused.
  const huge = JSON.stringify({ ...samples[0], padding: 'x'.repeat(5 * 1024 * 1024) });
  const big = await post(huge);
  t.equal(big.status, 200, 'a review over the body limit');
  t.match(JSON.parse(big.body).response, { allowed: true, warnings: [/not checked: .*larger than/] });
  const notReview = await post(JSON.stringify({ padding: 'x'.repeat(5 * 1024 * 1024) }));
  t.equal(notReview.status, 400, 'over the body limit');
  t.match(JSON.parse(notReview.body).error, 'larger than');
  t.equal((await post('<xml/>', 'application/xml')).status, 400, 'not JSON');
  t.equal((await post('')).status, 400, 'empty');
  t.equal((await post('{"__proto__":{"polluted":1}}')).status, 400, 'prototype pollution attempt');
  t.equal(({} as Record<string, unknown>).polluted, undefined);
  const manyImages = structuredClone(
    samples.find((s) => (s.request as { kind: { kind: string } }).kind.kind === 'Pod')!,
  ) as { request: { object: { spec: { containers: unknown[] } } } };
  manyImages.request.object.spec.containers = Array.from({ length: 2000 }, (_, i) => ({
    name: `c${i}`,
    image: i % 2 ? `Bad Image ${i}` : `127.0.0.1:1/x/y:${i}`,
  }));
  const res = await post(JSON.stringify(manyImages));
  t.equal(res.status, 200, '2000 containers');
  const answer = JSON.parse(res.body) as {
    response: { allowed: boolean; status?: { message: string }; warnings?: string[] };
  };
  t.equal(answer.response.allowed, false, 'invalid references deny');
  t.ok(
    (answer.response.warnings ?? []).reduce((n, w) => n + w.length, 0) <= 4096,
    'warnings stay inside the API server budget',
  );
});

t.test('memory stays bounded over many bad requests', async (t) => {
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 2000; i++)
    await post(
      JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: `u${i}`,
          kind: { group: '', version: 'v1', kind: 'Pod' },
          operation: 'CREATE',
          object: { kind: 'Pod', spec: { containers: [{ name: 'a', image: `Bad/${i}` }] } },
        },
      }),
    );
  const grown = process.memoryUsage().rss - before;
  t.ok(grown < 200 * 1024 * 1024, `rss grew ${Math.round(grown / 1024 / 1024)} MiB over 2000 requests`);
  const health = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200, 'still serving');
});
