// The watch on pods: when a container starts waiting on an image pull, diagnose it (as `pullguard
// diagnose` does) and post one Warning Event `ImagePullDiagnosed` on the pod with the cause and fix.
// Only the leader acts; every replica keeps the list current so a new leader starts at once. At
// most DIAGNOSES_IN_FLIGHT pods are diagnosed at once (each reads the API: events, node, secrets);
// the others wait their turn, once each, with their latest state.
import type { Logger } from 'pino';
import { errorLine } from '../cluster/api-errors.ts';
import type { AllPods } from '../cluster/all-pods.ts';
import { isStuckReason, type WatchedPod } from '../cluster/projections.ts';
import { cut, oneLine, quote } from '../text.ts';
import type { ContainerDiagnosis } from '../diagnose/diagnose.ts';
import type { EventPoster } from './events.ts';

export const DIAGNOSED_REASON = 'ImagePullDiagnosed';

/** pods diagnosed at once (as `pullguard diagnose` does) */
export const DIAGNOSES_IN_FLIGHT = 4;

export interface PodWatchOptions {
  /** every pod, kept current */
  pods: AllPods;
  events: EventPoster;
  /**
   * Diagnoses one pod's stuck containers; `due` names those whose diagnosis is due. A container
   * left out of the answer (e.g. its registry's budget is spent) is tried again at the pod's next change.
   */
  diagnose: (pod: WatchedPod, due: ReadonlySet<string>) => Promise<ContainerDiagnosis[]>;
  isLeader: () => boolean;
  /** a pod's containers are diagnosed again at most this often (its status changes every back-off) */
  minIntervalMs: number;
  logger?: Logger;
}

/** The stuck containers of a pod: name and waiting reason. */
function stuckContainers(pod: WatchedPod): { container: string; reason: string }[] {
  const out: { container: string; reason: string }[] = [];
  const all = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ];
  for (const s of all) {
    const reason = s.state?.waiting?.reason;
    if (reason && isStuckReason(reason)) out.push({ container: s.name, reason });
  }
  return out;
}

/** The Event's message: cause and fix in one line, then the outlook. */
function eventMessage(d: ContainerDiagnosis): string {
  const fix = d.hint ? ` Fix: ${oneLine(d.hint)}.` : '';
  return `container ${quote(d.container, 63)}${d.volume ? `, image volume ${quote(d.volume, 63)}` : ''}: ${cut(oneLine(d.message), 500).replace(/\.+$/, '')}.${fix} Now: ${d.outlook}`;
}

export class PodWatch {
  readonly #opts: PodWatchOptions;
  #stopped = false;
  /** pod uid + container -> when it was last diagnosed, and its cause */
  readonly #diagnosed = new Map<string, { at: number; reason: string; namespace: string }>();
  readonly #busy = new Set<string>();
  /** pods waiting for a place (uid -> their latest state), in the order they came */
  readonly #queue = new Map<string, WatchedPod>();

  constructor(opts: PodWatchOptions) {
    this.#opts = opts;
  }

  get ready(): boolean {
    return this.#opts.pods.ready;
  }

  /** Pods being diagnosed now, and pods waiting for a place. */
  get diagnosing(): { running: number; queued: number } {
    return { running: this.#busy.size, queued: this.#queue.size };
  }

  start(): void {
    this.#opts.pods.start({
      listed: () => this.#listed(),
      changed: (pod) => this.#seen(pod),
      deleted: (pod) => this.#forget(pod.metadata.uid),
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#queue.clear();
    await this.#opts.pods.stop();
  }

  /** The leader's view for the metric: stuck containers by namespace and cause. */
  failing(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const pod of this.#opts.pods.list()) {
      for (const { container, reason } of stuckContainers(pod)) {
        const d = this.#diagnosed.get(`${pod.metadata?.uid}\u0000${container}`);
        const key = `${pod.metadata?.namespace ?? ''}\u0000${d?.reason ?? reason}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    return counts;
  }

  /** Every pod the watch holds (for re-verification of bare pods). */
  pods(): readonly WatchedPod[] {
    return this.#opts.pods.list();
  }

  /** Diagnose the pods that are stuck now (a replica that just became leader catches up). */
  catchUp(): void {
    for (const pod of this.pods()) this.#seen(pod);
  }

  /** After a (re)list: forget the pods no longer there, look at every pod held. */
  #listed(): void {
    for (const uid of this.#queue.keys()) if (!this.#opts.pods.has(uid)) this.#queue.delete(uid);
    for (const key of this.#diagnosed.keys()) {
      const uid = key.slice(0, key.indexOf('\u0000'));
      if (!this.#opts.pods.has(uid)) this.#diagnosed.delete(key);
    }
    this.catchUp();
  }

  #forget(uid: string): void {
    this.#queue.delete(uid);
    for (const key of this.#diagnosed.keys()) if (key.startsWith(`${uid}\u0000`)) this.#diagnosed.delete(key);
  }

  #seen(pod: WatchedPod): void {
    if (this.#stopped || !this.#opts.isLeader()) return;
    const uid = pod.metadata?.uid ?? '';
    const stuck = stuckContainers(pod);
    if (!stuck.length) return;
    const now = Date.now();
    const due = stuck.filter(({ container }) => {
      const last = this.#diagnosed.get(`${uid}\u0000${container}`);
      return !last || now - last.at >= this.#opts.minIntervalMs;
    });
    if (!due.length || this.#busy.has(uid)) return;
    if (this.#busy.size >= DIAGNOSES_IN_FLIGHT) {
      this.#queue.set(uid, pod); // an update while it waits replaces the state, not its turn
      return;
    }
    this.#busy.add(uid);
    void this.#handle(pod, new Set(due.map((d) => d.container))).finally(() => {
      this.#busy.delete(uid);
      this.#next();
    });
  }

  /** Starts waiting pods while there are places (each is looked at again: still stuck, still due). */
  #next(): void {
    for (const [uid, pod] of this.#queue) {
      if (this.#busy.size >= DIAGNOSES_IN_FLIGHT) return;
      this.#queue.delete(uid);
      this.#seen(pod);
    }
  }

  async #handle(pod: WatchedPod, containers: Set<string>): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    const namespace = pod.metadata?.namespace ?? 'default';
    let list: ContainerDiagnosis[];
    try {
      list = await this.#opts.diagnose(pod, containers);
    } catch (err) {
      this.#opts.logger?.warn({ namespace, pod: pod.metadata?.name, err: errorLine(err) }, 'diagnosis failed');
      return;
    }
    for (const d of list) {
      if (!d.stuck || !containers.has(d.container)) continue;
      this.#diagnosed.set(`${uid}\u0000${d.container}`, { at: Date.now(), reason: d.reason, namespace });
      if (!this.#opts.isLeader()) continue;
      const list_ = (pod.spec?.initContainers ?? []).some((c) => c.name === d.container)
        ? 'initContainers'
        : (pod.spec?.ephemeralContainers ?? []).some((c) => c.name === d.container)
          ? 'ephemeralContainers'
          : 'containers';
      await this.#opts.events.post({
        target: {
          apiVersion: 'v1',
          kind: 'Pod',
          namespace,
          name: pod.metadata?.name ?? '',
          ...(uid ? { uid } : {}),
          fieldPath: `spec.${list_}{${d.container}}`,
        },
        subject: d.container,
        reason: DIAGNOSED_REASON,
        message: eventMessage(d),
      });
    }
  }
}
