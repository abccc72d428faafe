// Reads for `pullguard diagnose`: pods (named, by namespace or everywhere, with a label selector),
// the events about one pod (the involvedObject field selector, as `kubectl describe` asks) and the
// node a pod is bound to. Everything is one bounded request at a time; failures say what was read.
// A list keeps, page by page, only the pods the caller asks for, and only their projection
// (all-pods.ts): `diagnose -A` of a large cluster holds its stuck pods, not the cluster.
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { LIVE_PODS, type WatchedPod, watchedPod } from './all-pods.ts';
import { type KubeApiError, kubeApiError } from './api-errors.ts';
import { getCollection, nextLimit } from './list-watch.ts';
import { PageSplitter } from './page-split.ts';
import { type NodeFacts, type NodeLike, nodeFacts } from './nodes.ts';
import { withSignal } from './signal.ts';

const NODE_TTL_MS = 30_000;
const MAX_NODES = 5_000;
const PAGE_SIZE = 500;

export class PodReader {
  readonly #api: CoreV1Api;
  readonly #kc: KubeConfig;
  readonly #timeoutMs: number;
  readonly #nodes = new Map<string, { at: number; node: Promise<NodeFacts | undefined> }>();

  constructor(kc: KubeConfig, timeoutMs = 10_000) {
    this.#api = kc.makeApiClient(CoreV1Api);
    this.#kc = kc;
    this.#timeoutMs = timeoutMs;
  }

  #opts() {
    return withSignal(AbortSignal.timeout(this.#timeoutMs));
  }

  /** A failed read as the KubeApiError it is, in one line (api-errors.ts). */
  #failure(err: unknown, verb: string, what: string): KubeApiError {
    return kubeApiError(err, { verb, what, timeoutMs: this.#timeoutMs });
  }

  async pod(namespace: string, name: string): Promise<V1Pod> {
    try {
      return await this.#api.readNamespacedPod({ name, namespace }, this.#opts());
    } catch (err) {
      throw this.#failure(err, 'get', `pod "${name}" in namespace "${namespace}"`);
    }
  }

  /**
   * The pods of a namespace (undefined: all namespaces) that `keep` accepts, page by page (at most
   * 500 a page, about a MiB of JSON: list-watch.ts nextLimit), each as its projection; the others
   * are let go with their page.
   */
  async pods(
    namespace: string | undefined,
    labelSelector?: string,
    keep: (pod: WatchedPod) => boolean = () => true,
  ): Promise<WatchedPod[]> {
    const out: WatchedPod[] = [];
    let cont: string | undefined;
    const where = namespace ? `pods in namespace "${namespace}"` : 'pods in all namespaces';
    const path = namespace ? `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods` : '/api/v1/pods';
    // Parsed in a worker, item by item here: a page's whole object tree never lands on this heap.
    const splitter = new PageSplitter();
    let limit = Math.min(50, PAGE_SIZE);
    try {
      do {
        const query = {
          // a pod that has ended pulls nothing again: none of them is stuck
          fieldSelector: LIVE_PODS,
          limit: String(limit),
          ...(cont ? { continue: cont } : {}),
          ...(labelSelector ? { labelSelector } : {}),
        };
        const signal = AbortSignal.timeout(this.#timeoutMs);
        try {
          const body = await getCollection(this.#kc, path, query, signal);
          const bytes = await body.arrayBuffer();
          const size = bytes.byteLength;
          const page = await splitter.split(bytes, signal);
          limit = nextLimit(limit, page.items.length, size, PAGE_SIZE);
          for (const text of page.items) {
            const pod = watchedPod(JSON.parse(text));
            if (pod && keep(pod)) out.push(pod);
          }
          cont = page.continue || undefined;
        } catch (err) {
          throw this.#failure(err, 'list', where);
        }
      } while (cont);
    } finally {
      await splitter.close();
    }
    return out;
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
      const list = await this.#api.listNamespacedEvent({ namespace, fieldSelector }, this.#opts());
      return list.items;
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
    if (this.#nodes.size >= MAX_NODES) this.#nodes.clear();
    const node = this.#api.readNode({ name }, this.#opts()).then(
      (n) => nodeFacts(n as NodeLike),
      () => undefined,
    );
    this.#nodes.set(name, { at: now, node });
    return node;
  }
}
