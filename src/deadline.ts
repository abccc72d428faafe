// One deadline for one piece of work (a review, a CLI run, a watch round), made where the work
// starts and passed down: an instant on the performance.now() clock, and a signal that aborts at
// that instant or when the caller gives up (a client that hung up, a shutdown). The signal and its
// timer are made only when something asks for it: work answered from caches needs neither.

import { PullguardError } from './errors.ts';

/** Why work was stopped at its deadline. */
export class DeadlineError extends PullguardError {
  readonly code = 'deadline';
  constructor(ms: number) {
    super(`no answer within the ${ms} ms deadline`);
  }
}

/** The caller's signal, or what makes it when first asked (the server's hang-up signal). */
export type Parent = AbortSignal | (() => AbortSignal);

export class Deadline {
  /** when the answer is due, on the performance.now() clock */
  readonly at: number;
  #parent: Parent | undefined;
  #signal: AbortSignal | undefined;

  constructor(at: number, parent?: Parent) {
    this.at = at;
    this.#parent = parent;
  }

  /** Due `ms` from now; `parent` (the caller's signal) ends it early. */
  static after(ms: number, parent?: Parent): Deadline {
    return new Deadline(performance.now() + ms, parent);
  }

  /** Milliseconds left (0 once passed). */
  remaining(): number {
    return Math.max(0, this.at - performance.now());
  }

  /** Whole milliseconds left, at least 1: the number messages name ("within 1497 ms"). */
  ms(): number {
    return Math.max(1, Math.floor(this.remaining()));
  }

  /** Whether the work should stop: the instant passed or the caller gave up. */
  get done(): boolean {
    const parent = this.#parent;
    return Boolean(
      this.#signal?.aborted || (parent instanceof AbortSignal && parent.aborted) || performance.now() >= this.at,
    );
  }

  /**
   * Aborts at the instant (with a DeadlineError) or when the parent aborts (with its reason). Made on
   * first use; its timer does not hold the process open.
   */
  get signal(): AbortSignal {
    if (this.#signal) return this.#signal;
    const parent = typeof this.#parent === 'function' ? (this.#parent = this.#parent()) : this.#parent;
    if (parent?.aborted) return (this.#signal = parent);
    const controller = new AbortController();
    const ms = this.ms();
    const timer = setTimeout(() => controller.abort(new DeadlineError(ms)), this.remaining());
    timer.unref();
    if (parent) {
      const onParent = () => {
        clearTimeout(timer);
        controller.abort(parent.reason);
      };
      parent.addEventListener('abort', onParent, { once: true });
      controller.signal.addEventListener('abort', () => parent.removeEventListener('abort', onParent), {
        once: true,
      });
    }
    return (this.#signal = controller.signal);
  }

  /**
   * A child deadline due after `fraction` of the time left (e.g. the cluster reads' half of a pod
   * check): it ends with this one too.
   */
  share(fraction: number): Deadline {
    return new ShareOf(this, performance.now() + this.remaining() * fraction);
  }
}

/** A share of a deadline: its parent signal is made only when the share's own is. */
class ShareOf extends Deadline {
  readonly #of: Deadline;
  #own: Deadline | undefined;

  constructor(of: Deadline, at: number) {
    super(at);
    this.#of = of;
  }

  override get done(): boolean {
    return this.#of.done || performance.now() >= this.at;
  }

  override get signal(): AbortSignal {
    this.#own ??= new Deadline(this.at, this.#of.signal);
    return this.#own.signal;
  }
}
