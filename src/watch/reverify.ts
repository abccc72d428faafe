// Re-verification: every interval, each image of the running workloads (Deployments, StatefulSets,
// DaemonSets, CronJobs, bare Pods) is asked of its registry again with the workload's credentials —
// manifest HEAD requests, within a request budget per registry and for all registries in a round,
// and no further once a registry says its rate limit is near. An image that stops being pullable gets an Event on the
// workload ("a rescheduled pod will fail") and pullguard_workload_image_pullable drops to 0.
import type { WatchedPod } from '../cluster/projections.ts';
import type { Logger } from 'pino';
import { errorLine } from '../cluster/api-errors.ts';
import type { WorkloadLists } from '../cluster/workloads.ts';
import { Deadline } from '../deadline.ts';
import type { Finding } from '../findings.ts';
import { cut, oneLine } from '../text.ts';
import type { PodCheck } from '../podcheck/podcheck.ts';
import { parseImage } from '../reference/index.ts';
import { imageUsesOf, podSpecSite } from '../workload/images.ts';
import type { RequestBudget } from './budget.ts';
import type { EventPoster } from './events.ts';

export const NOT_PULLABLE_REASON = 'ImageNotPullable';

export interface WorkloadImage {
  namespace: string;
  kind: string;
  name: string;
  uid?: string;
  apiVersion: string;
  container: string;
  image: string;
  /** 1 pullable (or only at risk), 0 a rescheduled pod will fail */
  pullable: 0 | 1;
  reason: string;
  message: string;
  /** its Event was posted (false: held back by the cap on Events per namespace, posted in a later round) */
  announced?: boolean;
}

export interface ReverifyOptions {
  /** the workloads' lists from the API */
  workloads: WorkloadLists;
  /** the pod check whose engine counts against the round's budget */
  podCheck: PodCheck;
  events: EventPoster;
  /** the round's registry budget; its counts start again with every round (the engine's hooks count) */
  budget: RequestBudget;
  deadlineMs: number;
  /** registry answers older than this are asked again: a round never reuses the last one's */
  maxAgeMs?: number;
  /** the bare pods (the pod watch holds them) */
  pods: () => readonly WatchedPod[];
  logger?: Logger;
}

interface Workload {
  apiVersion: string;
  kind: string;
  /** as its list keeps it (a workload's projection, or a bare pod's), with its kind */
  object: { kind: string; metadata?: { uid?: string } };
}

export class Reverifier {
  readonly #opts: ReverifyOptions;
  /** key -> the latest result */
  #state = new Map<string, WorkloadImage>();
  #warnedKinds = new Set<string>();
  /** rounds completed so far */
  rounds = 0;
  /** images left for the next round in the last one (budget or rate limit) */
  skipped = 0;

  constructor(opts: ReverifyOptions) {
    this.#opts = opts;
  }

  /** The latest result per workload container. */
  results(): WorkloadImage[] {
    return [...this.#state.values()];
  }

  async #list(): Promise<Workload[]> {
    const out: Workload[] = [];
    for (const list of await this.#opts.workloads.list()) {
      if ('items' in list) {
        for (const object of list.items) out.push({ apiVersion: list.apiVersion, kind: list.kind, object });
      } else if (!this.#warnedKinds.has(list.kind)) {
        // e.g. batch/v1 CronJob before Kubernetes 1.21, or no RBAC for a kind: the others go on
        this.#warnedKinds.add(list.kind);
        this.#opts.logger?.warn(
          { kind: list.kind, err: errorLine(list.error) },
          'workloads of this kind not re-verified',
        );
      }
    }
    for (const pod of this.#opts.pods()) {
      if (pod.metadata?.ownerReferences?.length) continue; // their owner is checked
      if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
      out.push({
        apiVersion: 'v1',
        kind: 'Pod',
        object: { ...pod, kind: 'Pod' },
      });
    }
    return out;
  }

  /** One round. Returns the images that stopped being pullable in it. */
  async round(): Promise<WorkloadImage[]> {
    const workloads = await this.#list();
    const next = new Map<string, WorkloadImage>();
    const stopped: WorkloadImage[] = [];
    const budget = this.#opts.budget;
    budget.reset();
    let skipped = 0;
    for (const w of workloads) {
      const site = podSpecSite(w.object);
      if (!site) continue;
      const namespace = site.namespace ?? 'default';
      const meta = w.object.metadata ?? {};
      // One image at a time: the budget is checked before every request, not per workload.
      for (const use of imageUsesOf(site)) {
        const key = `${namespace}\u0000${w.kind}\u0000${site.name}\u0000${use.container}`;
        const parsed = parseImage(use.image);
        const host = parsed.ok ? this.#opts.podCheck.engine.client.hostFor(parsed.ref.domain) : undefined;
        // An invalid reference asks no registry: it needs no place in the budget.
        const release = host ? budget.take(host) : () => {};
        if (!release) {
          // over the budget or the quota: keep the last answer rather than guess
          const prev = this.#state.get(key);
          if (prev) next.set(key, prev);
          skipped++;
          continue;
        }
        let f: Finding | undefined;
        try {
          const { deadlineMs, maxAgeMs } = this.#opts;
          [f] = await this.#opts.podCheck.check({ site, namespace }, [use], {
            deadline: Deadline.after(deadlineMs),
            ...(maxAgeMs !== undefined ? { maxAgeMs } : {}),
          });
        } catch (err) {
          this.#opts.logger?.warn({ namespace, kind: w.kind, name: site.name, err: errorLine(err) }, 'not re-verified');
        } finally {
          release();
        }
        if (!f) continue;
        if (host && f.reason === 'rate-limited') budget.stop(host);
        const result: WorkloadImage = {
          namespace,
          kind: w.kind,
          name: site.name ?? '',
          ...(meta.uid ? { uid: meta.uid } : {}),
          apiVersion: w.apiVersion,
          container: f.container,
          image: f.image,
          pullable: f.verdict === 'fail' ? 0 : 1,
          reason: f.reason,
          message: `${oneLine(f.message).replace(/\.+$/, '')}: a rescheduled pod will fail${f.hint ? `. Fix: ${oneLine(f.hint)}` : ''}`,
        };
        const prev = this.#state.get(key);
        next.set(key, result);
        if (result.pullable === 0 && prev?.pullable === 0 && prev.image === result.image)
          result.announced = prev.announced;
        if (result.pullable === 0 && !result.announced) stopped.push(result);
      }
    }
    this.#state = next;
    this.skipped = skipped;
    this.rounds++;
    return stopped;
  }

  /**
   * Posts one Event per image that stopped being pullable. One held back by the cap on Events per
   * namespace stays unannounced, and is posted in a later round.
   */
  async announce(stopped: WorkloadImage[]): Promise<void> {
    for (const s of stopped) {
      const done = await this.#opts.events.post({
        target: {
          apiVersion: s.apiVersion,
          kind: s.kind,
          namespace: s.namespace,
          name: s.name,
          ...(s.uid ? { uid: s.uid } : {}),
        },
        subject: `${s.container}\u0000${s.image}`,
        reason: NOT_PULLABLE_REASON,
        message: `container "${s.container}": ${cut(s.message, 900)}`,
      });
      s.announced = done !== 'limited';
    }
  }
}
