// The cluster's nodes as the engine needs them: which platforms they run and which images they
// report. Kept current with list + watch on nodes only (REQUIRED_ACCESS). A broken watch is
// re-established with back-off; nothing here throws into the process.
import type { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { apiErrorText, watchErrorEvent } from './api-errors.ts';
import { clientNode } from './k8s.ts';
import type { Logger } from 'pino';
import { normalize, type Platform } from '../platform/index.ts';
import { withSignal } from './signal.ts';

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

export interface NodeWatcherOptions {
  logger?: Logger;
  /** list page size (limit/continue) */
  pageSize?: number;
  /** base watch duration asked of the server; randomized up to twice this, as client-go does */
  watchTimeoutSeconds?: number;
  /** timeout for each list page */
  listTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** a watch that lived this long or delivered an event counts as healthy (resets the back-off) */
  healthyAfterMs?: number;
  /** keep the list current with a watch (default); false: list once and stop (a one-shot command) */
  watch?: boolean;
}

interface WatchOutcome {
  error?: unknown;
  /** 410 Expired: the resourceVersion is too old, a fresh list is needed */
  gone: boolean;
  events: number;
  rv: string;
  stopped: boolean;
}

// Loosely typed: the list gives V1Node instances, the watch plain JSON with the same field names.
export interface NodeLike {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> };
  status?: {
    nodeInfo?: { operatingSystem?: string; architecture?: string };
    images?: { names?: string[] }[];
  };
}

export class NodeWatcher {
  readonly #kc: KubeConfig;
  readonly #api: CoreV1Api;
  readonly #log: Logger | undefined;
  readonly #pageSize: number;
  readonly #watchTimeoutSeconds: number;
  readonly #listTimeoutMs: number;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #healthyAfterMs: number;
  readonly #watch: boolean;

  #nodes = new Map<string, NodeFacts>();
  #ready = false;
  #readyWaiters: (() => void)[] = [];
  #listeners = new Set<() => void>();
  #stop: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #platforms: PlatformCount[] | undefined;
  #watchController: AbortController | undefined;
  #lists = 0;
  #watches = 0;

  constructor(kc: KubeConfig, opts: NodeWatcherOptions = {}) {
    this.#kc = kc;
    this.#api = kc.makeApiClient(clientNode().CoreV1Api);
    this.#log = opts.logger;
    this.#pageSize = opts.pageSize ?? 500;
    this.#watchTimeoutSeconds = opts.watchTimeoutSeconds ?? 300;
    this.#listTimeoutMs = opts.listTimeoutMs ?? 30_000;
    this.#backoffInitialMs = opts.backoffInitialMs ?? 500;
    this.#backoffMaxMs = opts.backoffMaxMs ?? 30_000;
    this.#healthyAfterMs = opts.healthyAfterMs ?? 5_000;
    this.#watch = opts.watch ?? true;
  }

  /** true once the first full list has arrived */
  get ready(): boolean {
    return this.#ready;
  }

  /** how many lists and watches were started (for metrics and tests) */
  get stats(): { lists: number; watches: number } {
    return { lists: this.#lists, watches: this.#watches };
  }

  start(): void {
    if (this.#loop) return;
    const stop = new AbortController();
    this.#stop = stop;
    this.#loop = this.#run(stop.signal).catch((err: unknown) => {
      // #run handles its own errors; this is the last line of defence for the process.
      this.#log?.error({ err: errText(err) }, 'node watcher stopped unexpectedly');
    });
  }

  /** Stops watching; resolves when the loop has ended. The last known nodes stay readable. */
  async stop(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    this.#stop?.abort(); // also aborts the open watch
    await loop;
    this.#loop = undefined;
    this.#stop = undefined;
  }

  /** Resolves true when ready, false if the timeout comes first. */
  whenReady(timeoutMs?: number): Promise<boolean> {
    if (this.#ready) return Promise.resolve(true);
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
    return [...this.#nodes.values()];
  }

  /** Distinct os/architecture pairs with their node counts; nodes that report neither are left out. */
  /** Counted once per change of the node set, not per review (every review asks; clusters have thousands of nodes). */
  platforms(): readonly PlatformCount[] {
    return (this.#platforms ??= this.#countPlatforms());
  }

  #countPlatforms(): PlatformCount[] {
    const counts = new Map<string, PlatformCount>();
    for (const n of this.#nodes.values()) {
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
    for (const n of this.#nodes.values()) {
      for (const name of names) if (n.images.has(name)) return true;
    }
    return false;
  }

  async #run(stop: AbortSignal): Promise<void> {
    let rv: string | undefined;
    let failures = 0;
    while (!stop.aborted) {
      if (rv === undefined) {
        try {
          rv = await this.#list(stop);
        } catch (err) {
          if (stop.aborted) break;
          failures++;
          this.#log?.warn(
            { err: apiErrorText(err, { verb: 'list', what: 'nodes', timeoutMs: this.#listTimeoutMs }), failures },
            'listing nodes failed; retrying',
          );
          await this.#sleep(this.#backoff(failures), stop);
          continue;
        }
        if (!this.#watch) break;
      }
      const started = Date.now();
      const out = await this.#watchOnce(rv, stop);
      if (out.stopped || stop.aborted) break;
      rv = out.rv;
      const healthy = out.events > 0 || Date.now() - started >= this.#healthyAfterMs;
      if (out.error !== undefined) {
        // After an error the stream may have missed events: list again.
        rv = undefined;
        failures = healthy ? 1 : failures + 1;
        this.#log?.warn(
          { err: apiErrorText(out.error, { verb: 'watch', what: 'nodes' }), failures },
          'node watch failed; re-listing',
        );
      } else if (out.gone) {
        rv = undefined;
        failures = healthy ? 0 : failures + 1;
        this.#log?.debug('node watch expired (410); re-listing');
      } else {
        // A clean close is routine (the server's timeoutSeconds): watch on from where we were,
        // unless the streams keep closing at once.
        failures = healthy ? 0 : failures + 1;
        this.#log?.debug({ failures }, 'node watch closed; watching again');
      }
      if (failures > 0) await this.#sleep(this.#backoff(failures), stop);
    }
  }

  async #list(stop: AbortSignal): Promise<string> {
    this.#lists++;
    const fresh = new Map<string, NodeFacts>();
    let cont: string | undefined;
    let rv = '';
    do {
      const signal = AbortSignal.any([stop, AbortSignal.timeout(this.#listTimeoutMs)]);
      const page = await this.#api.listNode(
        { limit: this.#pageSize, ...(cont ? { _continue: cont } : {}) },
        withSignal(signal),
      );
      for (const item of page.items) {
        const facts = nodeFacts(item as NodeLike);
        if (facts) fresh.set(facts.name, facts);
      }
      rv = page.metadata?.resourceVersion ?? rv;
      cont = page.metadata?._continue || undefined;
    } while (cont);
    this.#nodes = fresh;
    this.#log?.debug({ nodes: fresh.size, resourceVersion: rv }, 'nodes listed');
    if (!this.#ready) {
      this.#ready = true;
      for (const w of this.#readyWaiters.splice(0)) w();
    }
    this.#changed();
    return rv;
  }

  #watchOnce(rv: string, stop: AbortSignal): Promise<WatchOutcome> {
    this.#watches++;
    return new Promise<WatchOutcome>((resolve) => {
      let events = 0;
      let latest = rv;
      let gone = false;
      let statusError: unknown;
      let settled = false;
      const finish = (out: Omit<WatchOutcome, 'events' | 'rv' | 'gone'>) => {
        if (settled) return;
        settled = true;
        stop.removeEventListener('abort', onStop);
        this.#watchController = undefined;
        resolve({ ...out, events, rv: latest, gone });
      };
      const onStop = () => {
        this.#watchController?.abort();
        finish({ stopped: true });
      };
      // stop() may come between the list and here: an aborted signal fires no more events.
      if (stop.aborted) return resolve({ stopped: true, events, rv: latest, gone });
      stop.addEventListener('abort', onStop, { once: true });

      const timeoutSeconds = Math.floor(this.#watchTimeoutSeconds * (1 + Math.random()));
      const watch = new (clientNode().Watch)(this.#kc);
      // client-node aborts a watch after 30s without data; nodes can be quiet far longer, so let
      // the server's timeoutSeconds end the stream and keep a dead-connection guard beyond it.
      (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = (timeoutSeconds + 60) * 1000;

      watch
        .watch(
          '/api/v1/nodes',
          { resourceVersion: rv || undefined, allowWatchBookmarks: true, timeoutSeconds },
          (type: string, obj: unknown) => {
            if (settled) return;
            if (type === 'ERROR') {
              const status = obj as { code?: number; reason?: string; message?: string } | undefined;
              if (status?.code === 410) gone = true;
              else statusError = watchErrorEvent(status, { verb: 'watch', what: 'nodes' });
              this.#watchController?.abort();
              return;
            }
            const node = obj as NodeLike | undefined;
            const objRv = node?.metadata?.resourceVersion;
            if (objRv) latest = objRv;
            if (type === 'BOOKMARK') return;
            events++;
            const name = node?.metadata?.name;
            if (type === 'DELETED') {
              if (name !== undefined && this.#nodes.delete(name)) this.#changed();
            } else if (type === 'ADDED' || type === 'MODIFIED') {
              const facts = nodeFacts(node);
              if (facts) {
                this.#nodes.set(facts.name, facts);
                this.#changed();
              }
            }
          },
          (err: unknown) => {
            // An abort we asked for after an ERROR event is not itself the error.
            if (gone) finish({ stopped: false });
            else finish({ error: statusError ?? err ?? undefined, stopped: false });
          },
        )
        .then((controller) => {
          if (settled || gone || statusError !== undefined) controller.abort();
          else this.#watchController = controller;
        })
        .catch((err: unknown) => finish({ error: err, stopped: false }));
    });
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

  #backoff(failures: number): number {
    const base = Math.min(this.#backoffMaxMs, this.#backoffInitialMs * 2 ** Math.min(failures - 1, 20));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  #sleep(ms: number, stop: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (stop.aborted) return resolve();
      const timer = setTimeout(() => {
        stop.removeEventListener('abort', onStop);
        resolve();
      }, ms);
      const onStop = () => {
        clearTimeout(timer);
        resolve();
      };
      stop.addEventListener('abort', onStop, { once: true });
    });
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
