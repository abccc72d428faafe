// bursts (b) in a process of its own, so that its RSS is the engine's and not the registry
// helpers' or the proxy's: checks COUNT distinct images through one engine with a bounded cache,
// sampling RSS, and reports over IPC. Run with --expose-gc for steady before/after readings.

import { validateConfig } from '../src/config/schema.ts';
import { Keyring } from '../src/credentials/keyring.ts';
import type { ImageUse } from '../src/findings.ts';
import { Preflight } from '../src/preflight/engine.ts';
import { connectionCounter, rssSampler } from './lib.ts';
import { registryClientFor } from '../src/app/build.ts';

export interface MemorySettings {
  host: string;
  repo: string;
  count: number;
  warm: number;
  maxEntries: number;
  concurrency: number;
}

export interface MemoryReport {
  maxEntries: number;
  count: number;
  rssBefore: number;
  heapBefore: number;
  peakRss: number;
  rssAfterGc: number;
  heapAfterGc: number;
  cacheSize: number;
  cacheStats: { hits: number; misses: number; shared: number };
  ok: number;
  elapsedMs: number;
  connections: number;
}

const s = JSON.parse(process.env.BENCH_MEMORY ?? '{}') as MemorySettings;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

const config = validateConfig({
  // manifests only: the proxy's handler answers manifest HEADs (what is measured is the cache's bound)
  registry: { insecure: [s.host], verifyLayers: false },
  cache: { maxEntries: s.maxEntries },
  cluster: { watchNodes: false },
});
const engine = new Preflight(config, registryClientFor(config));
const ctx = { credentials: { keyrings: [new Keyring()] } };
const use = (tag: string): ImageUse => ({
  object: { kind: 'Pod', namespace: 'bench', name: 'p' },
  container: 'app',
  field: 'spec.containers[0].image',
  image: `${s.host}/${s.repo}:${tag}`,
});

async function checkAll(prefix: string, count: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < count; i += s.concurrency) {
    const batch = Array.from({ length: Math.min(s.concurrency, count - i) }, (_, j) =>
      engine.check([use(`${prefix}${i + j}`)], ctx),
    );
    for (const [f] of await Promise.all(batch)) if (f?.verdict === 'ok') ok++;
  }
  return ok;
}

// Warm the code paths first (their own tags), so that what grows afterwards is data, not code.
await checkAll('warm-', s.warm);
gc();
const rssBefore = process.memoryUsage().rss;
const heapBefore = process.memoryUsage().heapUsed;
const conns = connectionCounter();
const sampler = rssSampler(10);
const t0 = performance.now();
const ok = await checkAll('t', s.count);
const elapsedMs = performance.now() - t0;
const peakRss = sampler.stop();
conns.stop();
gc();
const report: MemoryReport = {
  maxEntries: s.maxEntries,
  count: s.count,
  rssBefore,
  heapBefore,
  peakRss,
  rssAfterGc: process.memoryUsage().rss,
  heapAfterGc: process.memoryUsage().heapUsed,
  cacheSize: engine.cacheStats.size,
  cacheStats: { ...engine.cacheStats.answers },
  ok,
  elapsedMs,
  connections: conns.count(),
};
await engine.close();
process.send?.(report, () => process.exit(0));
