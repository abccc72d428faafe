// bursts: (a) many concurrent reviews of pods sharing one new image make exactly one manifest
// request; (b) many distinct images keep memory bounded by the cache limit (peak RSS, measured in a
// process of its own).

import { createHash } from 'node:crypto';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inject, type DispatchFunc } from 'light-my-request';
import { startServer } from '../src/app/server.ts';
import { validateConfig } from '../src/config/schema.ts';
import { createLogger } from '../src/server/logger.ts';
import { sharedPki } from '../test/helpers/pki.ts';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.ts';
import { admissionBody, figure, MiB, QUICK, round, since, type Recorder } from './lib.ts';
import type { MemoryReport, MemorySettings } from './memory-child.ts';

const MEMORY_CHILD = fileURLToPath(new URL('./memory-child.ts', import.meta.url));

const manifestRequests = (reg: TestRegistry, repo: string) =>
  reg.proxy!.count({ path: new RegExp(`^/v2/${repo}/manifests/`) });

interface Burst {
  ms: number;
  allowed: number;
  manifestRequests: number;
  registryRequests: number;
}

async function burst(reg: TestRegistry, n: number, image: string): Promise<Burst & { warmMs: number }> {
  const pki = await sharedPki();
  // Logs off the console: 1,000 review lines would only slow the terminal down.
  const logger = createLogger('info', { write: () => undefined });
  const config = validateConfig({
    server: { host: '127.0.0.1', port: 0, metricsPort: 0, tlsCert: pki.server.certFile, tlsKey: pki.server.keyFile },
    registry: { insecure: [reg.host] },
    cluster: { watchNodes: false },
  });
  const running = await startServer(config, {}, logger);
  try {
    const bodies = Array.from({ length: n }, (_, i) =>
      JSON.stringify(admissionBody('pod-create.json', { host: reg.host, image, uid: `burst-${i}` })),
    );
    const once = async (): Promise<Burst> => {
      reg.resetCounters();
      const t0 = performance.now();
      // inject into the server's own request listener (reviews are not fastify routes): every review
      // reaches the handler at once, with no connection limit in between.
      const listener = running.app.server.listeners('request')[0] as DispatchFunc;
      const answers = await Promise.all(
        bodies.map((payload) =>
          inject(listener, {
            method: 'POST',
            url: '/validate',
            headers: { 'content-type': 'application/json' },
            payload,
          }),
        ),
      );
      const ms = since(t0);
      const allowed = answers.filter(
        (a) =>
          a.statusCode === 200 &&
          (JSON.parse(a.body) as { response?: { allowed?: boolean } }).response?.allowed === true,
      ).length;
      return {
        ms,
        allowed,
        manifestRequests: manifestRequests(reg, 'bench/burst'),
        registryRequests: reg.proxy!.count(),
      };
    };
    const cold = await once();
    const warm = await once();
    return { ...cold, warmMs: warm.ms };
  } finally {
    await running.close();
  }
}

function memoryRun(settings: MemorySettings): Promise<MemoryReport> {
  return new Promise((resolve, reject) => {
    const child = fork(MEMORY_CHILD, [], {
      execArgv: ['--expose-gc'],
      env: { ...process.env, BENCH_MEMORY: JSON.stringify(settings) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let report: MemoryReport | undefined;
    child.once('message', (m: MemoryReport) => (report = m));
    child.once('error', reject);
    child.once('exit', (code) =>
      report ? resolve(report) : reject(new Error(`memory child exited ${code} without a report`)),
    );
  });
}

export async function bursts(rec: Recorder): Promise<void> {
  const concurrent = QUICK ? 100 : 1000;
  const distinct = QUICK ? 500 : 10_000;
  const limit = QUICK ? 100 : 1000;
  const reg = await startRegistry({ auth: 'none', proxy: true });
  rec.settings = {
    concurrentReviews: concurrent,
    distinctImages: distinct,
    cacheMaxEntries: limit,
    registry: 'docker-registry on loopback, anonymous HTTP, behind the counting proxy',
    a: 'pod-create.json with one new image, every review injected into the server’s listener at once (Promise.all), in-process server',
    b: `${distinct} distinct tags answered by the proxy (a handler returns 200 + Docker-Content-Digest for HEAD /v2/bench/many/manifests/*, by tag and by digest, as distribution would), checked through one engine (registry.verifyLayers off: manifests only), 64 at a time, in a child process`,
  };
  try {
    // (a) one new image, many reviews at once.
    await reg.pushImage('bench/burst', '1');
    const a = await burst(reg, concurrent, `${reg.host}/bench/burst:1`);

    // (b) many distinct images: answered by the proxy so that no 10,000 tags need pushing.
    reg.proxy!.fault(
      {
        kind: 'handler',
        handle: (req, res) => {
          req.resume();
          // by tag: a digest of its own; by digest (the runtime's next ask): that digest
          const asked = /\/manifests\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1];
          const digest =
            asked ??
            `sha256:${createHash('sha256')
              .update(req.url ?? '')
              .digest('hex')}`;
          res.writeHead(200, {
            'content-type': 'application/vnd.oci.image.manifest.v1+json',
            'docker-content-digest': digest,
            'content-length': '428',
            'docker-distribution-api-version': 'registry/2.0',
          });
          res.end();
        },
      },
      { method: 'HEAD', path: /^\/v2\/bench\/many\/manifests\// },
    );
    const settings = { host: reg.host, repo: 'bench/many', count: distinct, warm: QUICK ? 100 : 500, concurrency: 64 };
    reg.resetCounters();
    const bounded = await memoryRun({ ...settings, maxEntries: limit });
    const boundedRequests = reg.proxy!.count();
    // The contrast: the same images with a limit above their number, i.e. nothing evicted.
    const unbounded = await memoryRun({ ...settings, maxEntries: distinct + settings.warm + 1 });

    const b = (name: string, value: number, unit: string) => ({ name, value, unit });
    rec.add(
      figure(
        `(a) manifest requests for ${concurrent} concurrent reviews`,
        a.manifestRequests,
        '',
        b('reviews', concurrent, ''),
        // the tag, then the manifest by its digest as the runtime asks next (a stale cache fails there)
        { text: 'exactly 2', met: (f) => f.value === 2 },
      ),
      figure('(a) reviews allowed', a.allowed, '', b('reviews sent', concurrent, ''), {
        text: 'all',
        met: (f) => f.value === concurrent,
      }),
      figure('(a) burst elapsed, new image', a.ms, 'ms', b('same burst, cached', a.warmMs, 'ms')),
      figure(
        '(a) per review, new image',
        a.ms / concurrent,
        'ms',
        b('same burst, cached', a.warmMs / concurrent, 'ms'),
      ),
      figure(
        `(b) peak RSS, ${distinct} images, limit ${limit}`,
        bounded.peakRss / MiB,
        'MiB',
        b('RSS before', bounded.rssBefore / MiB, 'MiB'),
      ),
      figure(
        '(b) RSS growth, bounded',
        (bounded.peakRss - bounded.rssBefore) / MiB,
        'MiB',
        b(`growth, limit ${unbounded.maxEntries}`, (unbounded.peakRss - unbounded.rssBefore) / MiB, 'MiB'),
      ),
      figure(
        '(b) RSS after GC, bounded',
        bounded.rssAfterGc / MiB,
        'MiB',
        b(`RSS after GC, limit ${unbounded.maxEntries}`, unbounded.rssAfterGc / MiB, 'MiB'),
      ),
      figure(
        '(b) heap after GC, bounded',
        bounded.heapAfterGc / MiB,
        'MiB',
        b('heap before', bounded.heapBefore / MiB, 'MiB'),
      ),
      figure(
        '(b) heap after GC, bounded',
        bounded.heapAfterGc / MiB,
        'MiB',
        b(`heap after GC, limit ${unbounded.maxEntries}`, unbounded.heapAfterGc / MiB, 'MiB'),
      ),
      figure('(b) cache entries at the end', bounded.cacheSize, '', b('cache.maxEntries', limit, ''), {
        text: '≤ limit',
        met: (f) => (f.value ?? Infinity) <= limit,
      }),
      figure('(b) images answered ok', bounded.ok, '', b('images checked', distinct, ''), {
        text: 'all',
        met: (f) => f.value === distinct,
      }),
      figure(
        '(b) manifest requests',
        boundedRequests,
        '',
        b('images checked (+ warm-up)', distinct + settings.warm, ''),
        { text: '2 per image (tag, digest)', met: (f) => f.value === 2 * (distinct + settings.warm) },
      ),
      figure('(b) connections opened', bounded.connections, '', b('images checked', distinct, '')),
      figure(
        '(b) time per image (64 at a time)',
        bounded.elapsedMs / distinct,
        'ms',
        b(`limit ${unbounded.maxEntries}`, unbounded.elapsedMs / distinct, 'ms'),
      ),
    );
    rec.details = {
      a: { ...a, ms: round(a.ms, 2), warmMs: round(a.warmMs, 2) },
      b: { bounded, unbounded },
    };
    rec.note(
      "(b) RSS is the child process's own (engine, undici, node); the registry, proxy and token helpers live in the parent",
    );
    rec.note(
      '(b) peak RSS includes garbage not yet collected; the heap after GC shows what the cache keeps, and "connections opened" that the HEADs reuse kept-alive connections',
    );
  } finally {
    await reg.stop();
  }
}
