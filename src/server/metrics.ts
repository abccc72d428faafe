// Prometheus metrics: what operators alert on (denials, registry trouble, rate limits) and what
// tells them pullguard itself is healthy (latency, cache hits).

import { Counter, Gauge, Registry, collectDefaultMetrics, type Histogram } from 'prom-client';
import type { ReviewObserver, ReviewRecord } from '../admission/handler.ts';
import type { ApiRequestCounts } from '../cluster/requests.ts';
import type { Preflight } from '../preflight/engine.ts';
import type { TransportErrorKind } from '../registry/transport.ts';
import { POD_SPEC_KINDS } from '../workload/kinds.ts';

type Labels<L extends string> = Record<L, string>;

// Label values come from outside: request.kind.kind is whatever a client sends, and anyone who may
// create a pod names the hosts. Each value is a series kept until restart, so they are bounded.

/** registry label values at most; hosts past these, or that never answered like a registry, are `other` */
export const MAX_REGISTRY_LABELS = 50;

const REVIEWED_KINDS = new Set(POD_SPEC_KINDS.map((k) => k.kind));

/** The kind label: a kind pullguard reviews, else `other`. */
export function kindLabel(kind: string): string {
  return REVIEWED_KINDS.has(kind) ? kind : 'other';
}

const STATUSES = new Set([
  200, 201, 202, 204, 206, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 408, 409, 429, 500, 502, 503, 504,
]);

/** The status label: the statuses registries use, others by class (`4xx`). */
export function statusLabel(status: number): string {
  return STATUSES.has(status) ? String(status) : `${Math.floor(status / 100)}xx`;
}

/**
 * A counter bumped once or more per review: a Map entry per label set, without prom-client's
 * per-call label validation and hashing (a sixth of a cached review's own CPU); prom-client gets
 * the counts when scraped.
 */
export class ReviewCounter<L extends string> {
  readonly #names: readonly L[];
  readonly #counts = new Map<string, { labels: Labels<L>; n: number }>();

  constructor(registry: Registry, o: { name: string; help: string; labelNames: readonly L[] }) {
    this.#names = o.labelNames;
    const counts = this.#counts;
    new Counter({
      name: o.name,
      help: o.help,
      labelNames: o.labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, n } of counts.values()) this.inc(labels, n);
      },
    });
  }

  inc(labels: Labels<L>): void {
    let key = '';
    for (const name of this.#names) key += `${labels[name]}\u0000`;
    const entry = this.#counts.get(key);
    if (entry) entry.n++;
    else this.#counts.set(key, { labels: { ...labels }, n: 1 });
  }
}

/** The review latency histogram, kept the same way (bucket counts per label value), written out as prom-client writes a histogram. */
export class ReviewHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly #label: L;
  readonly #buckets: readonly number[];
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>();

  constructor(registry: Registry, o: { name: string; help: string; label: L; buckets: readonly number[] }) {
    this.name = o.name;
    this.help = o.help;
    this.#label = o.label;
    this.#buckets = o.buckets;
    registry.registerMetric(this as unknown as Histogram);
  }

  observe(labels: Labels<L>, value: number): void {
    const v = labels[this.#label];
    let s = this.#series.get(v);
    if (!s) this.#series.set(v, (s = { counts: this.#buckets.map(() => 0), sum: 0, count: 0 }));
    const i = this.#buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  get() {
    const values: {
      labels: Record<string, string | number>;
      sharedLabels: Labels<L>;
      value: number;
      metricName: string;
    }[] = [];
    for (const [v, s] of this.#series) {
      const shared = { [this.#label]: v } as Labels<L>;
      let acc = 0;
      this.#buckets.forEach((le, i) => {
        acc += s.counts[i]!;
        values.push({ labels: { le }, sharedLabels: shared, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: shared, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: {}, sharedLabels: shared, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: shared, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }

  reset(): void {
    this.#series.clear();
  }
}

export class Metrics implements ReviewObserver {
  readonly registry = new Registry();
  readonly reviews: ReviewCounter<'kind' | 'operation' | 'verdict' | 'action'>;
  readonly reviewSeconds: ReviewHistogram<'kind'>;
  readonly registryRequests: Counter<'registry' | 'status'>;
  readonly findings: ReviewCounter<'reason' | 'action'>;
  readonly proxiedRequests: Counter<'registry' | 'proxy' | 'status'>;
  readonly certificateExpiry: Gauge;
  /** hosts that answered like registries, in the order they did: the registry label's values */
  readonly #registries = new Set<string>();

  constructor() {
    // The default names already start with process_/nodejs_: prefix 'pullguard_' (not 'pullguard_process_', which stuttered).
    collectDefaultMetrics({ register: this.registry, prefix: 'pullguard_' });
    this.reviews = new ReviewCounter(this.registry, {
      name: 'pullguard_reviews_total',
      help: 'Admission reviews by kind, operation, worst verdict and resulting action',
      labelNames: ['kind', 'operation', 'verdict', 'action'],
    });
    this.reviewSeconds = new ReviewHistogram(this.registry, {
      name: 'pullguard_review_duration_seconds',
      help: 'Time to answer an admission review',
      label: 'kind',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.registryRequests = new Counter({
      name: 'pullguard_registry_requests_total',
      help: 'Requests to registries by registry host and HTTP status (or transport failure kind)',
      labelNames: ['registry', 'status'],
      registers: [this.registry],
    });
    this.certificateExpiry = new Gauge({
      name: 'pullguard_serving_certificate_expiry_timestamp_seconds',
      help: 'When the serving certificate in use expires (Unix time); alert well before it',
      registers: [this.registry],
    });
    this.proxiedRequests = new Counter({
      name: 'pullguard_registry_proxied_requests_total',
      help: 'Requests to registries that went through an HTTP proxy, by registry host, proxy (without credentials) and HTTP status',
      labelNames: ['registry', 'proxy', 'status'],
      registers: [this.registry],
    });
    this.findings = new ReviewCounter(this.registry, {
      name: 'pullguard_findings_total',
      help: 'Findings that were not ok, by reason and action',
      labelNames: ['reason', 'action'],
    });
  }

  /** Reviews answered without a check (allowed, with a warning) because the body passed one of pullguard's own limits. */
  readonly #unchecked = new ReviewCounter<'limit'>(this.registry, {
    name: 'pullguard_reviews_unchecked_total',
    help: 'Reviews allowed without a check because the body passed a limit of pullguard (size, elements, depth, memory)',
    labelNames: ['limit'],
  });

  unchecked(limit: string): void {
    this.#unchecked.inc({ limit });
  }

  reviewed(r: ReviewRecord): void {
    const kind = kindLabel(r.kind);
    this.reviews.inc({ kind, operation: r.operation, verdict: r.verdict, action: r.action });
    this.reviewSeconds.observe({ kind }, r.seconds);
    for (const f of r.notable) this.findings.inc({ reason: f.reason, action: f.action });
  }

  /**
   * The registry label for a host: its name once it answered like a registry, while there are
   * fewer than MAX_REGISTRY_LABELS; else `other`.
   */
  registryLabel(host: string, registryLike = false): string {
    if (this.#registries.has(host)) return host;
    if (!registryLike || this.#registries.size >= MAX_REGISTRY_LABELS) return 'other';
    this.#registries.add(host);
    return host;
  }

  /** An answer from a registry host (the transport's onResponse). */
  registryAnswered(host: string, status: number, proxy: string | undefined, registryLike: boolean): void {
    const registry = this.registryLabel(host, registryLike);
    this.registryRequests.inc({ registry, status: statusLabel(status) });
    if (proxy) this.proxiedRequests.inc({ registry, proxy, status: statusLabel(status) });
  }

  /** A request to a registry host that failed without an answer (the transport's onFailure). */
  registryFailed(host: string, kind: TransportErrorKind): void {
    this.registryRequests.inc({ registry: this.registryLabel(host), status: kind });
  }

  /** The estimated memory that review bodies being read, parsed or reviewed hold (BodyBudget), read when scraped. */
  observeBodies(inUse: () => number, limit: number): void {
    new Gauge({
      name: 'pullguard_review_body_bytes',
      help: 'Estimated bytes held by review bodies being read, parsed or reviewed (past server.bodyMemory: 429)',
      registers: [this.registry],
      collect() {
        this.set(inUse());
      },
    });
    new Gauge({
      name: 'pullguard_review_body_bytes_limit',
      help: 'server.bodyMemory: the estimated bytes review bodies may hold at once',
      registers: [this.registry],
    }).set(limit);
  }

  /** Gauges read from the engine when scraped. */
  /** Requests to the API server by verb and resource (cluster/requests.ts counts them where they are made). */
  observeApiRequests(counts: () => ApiRequestCounts): void {
    new Counter({
      name: 'pullguard_api_requests_total',
      help: 'Requests made to the Kubernetes API server, by verb (get, list, watch, create, ...) and resource',
      labelNames: ['verb', 'resource'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [key, n] of counts()) {
          const [verb = '', resource = ''] = key.split('\u0000');
          this.inc({ verb, resource }, n);
        }
      },
    });
  }

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
    const unverified = new Gauge({
      name: 'pullguard_fetch_unverified',
      help: "Config and layer blobs whose presence could not be checked since start (5xx, timeout, storage unreachable, a signed URL refusing HEAD), by cause; the verdict stayed the manifests'",
      labelNames: ['cause'],
      registers: [this.registry],
      collect() {
        for (const [cause, n] of Object.entries(engine.fetchStats.unverified)) unverified.set({ cause }, n);
      },
    });
    const label = (host: string) => this.registryLabel(host);
    const rateLimit = new Gauge({
      name: 'pullguard_registry_ratelimit_remaining',
      help: 'Pulls left in the current window as the registry last reported (ratelimit-remaining), by registry',
      labelNames: ['registry'],
      registers: [this.registry],
      collect() {
        rateLimit.reset();
        const lowest = new Map<string, number>();
        for (const r of engine.client.rateLimits.values())
          lowest.set(label(r.host), Math.min(lowest.get(label(r.host)) ?? Infinity, r.remaining));
        for (const [registry, remaining] of lowest) rateLimit.set({ registry }, remaining);
      },
    });
  }
}
