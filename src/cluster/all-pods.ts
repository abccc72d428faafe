// Every pod in the cluster, kept current with list-watch.ts: the watch's view of stuck pulls and
// bare pods. Each pod is kept as a WatchedPod, the few fields the watch and its diagnosis read
// (who it is, its node and owner, its containers' images and waiting states, its pull secrets),
// in the pod's own shape so the diagnosis reads it as it reads a pod from the API; never the
// whole object (managedFields, env, resources, probes… of every pod would dwarf the rest).
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ListWatch } from './list-watch.ts';
import type { Projection } from './page-split.ts';
import { PODS, podUid, type WatchedPod } from './projections.ts';

export interface PodChanges {
  /** after each (re)list: every pod held now (those gone are no longer in pods()) */
  listed: () => void;
  /** a pod was added or changed */
  changed: (pod: WatchedPod) => void;
  deleted: (pod: WatchedPod) => void;
}

export interface AllPodsOptions {
  logger?: Logger;
  /**
   * Which pods are held (the watch: WATCHED_PODS, stuck ones and bare ones); the others are parsed,
   * looked at and let go, so that memory follows the pods that need attention, not the cluster's
   * size. A held pod that stops being kept is let go (told as deleted). Default: every pod.
   */
  which?: Projection<WatchedPod>;
  pageSize?: number;
  /** the first list waits a random time up to this (ms): replicas do not all list at once */
  startJitterMs?: number;
  random?: () => number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

/**
 * Pods that may still pull: a pod that Succeeded or Failed never starts a container again, so it is
 * neither stuck nor worth re-verifying, and the API server leaves it out (completed Jobs' pods are
 * often most of a cluster's). A pod that ends leaves the watch as a deletion.
 */
export const LIVE_PODS = 'status.phase!=Succeeded,status.phase!=Failed';

export class AllPods {
  readonly #pods: ListWatch<WatchedPod>;

  constructor(kc: KubeConfig, opts: AllPodsOptions = {}) {
    const { which = PODS, ...rest } = opts;
    this.#pods = new ListWatch(kc, {
      ...rest,
      path: '/api/v1/pods',
      what: 'pods in all namespaces',
      fieldSelector: LIVE_PODS,
      projection: which,
      key: (pod) => pod.metadata.uid,
      keyOf: podUid,
    });
  }

  /** true once the first list has arrived */
  get ready(): boolean {
    return this.#pods.ready;
  }

  get stats(): { lists: number; watches: number; startDelayMs: number } {
    return this.#pods.stats;
  }

  start(on: PodChanges): void {
    this.#pods.start(on);
  }

  stop(): Promise<void> {
    return this.#pods.close();
  }

  /** Every pod held. */
  list(): WatchedPod[] {
    return [...this.#pods.items.values()];
  }

  /** Whether a pod (by uid) is held. */
  has(uid: string): boolean {
    return this.#pods.items.has(uid);
  }
}
