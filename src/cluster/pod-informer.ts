// Every pod in the cluster, kept current with client-node's informer (list, then watch): the watch's
// view of stuck pulls and bare pods. A failed watch is started again after retryMs; nothing here
// throws into the process. What a change means is the watch's (watch/pods.ts).
import type { Informer, KubeConfig, ObjectCache, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { type ApiCall, apiErrorText } from './api-errors.ts';
import { clientNode } from './k8s.ts';

/** The informer lists all pods, then watches them: a failure of either, in words (api-errors.ts). */
const PODS: ApiCall = { verb: 'list and watch', what: 'pods in all namespaces' };

export interface PodChanges {
  /** a pod was added or changed */
  changed: (pod: V1Pod) => void;
  deleted: (pod: V1Pod) => void;
}

export interface PodInformerOptions {
  logger?: Logger;
  /** restart delay after the watch fails */
  retryMs?: number;
}

export class PodInformer {
  readonly #kc: KubeConfig;
  readonly #opts: PodInformerOptions;
  #informer: (Informer<V1Pod> & ObjectCache<V1Pod>) | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  #ready = false;

  constructor(kc: KubeConfig, opts: PodInformerOptions = {}) {
    this.#kc = kc;
    this.#opts = opts;
  }

  /** true once the watch has connected */
  get ready(): boolean {
    return this.#ready;
  }

  start(on: PodChanges): void {
    const { CoreV1Api, makeInformer } = clientNode();
    const api = this.#kc.makeApiClient(CoreV1Api);
    const informer = makeInformer(this.#kc, '/api/v1/pods', () => api.listPodForAllNamespaces());
    informer.on('add', on.changed);
    informer.on('update', on.changed);
    informer.on('delete', on.deleted);
    informer.on('connect', () => {
      this.#ready = true;
    });
    informer.on('error', (err: unknown) => {
      this.#opts.logger?.warn({ err: apiErrorText(err, PODS) }, 'pod watch failed; restarting');
      if (this.#stopped) return;
      this.#retry = setTimeout(() => void informer.start().catch(() => undefined), this.#opts.retryMs ?? 5_000);
    });
    this.#informer = informer;
    void informer.start().catch((err: unknown) => {
      this.#opts.logger?.warn({ err: apiErrorText(err, PODS) }, 'pod watch could not start');
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    await this.#informer?.stop();
  }

  /** Every pod the informer holds. */
  list(): readonly V1Pod[] {
    return this.#informer?.list() ?? [];
  }
}
