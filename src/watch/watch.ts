// The watch in `pullguard serve` (watch.enabled): the pod watch that diagnoses stuck pulls and the
// periodic re-verification of running workloads' images, both acting only on the replica that
// holds the Lease. Metrics: pullguard_pods_pull_failing and pullguard_workload_image_pullable.
// Re-verification and diagnosis each have an engine of their own, counted against a budget of
// their own (watch.registryBudget per registry, watch.roundBudget in all, per round or interval):
// a long round does not starve the diagnosis of a pod that just got stuck, nor the reverse.
import { createHash } from 'node:crypto';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { PodReader } from '../cluster/pods.ts';
import type { Config } from '../config.ts';
import type { ContainerDiagnosis } from '../diagnose/diagnose.ts';
import type { PodCredentials } from '../podcheck/credentials.ts';
import { diagnoseOne } from '../diagnose/pods.ts';
import type { Finding, ImageUse } from '../findings.ts';
import { type CheckOptions, Preflight } from '../preflight/engine.ts';
import { parseImage } from '../reference/index.ts';
import type { ClientOptions, RegistryClient } from '../registry/client.ts';
import { RequestBudget } from './budget.ts';
import { EventPoster } from './events.ts';
import { LeaderLease } from './lease.ts';
import { PodWatch } from './pods.ts';
import { Reverifier } from './reverify.ts';

export interface WatchDeps {
  kc: KubeConfig;
  config: Config;
  credentials: PodCredentials;
  /** a registry client as the webhook's (CAs, proxies, insecure hosts), with the watch's own observers */
  registryClient: (hooks: Pick<ClientOptions, 'onResponse' | 'onFailure'>) => RegistryClient;
  registry: Registry;
  logger?: Logger;
  identity: string;
  leaseNamespace: string;
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
  /** re-verification's engine, and diagnosis's */
  readonly #engine: Preflight;
  readonly #diagnosisEngine: Preflight;
  readonly #diagnosisBudget: RequestBudget;
  readonly #deps: WatchDeps;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;

  constructor(deps: WatchDeps) {
    this.#deps = deps;
    const w = deps.config.watch;
    const logger = deps.logger;
    // Engines of its own: answers cached for less than an interval, so every round asks the
    // registry again; no tag lists for suggestions (manifest HEADs only).
    const fresh = Math.max(1_000, Math.floor(w.interval / 2));
    const engineConfig = {
      ...deps.config,
      cache: {
        ...deps.config.cache,
        positiveTtl: Math.min(deps.config.cache.positiveTtl, fresh),
        negativeTtl: Math.min(deps.config.cache.negativeTtl, fresh),
      },
      registry: { ...deps.config.registry, maxTagsForSuggestions: 0 },
    };
    // A rate limit either engine heard of stops both.
    const rateLimits = () => [
      ...this.#engine.client.rateLimits.values(),
      ...this.#diagnosisEngine.client.rateLimits.values(),
    ];
    const budget = (windowMs?: number) =>
      new RequestBudget({
        perRegistry: w.registryBudget,
        total: w.roundBudget,
        rateLimitThreshold: deps.config.registry.rateLimitThreshold,
        rateLimits,
        ...(windowMs ? { windowMs } : {}),
      });
    const counted = (b: RequestBudget) =>
      deps.registryClient({ onResponse: (host) => b.spend(host), onFailure: (host) => b.spend(host) });
    const roundBudget = budget(); // reset by every round
    this.#diagnosisBudget = budget(w.interval);
    this.#engine = new Preflight(engineConfig, counted(roundBudget));
    this.#diagnosisEngine = new Preflight(engineConfig, counted(this.#diagnosisBudget));
    const events = new EventPoster(deps.kc, {
      identity: deps.identity,
      minIntervalMs: w.eventInterval,
      perNamespace: { max: w.eventsPerNamespace, windowMs: w.interval },
      ...(logger ? { logger } : {}),
    });
    this.lease = new LeaderLease(deps.kc, {
      namespace: deps.leaseNamespace,
      name: w.leaseName,
      identity: deps.identity,
      durationMs: w.leaseDuration,
      ...(logger ? { logger } : {}),
      onChange: (leader) => {
        if (leader) {
          this.pods.catchUp();
          this.#schedule(0);
        }
      },
    });
    const reader = new PodReader(deps.kc, Math.max(5_000, deps.config.deadline));
    this.pods = new PodWatch({
      kc: deps.kc,
      events,
      isLeader: () => this.lease.leader,
      minIntervalMs: w.eventInterval,
      diagnose: (pod, due) => this.#diagnose(reader, pod, due),
      ...(logger ? { logger } : {}),
    });
    this.reverifier = new Reverifier({
      kc: deps.kc,
      engine: this.#engine,
      credentials: deps.credentials,
      events,
      budget: roundBudget,
      deadlineMs: deps.config.deadline,
      pods: () => this.pods.pods(),
      ...(logger ? { logger } : {}),
    });
    this.#metrics(deps.registry);
  }

  /** The registry host a reference's pull goes to; undefined for an invalid reference (it asks none). */
  #hostOf(image: string): string | undefined {
    const parsed = parseImage(image);
    return parsed.ok ? this.#diagnosisEngine.client.hostFor(parsed.ref.domain) : undefined;
  }

  /**
   * Diagnoses a pod within the diagnosis budget: an image whose registry's budget is spent is not
   * asked, and its container is left out (diagnosed at a later change of the pod). When no due
   * container's image may be asked, nothing is read from the API either.
   */
  async #diagnose(reader: PodReader, pod: V1Pod, due: ReadonlySet<string>): Promise<ContainerDiagnosis[]> {
    const budget = this.#diagnosisBudget;
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
    const engine = {
      check: async (uses: ImageUse[], opts: CheckOptions): Promise<Finding[]> => {
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
          const findings = asked.length ? await this.#diagnosisEngine.check(asked, opts) : [];
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
      { reader, engine, credentials: this.#deps.credentials, deadlineMs: this.#deps.config.deadline },
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
    const maxSeries = this.#deps.config.watch.maxSeries;
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
        this.#schedule(this.#deps.config.watch.interval);
      });
    }, ms);
  }

  async #runRound(): Promise<void> {
    if (!this.lease.leader) return;
    try {
      const stopped = await this.reverifier.round();
      if (this.lease.leader) await this.reverifier.announce(stopped);
    } catch (err) {
      this.#deps.logger?.warn({ err: (err as Error).message }, 're-verification round failed');
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
    await this.pods.stop();
    await this.lease.stop();
    await Promise.all([this.#engine.close(), this.#diagnosisEngine.close()]);
  }
}
