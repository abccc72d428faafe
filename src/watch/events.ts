// pullguard's own Kubernetes Events (core/v1, source pullguard): one per object and subject, named
// from both, so a repeat raises count and lastTimestamp instead of adding an Event — also when two
// replicas race (the second create is a 409 and becomes an update). Repeats with the same message
// are posted at most once per `minIntervalMs` per Event, and at most `perNamespace.max` Events are
// created or updated in one namespace per `perNamespace.windowMs`: invalid references in a few
// workloads with many containers would otherwise post hundreds at once. The requests themselves
// are cluster/events.ts's.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { errorLine } from '../cluster/api-errors.ts';
import type { CoreV1Event, EventApi } from '../cluster/events.ts';
import { cut, oneLine } from '../text.ts';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
  fieldPath?: string;
}

export interface PostedEvent {
  target: EventTarget;
  /** what the Event is about within the object, e.g. the container; part of its name */
  subject: string;
  reason: string;
  message: string;
}

export interface EventPosterOptions {
  identity: string;
  /** at most one update per Event in this time unless the message changes */
  minIntervalMs: number;
  /** Events created or updated per namespace and window; more are held back ('limited') */
  perNamespace?: { max: number; windowMs: number };
  logger?: Logger;
  now?: () => number;
}

// The API server caps an Event message at 1 KiB in events.k8s.io; stay well within.
const MAX_MESSAGE = 1000;

export class EventPoster {
  readonly #api: EventApi;
  readonly #opts: EventPosterOptions;
  /** event name -> when we last wrote it and with which message */
  readonly #last = new Map<string, { at: number; message: string }>();
  /** namespace -> Events written in the current window, and how many were held back */
  #written = new Map<string, { n: number; held: number }>();
  #windowStart = 0;

  constructor(api: EventApi, opts: EventPosterOptions) {
    this.#api = api;
    this.#opts = opts;
  }

  static nameFor(target: EventTarget, subject: string, reason: string): string {
    const h = createHash('sha256')
      .update(`${target.kind}\u0000${target.uid ?? target.name}\u0000${subject}\u0000${reason}`)
      .digest('hex')
      .slice(0, 12);
    // names are at most 253 characters of a DNS subdomain; pod names already are one
    return `${target.name.slice(0, 200)}.pullguard.${h}`;
  }

  /** Creates or updates the Event; returns what was done. Never throws. */
  async post(e: PostedEvent): Promise<'created' | 'updated' | 'skipped' | 'failed' | 'limited'> {
    const now = this.#opts.now?.() ?? Date.now();
    const name = EventPoster.nameFor(e.target, e.subject, e.reason);
    const message = cut(oneLine(e.message), MAX_MESSAGE);
    const last = this.#last.get(name);
    if (last && last.message === message && now - last.at < this.#opts.minIntervalMs) return 'skipped';
    const namespace = e.target.namespace;
    if (!this.#admit(namespace, now)) return 'limited';
    const stamp = new Date(now);
    try {
      const body: CoreV1Event = {
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: e.target.apiVersion,
          kind: e.target.kind,
          name: e.target.name,
          namespace,
          ...(e.target.uid ? { uid: e.target.uid } : {}),
          ...(e.target.fieldPath ? { fieldPath: e.target.fieldPath } : {}),
        },
        reason: e.reason,
        message,
        type: 'Warning',
        count: 1,
        firstTimestamp: stamp,
        lastTimestamp: stamp,
        source: { component: 'pullguard' },
        reportingComponent: 'pullguard',
        reportingInstance: this.#opts.identity,
      };
      if (await this.#api.create(body)) {
        this.#remember(name, now, message);
        return 'created';
      }
      // It exists (ours from before, or another replica's): raise its count.
      for (let attempt = 0; attempt < 3; attempt++) {
        const current = await this.#api.read(namespace, name);
        const lastAt = current.lastTimestamp ? new Date(current.lastTimestamp).getTime() : 0;
        if (current.message === message && now - lastAt < this.#opts.minIntervalMs) {
          this.#remember(name, lastAt, message);
          return 'skipped';
        }
        current.count = (current.count ?? 1) + 1;
        current.lastTimestamp = stamp;
        current.message = message;
        current.reportingInstance = this.#opts.identity;
        if (await this.#api.replace(current)) {
          this.#remember(name, now, message);
          return 'updated';
        }
      }
      return 'failed';
    } catch (err) {
      this.#opts.logger?.warn(
        { namespace, object: e.target.name, reason: e.reason, err: errorLine(err) },
        'event not posted',
      );
      return 'failed';
    }
  }

  /** Whether one more Event may be written in the namespace in this window (and counts it). */
  #admit(namespace: string, now: number): boolean {
    const cap = this.#opts.perNamespace;
    if (!cap) return true;
    if (now - this.#windowStart >= cap.windowMs) {
      this.#written = new Map();
      this.#windowStart = now;
    }
    const w = this.#written.get(namespace) ?? { n: 0, held: 0 };
    this.#written.set(namespace, w);
    if (w.n >= cap.max) {
      // one line per namespace and window
      if (w.held++ === 0)
        this.#opts.logger?.warn(
          { namespace, max: cap.max },
          'more Events due in this namespace than watch.eventsPerNamespace allows in one interval; the rest follow later',
        );
      return false;
    }
    w.n++;
    return true;
  }

  #remember(name: string, at: number, message: string): void {
    this.#last.set(name, { at, message });
    if (this.#last.size > 50_000) this.#last.delete(this.#last.keys().next().value!);
  }
}
