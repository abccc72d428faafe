// The API calls for the watch's Lease (coordination.k8s.io/v1), as client-go's LeaseLock makes them:
// get keeps the object it read, update replaces that object (its resourceVersion: of two replicas
// racing, one wins), and a 404 or a 409 is an answer, not an error. Who leads is decided in
// watch/lease.ts; here a leader record is only read and written.
import type { CoordinationV1Api, KubeConfig, V1Lease } from '@kubernetes/client-node';
import { type ApiCall, apiStatus, kubeApiError } from './api-errors.ts';
import { clientNode } from './k8s.ts';
import { microTime } from './microtime.ts';
import { withSignal } from './signal.ts';

/** The Lease's spec as the election reads and writes it (client-go's LeaderElectionRecord). */
export interface LeaderRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: Date;
  renewTime?: Date;
  leaseTransitions: number;
}

export interface LeaseWhere {
  namespace: string;
  name: string;
}

export class LeaseLock {
  readonly namespace: string;
  readonly name: string;
  readonly #api: CoordinationV1Api;
  readonly #timeoutMs: number;
  /** the Lease as last read: an update replaces it */
  #lease: V1Lease | undefined;

  constructor(kc: KubeConfig, where: LeaseWhere, timeoutMs = 5_000) {
    this.namespace = where.namespace;
    this.name = where.name;
    this.#api = kc.makeApiClient(clientNode().CoordinationV1Api);
    this.#timeoutMs = timeoutMs;
  }

  #signal() {
    return withSignal(AbortSignal.timeout(this.#timeoutMs));
  }

  /** The record the Lease holds now; undefined when there is no Lease yet. */
  async get(): Promise<LeaderRecord | undefined> {
    try {
      this.#lease = await this.#api.readNamespacedLease({ name: this.name, namespace: this.namespace }, this.#signal());
    } catch (err) {
      this.#lease = undefined;
      if (apiStatus(err) === 404) return undefined;
      throw kubeApiError(err, this.#call('get'));
    }
    const spec = this.#lease.spec ?? {};
    return {
      holderIdentity: spec.holderIdentity ?? '',
      leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
      ...(spec.acquireTime ? { acquireTime: new Date(spec.acquireTime) } : {}),
      ...(spec.renewTime ? { renewTime: new Date(spec.renewTime) } : {}),
      leaseTransitions: spec.leaseTransitions ?? 0,
    };
  }

  /**
   * A failed call in words (api-errors.ts): the Lease's namespace and name are the watch's settings,
   * named when the API server says the namespace does not exist or the name is invalid.
   */
  #call(verb: string): ApiCall {
    return {
      verb,
      what: `Lease "${this.name}" in namespace "${this.namespace}"`,
      namespace: this.namespace,
      namespaceSetting: 'watch.leaseNamespace',
      nameSetting: 'watch.leaseName',
      timeoutMs: this.#timeoutMs,
    };
  }

  /** Creates the Lease holding `record`; false when another replica created it first. */
  async create(record: LeaderRecord): Promise<boolean> {
    const { name, namespace } = this;
    try {
      await this.#api.createNamespacedLease(
        { namespace, body: { metadata: { name, namespace }, spec: specOf(record) } },
        this.#signal(),
      );
      return true;
    } catch (err) {
      if (apiStatus(err) === 409) return false;
      throw kubeApiError(err, this.#call('create'));
    }
  }

  /** Writes `record` over the Lease last read; false when another replica wrote it since. */
  async update(record: LeaderRecord): Promise<boolean> {
    const lease = this.#lease;
    if (!lease) throw new Error(`lease ${this.namespace}/${this.name} updated before it was read`);
    lease.spec = specOf(record);
    try {
      await this.#api.replaceNamespacedLease(
        { name: this.name, namespace: this.namespace, body: lease },
        this.#signal(),
      );
      return true;
    } catch (err) {
      if (apiStatus(err) === 409) return false;
      throw kubeApiError(err, this.#call('update'));
    }
  }
}

/** The spec as the API server takes it: MicroTimes with six fraction digits. */
function specOf(r: LeaderRecord): NonNullable<V1Lease['spec']> {
  return {
    holderIdentity: r.holderIdentity,
    leaseDurationSeconds: r.leaseDurationSeconds,
    acquireTime: microTime(r.acquireTime ?? new Date()),
    renewTime: microTime(r.renewTime ?? new Date()),
    leaseTransitions: r.leaseTransitions,
  };
}
