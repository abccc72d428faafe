// Reads for `pullguard diagnose`: pods (named, by namespace or everywhere, with a label selector),
// the events about one pod (the involvedObject field selector, as `kubectl describe` asks) and the
// node a pod is bound to. Everything is one bounded request at a time; failures say what was read.
// A list keeps, page by page, only the pods the caller asks for, and only their projection
// (projections.ts): `diagnose -A` of a large cluster holds a few pages' stuck pods, not the cluster.
import type { KubeConfig } from '@kubernetes/client-node';
import { LIVE_PODS } from './all-pods.ts';
import { PODS, type WatchedPod, type NodeFacts, type NodeLike, nodeFacts } from './projections.ts';
import { type KubeApiError, kubeApiError } from './api-errors.ts';
import { getObject, listPages } from './list-watch.ts';
import type { ProjectedPage, Projection } from './page-split.ts';

/** A pod as the API server sends it (parsed JSON), with the fields a diagnosis starts from. */
export interface PodObject {
  metadata?: { namespace?: string; name?: string; uid?: string };
  spec?: object & { nodeName?: string };
  status?: object;
}

const NODE_TTL_MS = 30_000;
const MAX_NODES = 5_000;
const PAGE_SIZE = 500;

export class PodReader {
  readonly #kc: KubeConfig;
  readonly #timeoutMs: number;
  readonly #nodes = new Map<string, { at: number; node: Promise<NodeFacts | undefined> }>();
  /** the nodes' repeated strings (image names, labels) held once; emptied with the nodes */
  readonly #strings = new Map<string, string>();
  readonly #pool = {
    intern: (s: string): string => {
      const held = this.#strings.get(s);
      if (held !== undefined) return held;
      this.#strings.set(s, s);
      return s;
    },
  };

  constructor(kc: KubeConfig, timeoutMs = 10_000) {
    this.#kc = kc;
    this.#timeoutMs = timeoutMs;
  }

  /** A failed read as the KubeApiError it is, in one line (api-errors.ts). */
  #failure(err: unknown, verb: string, what: string): KubeApiError {
    return kubeApiError(err, { verb, what, timeoutMs: this.#timeoutMs });
  }

  async pod(namespace: string, name: string): Promise<PodObject> {
    try {
      const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
      return (await getObject(this.#kc, path, {}, AbortSignal.timeout(this.#timeoutMs))) as PodObject;
    } catch (err) {
      throw this.#failure(err, 'get', `pod "${name}" in namespace "${namespace}"`);
    }
  }

  /**
   * The pods of a namespace (undefined: all namespaces) that the projection keeps (projections.ts:
   * PODS, STUCK_PODS), a page at a time (at most 500 a page, about a MiB of JSON: list-watch.ts);
   * the others are let go in the page worker. Pages come in the API server's order: by namespace,
   * then name.
   */
  async *pages(
    namespace: string | undefined,
    labelSelector?: string,
    which: Projection<WatchedPod> = PODS,
  ): AsyncGenerator<WatchedPod[]> {
    const where = namespace ? `pods in namespace "${namespace}"` : 'pods in all namespaces';
    const path = namespace ? `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods` : '/api/v1/pods';
    const pages = listPages(this.#kc, path, which, {
      // a pod that has ended pulls nothing again: none of them is stuck
      query: { fieldSelector: LIVE_PODS, ...(labelSelector ? { labelSelector } : {}) },
      pageSize: PAGE_SIZE,
      timeoutMs: this.#timeoutMs,
    });
    for (;;) {
      let page: IteratorResult<ProjectedPage<WatchedPod>>;
      try {
        page = await pages.next();
      } catch (err) {
        throw this.#failure(err, 'list', where);
      }
      if (page.done) return;
      yield page.value.items;
    }
  }

  /** The events about one pod (any source: the kubelet's, the scheduler's, pullguard's). */
  async events(namespace: string, pod: string, uid?: string): Promise<unknown[]> {
    const fieldSelector = [
      `involvedObject.kind=Pod`,
      `involvedObject.name=${pod}`,
      `involvedObject.namespace=${namespace}`,
      ...(uid ? [`involvedObject.uid=${uid}`] : []),
    ].join(',');
    try {
      const list = await getObject(
        this.#kc,
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`,
        { fieldSelector },
        AbortSignal.timeout(this.#timeoutMs),
      );
      const items = (list as { items?: unknown } | null)?.items;
      return Array.isArray(items) ? items : [];
    } catch (err) {
      throw this.#failure(err, 'list', `events of pod "${pod}" in namespace "${namespace}"`);
    }
  }

  /**
   * What the node reports (its platform, its images), or undefined when it cannot be read (a
   * diagnosis goes on without its platform). Kept for NODE_TTL_MS: `diagnose -A` and a watch round
   * ask once per node, not once per stuck pod.
   */
  node(name: string): Promise<NodeFacts | undefined> {
    const now = performance.now();
    const kept = this.#nodes.get(name);
    if (kept && now - kept.at < NODE_TTL_MS) return kept.node;
    if (this.#nodes.size >= MAX_NODES) {
      this.#nodes.clear();
      this.#strings.clear();
    }
    // as parsed JSON, not client-node's typed model: a node is ~12 KB, and only its facts are kept,
    // their strings held once for all nodes (images repeat from node to node)
    const node = getObject(
      this.#kc,
      `/api/v1/nodes/${encodeURIComponent(name)}`,
      {},
      AbortSignal.timeout(this.#timeoutMs),
    ).then(
      (n) => nodeFacts(n as NodeLike, this.#pool),
      () => undefined,
    );
    this.#nodes.set(name, { at: now, node });
    return node;
  }
}
