// Prometheus metrics: what operators alert on (denials, registry trouble, rate limits) and what
// tells them pullguard itself is healthy (latency, cache hits).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Preflight } from '../preflight/engine.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly reviews: Counter<'kind' | 'operation' | 'verdict' | 'action'>;
  readonly reviewSeconds: Histogram<'kind'>;
  readonly registryRequests: Counter<'registry' | 'status'>;
  readonly findings: Counter<'reason' | 'action'>;
  readonly proxiedRequests: Counter<'registry' | 'proxy' | 'status'>;

  constructor() {
    // The default names already start with process_/nodejs_: prefix 'pullguard_' (not 'pullguard_process_', which stuttered).
    collectDefaultMetrics({ register: this.registry, prefix: 'pullguard_' });
    this.reviews = new Counter({
      name: 'pullguard_reviews_total',
      help: 'Admission reviews by kind, operation, worst verdict and resulting action',
      labelNames: ['kind', 'operation', 'verdict', 'action'],
      registers: [this.registry],
    });
    this.reviewSeconds = new Histogram({
      name: 'pullguard_review_duration_seconds',
      help: 'Time to answer an admission review',
      labelNames: ['kind'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.registryRequests = new Counter({
      name: 'pullguard_registry_requests_total',
      help: 'Requests to registries by registry host and HTTP status (or transport failure kind)',
      labelNames: ['registry', 'status'],
      registers: [this.registry],
    });
    this.proxiedRequests = new Counter({
      name: 'pullguard_registry_proxied_requests_total',
      help: 'Requests to registries that went through an HTTP proxy, by registry host, proxy (without credentials) and HTTP status',
      labelNames: ['registry', 'proxy', 'status'],
      registers: [this.registry],
    });
    this.findings = new Counter({
      name: 'pullguard_findings_total',
      help: 'Findings that were not ok, by reason and action',
      labelNames: ['reason', 'action'],
      registers: [this.registry],
    });
  }

  /** Gauges read from the engine when scraped. */
  observeEngine(engine: Preflight): void {
    const cache = () => engine.cacheStats.answers;
    new Gauge({
      name: 'pullguard_cache_hits',
      help: 'Registry answers served from the cache since start',
      registers: [this.registry],
      collect() {
        this.set(cache().hits);
      },
    });
    new Gauge({
      name: 'pullguard_cache_misses',
      help: 'Registry answers that needed a request since start',
      registers: [this.registry],
      collect() {
        this.set(cache().misses);
      },
    });
    new Gauge({
      name: 'pullguard_cache_shared',
      help: 'Checks that joined a request already under way since start',
      registers: [this.registry],
      collect() {
        this.set(cache().shared);
      },
    });
    new Gauge({
      name: 'pullguard_cache_entries',
      help: 'Registry answers held in the cache',
      registers: [this.registry],
      collect() {
        this.set(engine.cacheStats.size);
      },
    });
    const rateLimit = new Gauge({
      name: 'pullguard_registry_ratelimit_remaining',
      help: 'Pulls left in the current window as the registry last reported (ratelimit-remaining), by registry',
      labelNames: ['registry'],
      registers: [this.registry],
      collect() {
        rateLimit.reset();
        const lowest = new Map<string, number>();
        for (const r of engine.client.rateLimits.values())
          lowest.set(r.host, Math.min(lowest.get(r.host) ?? Infinity, r.remaining));
        for (const [registry, remaining] of lowest) rateLimit.set({ registry }, remaining);
      },
    });
  }
}
