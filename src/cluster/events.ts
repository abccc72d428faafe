// The API calls for pullguard's own Events (core/v1): create, read, replace. What to post, under
// which name and how often is the watch's (watch/events.ts); a 409 is an answer here, not an error.
import type { CoreV1Api, CoreV1Event, KubeConfig } from '@kubernetes/client-node';
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
      throw err;
    }
  }

  read(namespace: string, name: string): Promise<CoreV1Event> {
    return this.#api.readNamespacedEvent({ name, namespace }, this.#signal());
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
      throw err;
    }
  }
}

function conflict(err: unknown): boolean {
  return err instanceof clientNode().ApiException && err.code === 409;
}
