// A bounded cache whose misses share one load: registry answers (the engine), Secrets and
// ServiceAccounts (the cluster reader) and registry tokens (the authenticator) all go through it.
// Each entry keeps its own lifetime. A hit is the value itself, not a promise of it, so work whose
// every step is cached runs to its end at once (`then` and `all` join such steps). A caller that
// gives up (its signal aborts) stops waiting at once; the shared load is aborted only when no caller
// is left waiting for it, and an aborted load is never cached.

import { LRUCache } from 'lru-cache';
import { raceAbort } from './abort.ts';

/** A value now, or a promise of it when it must be waited for. */
export type Maybe<T> = T | Promise<T>;

/** `f` of the value: at once when it is there, after it when it is a promise. */
export function then<T, U>(x: Maybe<T>, f: (v: T) => Maybe<U>): Maybe<U> {
  return x instanceof Promise ? x.then(f) : f(x);
}

/** Every value: at once when none is a promise. */
export function all<T>(xs: readonly Maybe<T>[]): Maybe<T[]> {
  for (const x of xs) if (x instanceof Promise) return Promise.all(xs);
  return xs as T[];
}

export interface CacheStats {
  hits: number;
  misses: number;
  /** callers that joined a load already under way */
  shared: number;
}

/** Who waits for a value: a signal, or something that makes one when asked (a Deadline), on a miss only. */
export type Caller = AbortSignal | { readonly signal?: AbortSignal | undefined };

interface Flight<V> {
  key: string;
  promise: Promise<V>;
  controller: AbortController;
  waiters: number;
}

interface Entry<V> {
  value: V;
  /** when it was stored, on the performance.now() clock */
  at: number;
}

export class SharedCache<V extends object> {
  readonly #lru: LRUCache<string, Entry<V>>;
  readonly #inflight = new Map<string, Flight<V>>();
  readonly stats: CacheStats = { hits: 0, misses: 0, shared: 0 };

  constructor(maxEntries: number) {
    this.#lru = new LRUCache<string, Entry<V>>({ max: maxEntries, ttlAutopurge: false, allowStale: false });
  }

  /**
   * The cached value (returned as is), a load already under way, or a new one: `load` gets a signal
   * that aborts when every caller waiting for it has given up. `ttl` decides how long a value is kept
   * (0: not at all). A value older than `maxAgeMs` is not served (a re-verification asks afresh).
   * Rejects with the signal's reason when the caller's signal aborts first.
   */
  get(
    key: string,
    load: (signal: AbortSignal) => Promise<V>,
    ttl: (v: V) => number,
    caller?: Caller,
    maxAgeMs?: number,
  ): Maybe<V> {
    const hit = this.#lru.get(key);
    if (hit !== undefined && (maxAgeMs === undefined || performance.now() - hit.at <= maxAgeMs)) {
      this.stats.hits++;
      return hit.value;
    }
    const signal = caller instanceof AbortSignal ? caller : caller?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let flight = this.#inflight.get(key);
    if (flight) {
      this.stats.shared++;
    } else {
      this.stats.misses++;
      flight = this.#start(key, load, ttl);
    }
    flight.waiters++;
    return signal ? this.#wait(flight, signal) : flight.promise;
  }

  #start(key: string, load: (signal: AbortSignal) => Promise<V>, ttl: (v: V) => number): Flight<V> {
    const controller = new AbortController();
    const flight: Flight<V> = { key, controller, waiters: 0, promise: undefined as unknown as Promise<V> };
    flight.promise = (async () => {
      try {
        const v = await load(controller.signal);
        const ms = controller.signal.aborted ? 0 : ttl(v);
        if (ms > 0) this.#lru.set(key, { value: v, at: performance.now() }, { ttl: ms });
        return v;
      } finally {
        if (this.#inflight.get(key) === flight) this.#inflight.delete(key);
      }
    })();
    // Every waiter may have left: a failure then has nobody to tell, and must not crash the process.
    flight.promise.catch(() => undefined);
    this.#inflight.set(key, flight);
    return flight;
  }

  #wait(flight: Flight<V>, signal: AbortSignal): Promise<V> {
    return raceAbort(flight.promise, signal, () => {
      flight.waiters--;
      if (flight.waiters === 0) {
        // Nobody wants the answer any more: stop the work, and let the next caller start afresh.
        if (this.#inflight.get(flight.key) === flight) this.#inflight.delete(flight.key);
        flight.controller.abort(signal.reason);
      }
    });
  }

  /** The cached value now (a load under way is none yet), without counting it. */
  peek(key: string): V | undefined {
    return this.#lru.get(key)?.value;
  }

  delete(key: string): void {
    this.#lru.delete(key);
  }

  get size(): number {
    return this.#lru.size;
  }

  clear(): void {
    this.#lru.clear();
  }
}
