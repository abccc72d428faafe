// The cluster's nodes as the engine needs them: which platforms they run, where a pod may land
// (labels, taints) and which images they report. Kept current with list + watch on nodes only (REQUIRED_ACCESS). A broken watch is
// re-established with back-off; nothing here throws into the process.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { normalize, type Platform } from '../platform/index.ts';
import { fits, type Placement } from '../placement/placement.ts';
import { ListWatch, type ListWatchOptions } from './list-watch.ts';
import { NODE_FACTS, type NodeFacts, pooled } from './projections.ts';

export interface PlatformCount {
  os: string;
  architecture: string;
  nodes: number;
}

/** list page size, watch duration, back-off; `watch: false` lists once and stops (a one-shot command) */
export type NodeWatcherOptions = Omit<ListWatchOptions<NodeFacts>, 'path' | 'what' | 'projection' | 'adopt' | 'key'>;

/** Distinct placements remembered per version of the nodes' placement facts (a review asks for its pod's). */
const MAX_PLACEMENTS = 512;

export class NodeWatcher {
  readonly #nodes: ListWatch<NodeFacts>;
  readonly #log: Logger | undefined;
  readonly #pool = new Interner();
  #readyWaiters: (() => void)[] = [];
  #listeners = new Set<() => void>();
  #platforms: PlatformCount[] | undefined;
  /** platforms per placement key, for the current placement facts (cleared when they change) */
  #placed = new Map<string, readonly PlatformCount[]>();

  constructor(kc: KubeConfig, opts: NodeWatcherOptions = {}) {
    this.#log = opts.logger;
    this.#nodes = new ListWatch(kc, {
      ...opts,
      path: '/api/v1/nodes',
      what: 'nodes',
      projection: NODE_FACTS,
      // every repeated string held once for all nodes
      adopt: (node) => pooled(node, this.#pool),
      key: (node) => node.name,
    });
  }

  /** true once the first full list has arrived */
  get ready(): boolean {
    return this.#nodes.ready;
  }

  /** how many lists and watches were started (for metrics and tests) */
  get stats(): { lists: number; watches: number } {
    return this.#nodes.stats;
  }

  /** distinct image names and label strings held once for all nodes (tests, benchmarks) */
  get interned(): number {
    return this.#pool.size;
  }

  start(): void {
    this.#nodes.start({
      listed: () => {
        this.#pool.recount(this.#nodes.items.values());
        for (const w of this.#readyWaiters.splice(0)) w();
        this.#changed(true);
      },
      changed: (node, previous) => {
        if (previous) this.#pool.release(previous);
        this.#pool.hold(node);
        this.#changed(!previous || placementChanged(previous, node));
      },
      deleted: (node) => {
        this.#pool.release(node);
        this.#changed(true);
      },
    });
  }

  /** Stops watching; resolves when the loop has ended. The last known nodes stay readable. */
  stop(): Promise<void> {
    return this.#nodes.close();
  }

  /** Resolves true when ready, false if the timeout comes first. */
  whenReady(timeoutMs?: number): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = () => {
        if (timer) clearTimeout(timer);
        resolve(true);
      };
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.#readyWaiters = this.#readyWaiters.filter((w) => w !== waiter);
              resolve(false);
            }, timeoutMs);
      this.#readyWaiters.push(waiter);
    });
  }

  /** Called after every change (list or event); returns an unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  nodes(): NodeFacts[] {
    return [...this.#nodes.items.values()];
  }

  /**
   * Distinct os/architecture pairs with their node counts, of the nodes a pod with this placement
   * may land on (a pod with none still keeps off tainted nodes; no placement given: every node);
   * nodes that report neither are left out. Counted once per
   * distinct placement and change of the nodes' placement facts, not per review (clusters have
   * thousands of nodes; most pods share a few placements).
   */
  platforms(placement?: Placement): readonly PlatformCount[] {
    if (!placement) return (this.#platforms ??= countPlatforms(this.#nodes.items.values()));
    let counted = this.#placed.get(placement.key);
    if (!counted) {
      if (this.#placed.size >= MAX_PLACEMENTS) this.#placed.clear();
      counted = countPlatforms(this.#fitting(placement));
      this.#placed.set(placement.key, counted);
    }
    return counted;
  }

  *#fitting(placement: Placement): Iterable<NodeFacts> {
    for (const n of this.#nodes.items.values()) if (fits(placement, n)) yield n;
  }

  /** true if any node reports any of the given names in status.images */
  imageOnAnyNode(names: string[]): boolean {
    return names.some((n) => this.#pool.imageHeld(n));
  }

  /** `placement`: whether labels, taints or platforms may have changed (node added, gone, relabelled). */
  #changed(placement: boolean): void {
    if (placement) {
      this.#platforms = undefined;
      this.#placed.clear();
    }
    for (const l of this.#listeners) {
      try {
        l();
      } catch (err) {
        this.#log?.warn({ err: errText(err) }, 'node change listener threw');
      }
    }
  }
}

function countPlatforms(nodes: Iterable<NodeFacts>): PlatformCount[] {
  const counts = new Map<string, PlatformCount>();
  for (const n of nodes) {
    if (n.os === '' && n.architecture === '') continue;
    const key = `${n.os}/${n.architecture}`;
    const c = counts.get(key);
    if (c) c.nodes++;
    else counts.set(key, { os: n.os, architecture: n.architecture, nodes: 1 });
  }
  return [...counts.values()].sort(
    (a, b) => b.nodes - a.nodes || `${a.os}/${a.architecture}`.localeCompare(`${b.os}/${b.architecture}`),
  );
}

function placementChanged(a: NodeFacts, b: NodeFacts): boolean {
  if (a.os !== b.os || a.architecture !== b.architecture || a.taints.length !== b.taints.length) return true;
  for (let i = 0; i < a.taints.length; i++) {
    const x = a.taints[i]!;
    const y = b.taints[i]!;
    if (x.key !== y.key || x.value !== y.value || x.effect !== y.effect) return true;
  }
  const ka = Object.keys(a.labels);
  if (ka.length !== Object.keys(b.labels).length) return true;
  return ka.some((k) => a.labels[k] !== b.labels[k]);
}

/**
 * Strings many nodes repeat (image names, label keys and values, taints) held once, each with how
 * many nodes refer to it and, for image names, how many nodes report the image: a node keeps
 * references, and "is this image on any node" is one lookup. Strings no node refers to any more
 * are dropped once they are as many as the rest, so the pool follows the cluster's size, not its
 * history (projections of objects never held, such as a deleted node's last state, end there too).
 */
class Interner {
  readonly #strings = new Map<string, { s: string; refs: number; images: number }>();
  #live = 0;

  get size(): number {
    return this.#strings.size;
  }

  intern(s: string): string {
    const entry = this.#strings.get(s);
    if (entry) return entry.s;
    this.#strings.set(s, { s, refs: 0, images: 0 });
    return s;
  }

  imageHeld(name: string): boolean {
    return (this.#strings.get(name)?.images ?? 0) > 0;
  }

  hold(node: NodeFacts): void {
    this.#add(node, 1);
    if (this.#strings.size >= 2 * this.#live + 4096) {
      for (const [s, entry] of this.#strings) if (entry.refs === 0) this.#strings.delete(s);
    }
  }

  release(node: NodeFacts): void {
    this.#add(node, -1);
  }

  /** After a full list: the counts of exactly these nodes, and only their strings kept. */
  recount(nodes: Iterable<NodeFacts>): void {
    for (const entry of this.#strings.values()) entry.refs = entry.images = 0;
    this.#live = 0;
    for (const n of nodes) this.#add(n, 1);
    for (const [s, entry] of this.#strings) if (entry.refs === 0) this.#strings.delete(s);
  }

  #add(node: NodeFacts, by: 1 | -1): void {
    for (const [k, v] of Object.entries(node.labels)) {
      this.#count(k, by, false);
      this.#count(v, by, false);
    }
    for (const t of node.taints) {
      this.#count(t.key, by, false);
      if (t.value !== undefined) this.#count(t.value, by, false);
    }
    for (const name of node.images) this.#count(name, by, true);
  }

  #count(s: string, by: 1 | -1, image: boolean): void {
    const entry = this.#strings.get(s);
    if (!entry || (by < 0 && entry.refs === 0)) return;
    if (entry.refs === 0) this.#live++;
    entry.refs += by;
    if (entry.refs === 0) this.#live--;
    if (image) entry.images = Math.max(0, entry.images + by);
  }
}

/** The node's platform in canonical form (arm64 nodes run v8); undefined when it reports no os or architecture. */
export function nodePlatform(node: Pick<NodeFacts, 'os' | 'architecture'>): Platform | undefined {
  if (!node.os || !node.architecture) return undefined;
  try {
    return normalize({ os: node.os, architecture: node.architecture });
  } catch {
    return undefined;
  }
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown; statusCode?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    return code !== undefined ? `${err.name}: ${err.message} (${String(code)})` : `${err.name}: ${err.message}`;
  }
  return String(err);
}
