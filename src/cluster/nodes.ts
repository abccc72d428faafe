// The cluster's nodes as the engine needs them: which platforms they run and which images they
// report. Kept current with list + watch on nodes only (REQUIRED_ACCESS). A broken watch is
// re-established with back-off; nothing here throws into the process.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { normalize, type Platform } from '../platform/index.ts';
import { ListWatch, type ListWatchOptions } from './list-watch.ts';

export interface NodeFacts {
  name: string;
  /** status.nodeInfo.operatingSystem, else the kubernetes.io/os label, else '' */
  os: string;
  /** status.nodeInfo.architecture, else the kubernetes.io/arch label, else '' */
  architecture: string;
  /** every name in status.images (capped by the kubelet, so only a hint) */
  images: Set<string>;
}

export interface PlatformCount {
  os: string;
  architecture: string;
  nodes: number;
}

/** list page size, watch duration, back-off; `watch: false` lists once and stops (a one-shot command) */
export type NodeWatcherOptions = Omit<ListWatchOptions<NodeFacts>, 'path' | 'what' | 'project' | 'key'>;

// Loosely typed: a node as parsed JSON, the fields nodeFacts reads.
export interface NodeLike {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> };
  status?: {
    nodeInfo?: { operatingSystem?: string; architecture?: string };
    images?: { names?: string[] }[];
  };
}

export class NodeWatcher {
  readonly #nodes: ListWatch<NodeFacts>;
  readonly #log: Logger | undefined;
  #readyWaiters: (() => void)[] = [];
  #listeners = new Set<() => void>();
  #platforms: PlatformCount[] | undefined;

  constructor(kc: KubeConfig, opts: NodeWatcherOptions = {}) {
    this.#log = opts.logger;
    this.#nodes = new ListWatch(kc, {
      ...opts,
      path: '/api/v1/nodes',
      what: 'nodes',
      project: (object) => nodeFacts(object as NodeLike),
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

  start(): void {
    this.#nodes.start({
      listed: () => {
        for (const w of this.#readyWaiters.splice(0)) w();
        this.#changed();
      },
      changed: () => this.#changed(),
      deleted: () => this.#changed(),
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

  /** Distinct os/architecture pairs with their node counts; nodes that report neither are left out. */
  /** Counted once per change of the node set, not per review (every review asks; clusters have thousands of nodes). */
  platforms(): readonly PlatformCount[] {
    return (this.#platforms ??= this.#countPlatforms());
  }

  #countPlatforms(): PlatformCount[] {
    const counts = new Map<string, PlatformCount>();
    for (const n of this.#nodes.items.values()) {
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

  /** true if any node reports any of the given names in status.images */
  imageOnAnyNode(names: string[]): boolean {
    if (names.length === 0) return false;
    for (const n of this.#nodes.items.values()) {
      for (const name of names) if (n.images.has(name)) return true;
    }
    return false;
  }

  #changed(): void {
    this.#platforms = undefined;
    for (const l of this.#listeners) {
      try {
        l();
      } catch (err) {
        this.#log?.warn({ err: errText(err) }, 'node change listener threw');
      }
    }
  }
}

/**
 * What pullguard reads of a node, the one place its platform is worked out: status.nodeInfo as the
 * kubelet reports it, else the kubernetes.io/os and kubernetes.io/arch labels. The node watch and
 * the reads for a diagnosis both come here.
 */
export function nodeFacts(node: NodeLike | undefined): NodeFacts | undefined {
  const name = node?.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  const labels = node?.metadata?.labels ?? {};
  const info = node?.status?.nodeInfo;
  const images = new Set<string>();
  for (const img of node?.status?.images ?? []) {
    for (const n of img.names ?? []) images.add(n);
  }
  return {
    name,
    os: info?.operatingSystem || labels['kubernetes.io/os'] || '',
    architecture: info?.architecture || labels['kubernetes.io/arch'] || '',
    images,
  };
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
