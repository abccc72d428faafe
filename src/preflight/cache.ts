// The engine's memory of registry answers: bounded (LRU), each entry with its own lifetime, and
// concurrent asks for the same key sharing one request. Keys carry the credential identity, so an
// answer obtained with one tenant's credentials is never served to a pod presenting others.

import { LRUCache } from 'lru-cache';

export interface CacheStats {
  hits: number;
  misses: number;
  shared: number;
}

export class AnswerCache<V extends object> {
  private readonly lru: LRUCache<string, V>;
  private readonly inflight = new Map<string, Promise<V>>();
  readonly stats: CacheStats = { hits: 0, misses: 0, shared: 0 };

  constructor(maxEntries: number) {
    this.lru = new LRUCache<string, V>({ max: maxEntries, ttlAutopurge: false, allowStale: false });
  }

  /** The cached value, a request already under way, or a new one made by `load`; `ttl` decides how long to keep it (0: not at all). */
  async get(key: string, load: () => Promise<V>, ttl: (v: V) => number): Promise<V> {
    const hit = this.lru.get(key);
    if (hit !== undefined) {
      this.stats.hits++;
      return hit;
    }
    const running = this.inflight.get(key);
    if (running) {
      this.stats.shared++;
      return running;
    }
    this.stats.misses++;
    const p = load()
      .then((v) => {
        const ms = ttl(v);
        if (ms > 0) this.lru.set(key, v, { ttl: ms });
        return v;
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  peek(key: string): V | undefined {
    return this.lru.get(key);
  }

  get size(): number {
    return this.lru.size;
  }

  clear(): void {
    this.lru.clear();
  }
}
