// One leader among the replicas, by a coordination.k8s.io/v1 Lease, as client-go's leader election
// does: the holder renews it; another replica takes it over only after it has seen no renewal for
// the lease's duration on its own clock (clocks of different machines are never compared). The
// Lease's reads and writes are cluster/lease.ts's.
import type { Logger } from 'pino';
import { errorLine } from '../cluster/api-errors.ts';
import type { LeaderRecord, LeaseLock } from '../cluster/lease.ts';

export interface LeaseOptions {
  identity: string;
  /** how long a lease lasts without renewal */
  durationMs: number;
  logger?: Logger;
  /** called when this replica becomes or stops being the leader */
  onChange?: (leader: boolean) => void;
}

export class LeaderLease {
  readonly #lock: LeaseLock;
  readonly #opts: LeaseOptions;
  #leader = false;
  /** what the lease said last time, and when (our clock) it last changed */
  #seen: { key: string; at: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(lock: LeaseLock, opts: LeaseOptions) {
    this.#lock = lock;
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
        const record = await this.#lock.get();
        if (record?.holderIdentity === this.#opts.identity) await this.#lock.update({ ...record, holderIdentity: '' });
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
      { lease: this.#lock.name, identity: this.#opts.identity, leader },
      'watch leadership changed',
    );
    this.#opts.onChange?.(leader);
  }

  async #tick(): Promise<void> {
    try {
      this.#set(await this.#tryAcquireOrRenew());
    } catch (err) {
      // An API server we cannot reach: stop acting as leader before the lease can pass to another.
      this.#opts.logger?.warn({ err: errorLine(err) }, 'lease not renewed');
      if (this.#seen && Date.now() - this.#seen.at > this.#opts.durationMs / 2) this.#set(false);
    }
    if (!this.#stopped) {
      const retry = this.#leader ? this.#opts.durationMs / 3 : this.#opts.durationMs / 2;
      this.#timer = setTimeout(() => void this.#tick(), Math.max(100, Math.floor(retry)));
      this.#timer.unref?.();
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { identity, durationMs } = this.#opts;
    const now = new Date();
    const mineFrom = (transitions: number, acquired: Date): LeaderRecord => ({
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(durationMs / 1000)),
      acquireTime: acquired,
      renewTime: now,
      leaseTransitions: transitions,
    });
    const held = await this.#lock.get();
    if (!held) {
      // false: another replica was first
      if (!(await this.#lock.create(mineFrom(0, now)))) return false;
      this.#seen = { key: `${identity}\u0000${now.toISOString()}`, at: Date.now() };
      return true;
    }
    const holder = held.holderIdentity;
    const key = `${holder}\u0000${held.renewTime ? held.renewTime.toISOString() : ''}`;
    if (this.#seen?.key !== key) this.#seen = { key, at: Date.now() };
    const mine = holder === identity;
    const expired = holder === '' || Date.now() - this.#seen.at > durationMs;
    if (!mine && !expired) return false;
    const transitions = held.leaseTransitions + (mine ? 0 : 1);
    const acquired = mine && held.acquireTime ? held.acquireTime : now;
    // the update carries the resourceVersion read above: of two replicas racing, only one wins
    if (!(await this.#lock.update(mineFrom(transitions, acquired)))) return false;
    this.#seen = { key: `${identity}\u0000${now.toISOString()}`, at: Date.now() };
    return true;
  }
}
