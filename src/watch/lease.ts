// One leader among the replicas, by a coordination.k8s.io/v1 Lease, as client-go's leader election
// does: the holder renews it; another replica takes it over only after it has seen no renewal for
// the lease's duration on its own clock (clocks of different machines are never compared).
import { ApiException, CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { microTime } from '../cluster/microtime.ts';
import { withSignal } from '../cluster/signal.ts';

export interface LeaseOptions {
  namespace: string;
  name: string;
  identity: string;
  /** how long a lease lasts without renewal */
  durationMs: number;
  logger?: Logger;
  /** called when this replica becomes or stops being the leader */
  onChange?: (leader: boolean) => void;
}

export class LeaderLease {
  readonly #api: CoordinationV1Api;
  readonly #opts: LeaseOptions;
  #leader = false;
  /** what the lease said last time, and when (our clock) it last changed */
  #seen: { key: string; at: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(kc: KubeConfig, opts: LeaseOptions) {
    this.#api = kc.makeApiClient(CoordinationV1Api);
    this.#opts = opts;
  }

  get identity(): string {
    return this.#opts.identity;
  }

  get leader(): boolean {
    return this.#leader;
  }

  start(): void {
    this.#stopped = false;
    void this.#tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#leader) {
      // Hand over at once: a lease held by nobody can be taken by the next replica's next try.
      try {
        const lease = await this.#read();
        if (lease?.spec?.holderIdentity === this.#opts.identity) {
          lease.spec.holderIdentity = '';
          lease.spec.renewTime = microTime(new Date(lease.spec.renewTime ?? Date.now()));
          lease.spec.acquireTime = microTime(new Date(lease.spec.acquireTime ?? Date.now()));
          await this.#api.replaceNamespacedLease(
            { name: this.#opts.name, namespace: this.#opts.namespace, body: lease },
            withSignal(AbortSignal.timeout(5_000)),
          );
        }
      } catch {
        // it expires by itself
      }
      this.#set(false);
    }
  }

  #set(leader: boolean): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    this.#opts.logger?.info(
      { lease: this.#opts.name, identity: this.#opts.identity, leader },
      'watch leadership changed',
    );
    this.#opts.onChange?.(leader);
  }

  async #read(): Promise<V1Lease | undefined> {
    try {
      return await this.#api.readNamespacedLease(
        { name: this.#opts.name, namespace: this.#opts.namespace },
        withSignal(AbortSignal.timeout(5_000)),
      );
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  async #tick(): Promise<void> {
    try {
      this.#set(await this.#tryAcquireOrRenew());
    } catch (err) {
      // An API server we cannot reach: stop acting as leader before the lease can pass to another.
      this.#opts.logger?.warn({ err: (err as Error).message }, 'lease not renewed');
      if (this.#seen && Date.now() - this.#seen.at > this.#opts.durationMs / 2) this.#set(false);
    }
    if (!this.#stopped) {
      const retry = this.#leader ? this.#opts.durationMs / 3 : this.#opts.durationMs / 2;
      this.#timer = setTimeout(() => void this.#tick(), Math.max(100, Math.floor(retry)));
      this.#timer.unref?.();
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, durationMs } = this.#opts;
    const now = new Date();
    const spec = (transitions: number, acquired: Date) => ({
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(durationMs / 1000)),
      acquireTime: microTime(acquired),
      renewTime: microTime(now),
      leaseTransitions: transitions,
    });
    const lease = await this.#read();
    if (!lease) {
      try {
        await this.#api.createNamespacedLease(
          { namespace, body: { metadata: { name, namespace }, spec: spec(0, now) } },
          withSignal(AbortSignal.timeout(5_000)),
        );
        this.#seen = { key: `${identity}\u0000${now.toISOString()}`, at: Date.now() };
        return true;
      } catch (err) {
        if (err instanceof ApiException && err.code === 409) return false; // another replica was first
        throw err;
      }
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const key = `${holder}\u0000${lease.spec?.renewTime ? new Date(lease.spec.renewTime).toISOString() : ''}`;
    if (this.#seen?.key !== key) this.#seen = { key, at: Date.now() };
    const mine = holder === identity;
    const expired = holder === '' || Date.now() - this.#seen.at > durationMs;
    if (!mine && !expired) return false;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1);
    const acquired = mine && lease.spec?.acquireTime ? new Date(lease.spec.acquireTime) : now;
    lease.spec = spec(transitions, acquired);
    try {
      // replace carries the resourceVersion read above: of two replicas racing, only one wins
      await this.#api.replaceNamespacedLease({ name, namespace, body: lease }, withSignal(AbortSignal.timeout(5_000)));
      this.#seen = { key: `${identity}\u0000${now.toISOString()}`, at: Date.now() };
      return true;
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) return false;
      throw err;
    }
  }
}
