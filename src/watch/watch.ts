// The watch in `pullguard serve` (watch.enabled): the pod watch that diagnoses stuck pulls and the
// periodic re-verification of running workloads' images, both acting only on the replica that
// holds the Lease. Metrics: pullguard_pods_pull_failing and pullguard_workload_image_pullable.
// Re-verification and diagnosis each have a pod check of their own, counted against a budget of
// their own: a long round does not starve the diagnosis of a pod that just got stuck, nor the
// reverse. app/watch.ts builds them and the API clients; here are the decisions.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { errorLine } from '../cluster/api-errors.ts';
import type { EventApi } from '../cluster/events.ts';
import type { LeaseLock } from '../cluster/lease.ts';
import type { AllPods } from '../cluster/all-pods.ts';
import type { WatchedPod } from '../cluster/projections.ts';
import type { PodReader } from '../cluster/pods.ts';
import type { WorkloadLists } from '../cluster/workloads.ts';
import type { Config } from '../config/schema.ts';
import type { ContainerDiagnosis } from '../diagnose/diagnose.ts';
import { diagnoseOne } from '../diagnose/pods.ts';
import type { Finding, ImageUse } from '../findings.ts';
import type { PodCheck, PodCheckOptions, PodSite } from '../podcheck/podcheck.ts';
import { parseImage } from '../reference/index.ts';
import type { RequestBudget } from './budget.ts';
import { EventPoster } from './events.ts';
import { LeaderLease } from './lease.ts';
import { PodWatch } from './pods.ts';
import { Reverifier } from './reverify.ts';

/** A pod check whose registry requests count against `budget`. */
export interface BudgetedCheck {
  podCheck: PodCheck;
  budget: RequestBudget;
}

/** What the watch asks of the API server (cluster/). */
export interface WatchApi {
  events: EventApi;
  lease: LeaseLock;
  /** every pod, kept current */
  pods: AllPods;
  /** a stuck pod's events and node */
  reader: PodReader;
  workloads: WorkloadLists;
}

export interface WatchParts {
  settings: Config['watch'];
  /** per check of a workload or a stuck pod, for the cluster reads and the registries */
  deadlineMs: number;
  /** re-verification's: the budget starts again with every round */
  reverification: BudgetedCheck;
  /** diagnosis's: the budget starts again every interval */
  diagnosis: BudgetedCheck;
  cluster: WatchApi;
  /** where the watch's metrics go */
  registry: Registry;
  logger?: Logger;
  /** this replica's name in the Lease and on its Events */
  identity: string;
  /** closes what was built for the watch (its engines) */
  close?: () => Promise<void>;
}

/** Longest image label value: a longer one keeps its start and a hash of the whole, so two stay distinct. */
export const MAX_IMAGE_LABEL = 200;

/** The image label for a reference of any length (the API server takes images of any length). */
export function imageLabel(image: string): string {
  if (image.length <= MAX_IMAGE_LABEL) return image;
  const hash = createHash('sha256').update(image).digest('hex').slice(0, 16);
  return `${image.slice(0, MAX_IMAGE_LABEL - hash.length - 4)}...#${hash}`;
}

export class Watch {
  readonly lease: LeaderLease;
  readonly pods: PodWatch;
  readonly reverifier: Reverifier;
  readonly #parts: WatchParts;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;

  constructor(parts: WatchParts) {
    this.#parts = parts;
    const w = parts.settings;
    const { logger, cluster } = parts;
    const log = logger ? { logger } : {};
    const events = new EventPoster(cluster.events, {
      identity: parts.identity,
      minIntervalMs: w.eventInterval,
      perNamespace: { max: w.eventsPerNamespace, windowMs: w.interval },
      ...log,
    });
    this.lease = new LeaderLease(cluster.lease, {
      identity: parts.identity,
      durationMs: w.leaseDuration,
      ...log,
      onChange: (leader) => {
        if (leader) {
          this.pods.catchUp();
          this.#schedule(0);
        }
      },
    });
    this.pods = new PodWatch({
      pods: cluster.pods,
      events,
      isLeader: () => this.lease.leader,
      minIntervalMs: w.eventInterval,
      diagnose: (pod, due) => this.#diagnose(pod, due),
      ...log,
    });
    this.reverifier = new Reverifier({
      workloads: cluster.workloads,
      podCheck: parts.reverification.podCheck,
      events,
      budget: parts.reverification.budget,
      deadlineMs: parts.deadlineMs,
      pods: () => this.pods.pods(),
      ...log,
    });
    this.#metrics(parts.registry);
  }

  /** The registry host a reference's pull goes to; undefined for an invalid reference (it asks none). */
  #hostOf(image: string): string | undefined {
    const parsed = parseImage(image);
    return parsed.ok ? this.#parts.diagnosis.podCheck.engine.client.hostFor(parsed.ref.domain) : undefined;
  }

  /**
   * Diagnoses a pod within the diagnosis budget: an image whose registry's budget is spent is not
   * asked, and its container is left out (diagnosed at a later change of the pod). When no due
   * container's image may be asked, nothing is read from the API either.
   */
  async #diagnose(pod: WatchedPod, due: ReadonlySet<string>): Promise<ContainerDiagnosis[]> {
    const { podCheck: diagnosisCheck, budget } = this.#parts.diagnosis;
    const spec = pod.spec;
    const images = [...(spec?.initContainers ?? []), ...(spec?.containers ?? []), ...(spec?.ephemeralContainers ?? [])]
      .filter((c) => due.has(c.name))
      .map((c) => c.image ?? '');
    if (
      images.length &&
      images.every((image) => {
        const h = this.#hostOf(image);
        return h !== undefined && !budget.allows(h);
      })
    )
      return [];
    const skipped = new Set<string>();
    const podCheck = {
      check: async (pod: PodSite, uses: ImageUse[], opts: PodCheckOptions): Promise<Finding[]> => {
        // one place per distinct image (the engine asks once for all its containers)
        const places = new Map<string, (() => void) | undefined>();
        const asked: ImageUse[] = [];
        for (const use of uses) {
          const host = this.#hostOf(use.image);
          if (host && !places.has(use.image)) places.set(use.image, budget.take(host));
          if (host && !places.get(use.image)) skipped.add(use.container);
          else asked.push(use);
        }
        try {
          const findings = asked.length ? await diagnosisCheck.check(pod, asked, opts) : [];
          for (const f of findings) {
            const host = f.reason === 'rate-limited' ? this.#hostOf(f.image) : undefined;
            if (host) budget.stop(host);
          }
          return findings;
        } finally {
          for (const release of places.values()) release?.();
        }
      },
    };
    const list = await diagnoseOne(
      { reader: this.#parts.cluster.reader, podCheck, deadlineMs: this.#parts.deadlineMs },
      pod,
      false,
    );
    return list.filter((d) => !skipped.has(d.container));
  }

  #metrics(registry: Registry): void {
    const isLeader = () => this.lease.leader;
    const pods = this.pods;
    const reverifier = this.reverifier;
    const failing = new Gauge({
      name: 'pullguard_pods_pull_failing',
      help: 'Containers waiting on an image pull (ErrImagePull, ImagePullBackOff, …), by namespace and cause; exported by the watch leader',
      labelNames: ['namespace', 'reason'],
      registers: [registry],
      collect() {
        failing.reset();
        if (!isLeader()) return;
        for (const [key, n] of pods.failing()) {
          const [namespace, reason] = key.split('\u0000') as [string, string];
          failing.set({ namespace, reason }, n);
        }
      },
    });
    const pullable = new Gauge({
      name: 'pullguard_workload_image_pullable',
      help: "1 when a running workload's image can still be pulled with its credentials, 0 when a rescheduled pod would fail; exported by the watch leader",
      labelNames: ['namespace', 'kind', 'name', 'container', 'image', 'reason'],
      registers: [registry],
      collect() {
        pullable.reset();
        if (!isLeader()) return;
        // At most maxSeries: the images that cannot be pulled first (what the alert is about).
        const results = reverifier.results();
        const kept = [...results.filter((r) => r.pullable === 0), ...results.filter((r) => r.pullable === 1)].slice(
          0,
          maxSeries,
        );
        dropped.set(results.length - kept.length);
        for (const r of kept)
          pullable.set(
            {
              namespace: r.namespace,
              kind: r.kind,
              name: r.name,
              container: r.container,
              image: imageLabel(r.image),
              reason: r.reason,
            },
            r.pullable,
          );
      },
    });
    const maxSeries = this.#parts.settings.maxSeries;
    const dropped = new Gauge({
      name: 'pullguard_workload_image_pullable_dropped',
      help: 'Workload images re-verified but left out of pullguard_workload_image_pullable (more than watch.maxSeries); exported by the watch leader',
      registers: [registry],
      collect() {
        if (!isLeader()) dropped.set(0);
      },
    });
  }

  start(): void {
    this.pods.start();
    this.lease.start();
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#round = this.#runRound().finally(() => {
        this.#round = undefined;
        this.#schedule(this.#parts.settings.interval);
      });
    }, ms);
  }

  async #runRound(): Promise<void> {
    if (!this.lease.leader) return;
    try {
      const stopped = await this.reverifier.round();
      if (this.lease.leader) await this.reverifier.announce(stopped);
    } catch (err) {
      this.#parts.logger?.warn({ err: errorLine(err) }, 're-verification round failed');
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
    await this.pods.stop();
    await this.lease.stop();
    await this.#parts.close?.();
  }
}
