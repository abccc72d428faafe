// The API calls for pullguard's own Events (core/v1): create, read, replace. What to post, under
// which name and how often is the watch's (watch/events.ts); a 409 is an answer here, not an error.
import type { CoreV1Api, CoreV1Event, KubeConfig } from '@kubernetes/client-node';
import { type ApiCall, apiStatus, kubeApiError } from './api-errors.ts';
import { clientNode } from './k8s.ts';
import { withSignal } from './signal.ts';

export type { CoreV1Event };

export class EventApi {
  readonly #api: CoreV1Api;
  readonly #timeoutMs: number;

  constructor(kc: KubeConfig, timeoutMs = 10_000) {
    this.#api = kc.makeApiClient(clientNode().CoreV1Api);
    this.#timeoutMs = timeoutMs;
  }

  #signal() {
    return withSignal(AbortSignal.timeout(this.#timeoutMs));
  }

  /** Creates the Event; false when one of its name exists already (another replica's, or ours from before). */
  async create(event: CoreV1Event): Promise<boolean> {
    const namespace = event.metadata?.namespace ?? '';
    try {
      await this.#api.createNamespacedEvent({ namespace, body: event }, this.#signal());
      return true;
    } catch (err) {
      if (conflict(err)) return false;
      throw kubeApiError(err, call('create', namespace, event.metadata?.name ?? ''));
    }
  }

  async read(namespace: string, name: string): Promise<CoreV1Event> {
    try {
      return await this.#api.readNamespacedEvent({ name, namespace }, this.#signal());
    } catch (err) {
      throw kubeApiError(err, call('get', namespace, name));
    }
  }

  /** Replaces an Event read before (its resourceVersion); false when another writer changed it first. */
  async replace(event: CoreV1Event): Promise<boolean> {
    const namespace = event.metadata?.namespace ?? '';
    const name = event.metadata?.name ?? '';
    try {
      await this.#api.replaceNamespacedEvent({ name, namespace, body: event }, this.#signal());
      return true;
    } catch (err) {
      if (conflict(err)) return false;
      throw kubeApiError(err, call('update', namespace, name));
    }
  }
}

/** A failed call in words (api-errors.ts). */
function call(verb: string, namespace: string, name: string): ApiCall {
  return { verb, what: `Event "${name}" in namespace "${namespace}"`, namespace };
}

function conflict(err: unknown): boolean {
  return apiStatus(err) === 409;
}
