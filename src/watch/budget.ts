// The watch's registry budget: requests per registry and for all registries together, in one round
// (re-verification) or one interval (diagnosis). Every count and every rate-limit figure is keyed by
// the host as connected (connectedHost): `127.1:5000`, `2130706433:5000` and `127.0.0.1:05000` are
// one registry and share one count; names that resolve to one address do not, which the cap over
// all hosts bounds.
import { connectedHost } from '../registry/hosts.ts';

export interface BudgetOptions {
  /** requests per registry host */
  perRegistry: number;
  /** requests to all hosts together (token servers included) */
  total: number;
  /** stop asking a registry whose reported remaining pulls fall below this */
  rateLimitThreshold: number;
  /** the rate-limit figures registries reported last (the registry clients' rateLimits) */
  rateLimits: () => Iterable<{ host: string; remaining: number }>;
  /** counts start again after this long (none: only at reset()) */
  windowMs?: number;
  now?: () => number;
}

export class RequestBudget {
  readonly #opts: BudgetOptions;
  /** requests made, per connected host, since the last reset */
  #spent = new Map<string, number>();
  #total = 0;
  /** checks under way that were let through: each holds one request's place until it ends */
  readonly #pending = new Map<string, number>();
  #pendingTotal = 0;
  /** registries that answered "rate limited": not asked again until the next reset */
  #stopped = new Set<string>();
  #since: number;

  constructor(opts: BudgetOptions) {
    this.#opts = opts;
    this.#since = this.#now();
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }

  /** Counts start again (a new round). */
  reset(): void {
    this.#spent = new Map();
    this.#total = 0;
    this.#stopped = new Set();
    this.#since = this.#now();
  }

  #roll(): void {
    if (this.#opts.windowMs !== undefined && this.#now() - this.#since >= this.#opts.windowMs) this.reset();
  }

  /** A request went to `host` (the registry client's onResponse/onFailure: url.host). */
  spend(host: string): void {
    this.#roll();
    const key = connectedHost(host);
    this.#spent.set(key, (this.#spent.get(key) ?? 0) + 1);
    this.#total++;
  }

  /** Requests to `host` since the last reset. */
  spentOn(host: string): number {
    return this.#spent.get(connectedHost(host)) ?? 0;
  }

  /** Requests to all hosts since the last reset. */
  get total(): number {
    return this.#total;
  }

  /** Whether a check of an image from `host` (the reference's registry host) may ask it now. */
  allows(host: string): boolean {
    this.#roll();
    const key = connectedHost(host);
    if (this.#stopped.has(key)) return false;
    if (this.#total + this.#pendingTotal >= this.#opts.total) return false;
    if ((this.#spent.get(key) ?? 0) + (this.#pending.get(key) ?? 0) >= this.#opts.perRegistry) return false;
    for (const r of this.#opts.rateLimits())
      if (r.remaining < this.#opts.rateLimitThreshold && connectedHost(r.host) === key) return false;
    return true;
  }

  /**
   * Takes a place for one check of an image from `host`; undefined when the budget is spent. Call
   * the returned function when the check ended (its requests are counted by then).
   */
  take(host: string): (() => void) | undefined {
    if (!this.allows(host)) return undefined;
    const key = connectedHost(host);
    this.#pending.set(key, (this.#pending.get(key) ?? 0) + 1);
    this.#pendingTotal++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.#pending.get(key) ?? 1) - 1;
      if (left > 0) this.#pending.set(key, left);
      else this.#pending.delete(key);
      this.#pendingTotal--;
    };
  }

  /** `host` answered "rate limited": leave it alone until the next reset. */
  stop(host: string): void {
    this.#stopped.add(connectedHost(host));
  }
}
