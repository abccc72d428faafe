// The watch in `pullguard serve` (watch.enabled): the pod watch that diagnoses stuck pulls and the
// periodic re-verification of running workloads' images, both acting only on the replica that
// holds the Lease. Metrics: pullguard_pods_pull_failing and pullguard_workload_image_pullable.
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { PodReader } from '../cluster/pods.ts';
import type { Config } from '../config.ts';
import type { PodCredentials } from '../podcheck/credentials.ts';
import { diagnoseOne } from '../diagnose/pods.ts';
import { Preflight } from '../preflight/engine.ts';
import type { ClientOptions, RegistryClient } from '../registry/client.ts';
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

export class Watch {
  readonly lease: LeaderLease;
  readonly pods: PodWatch;
  readonly reverifier: Reverifier;
  readonly #engine: Preflight;
  readonly #deps: WatchDeps;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;
  readonly #requests = new Map<string, number>();

  constructor(deps: WatchDeps) {
    this.#deps = deps;
    const w = deps.config.watch;
    const logger = deps.logger;
    // Its own engine: answers cached for less than an interval, so every round asks the registry
    // again; no tag lists for suggestions (manifest HEADs only).
    const fresh = Math.max(1_000, Math.floor(w.interval / 2));
    this.#engine = new Preflight(
      {
        ...deps.config,
        cache: {
          ...deps.config.cache,
          positiveTtl: Math.min(deps.config.cache.positiveTtl, fresh),
          negativeTtl: Math.min(deps.config.cache.negativeTtl, fresh),
        },
        registry: { ...deps.config.registry, maxTagsForSuggestions: 0 },
      },
      deps.registryClient({
        onResponse: (host) => this.#requests.set(host, (this.#requests.get(host) ?? 0) + 1),
        onFailure: (host) => this.#requests.set(host, (this.#requests.get(host) ?? 0) + 1),
      }),
    );
    const events = new EventPoster(deps.kc, {
      identity: deps.identity,
      minIntervalMs: w.eventInterval,
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
      diagnose: (pod: V1Pod) =>
        diagnoseOne(
          { reader, engine: this.#engine, credentials: deps.credentials, deadlineMs: deps.config.deadline },
          pod,
          false,
        ),
      ...(logger ? { logger } : {}),
    });
    this.reverifier = new Reverifier({
      kc: deps.kc,
      engine: this.#engine,
      credentials: deps.credentials,
      events,
      budget: w.registryBudget,
      rateLimitThreshold: deps.config.registry.rateLimitThreshold,
      deadlineMs: deps.config.deadline,
      pods: () => this.pods.pods(),
      requestsTo: (host) => this.#requests.get(host) ?? 0,
      ...(logger ? { logger } : {}),
    });
    this.#metrics(deps.registry);
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
        for (const r of reverifier.results())
          pullable.set(
            {
              namespace: r.namespace,
              kind: r.kind,
              name: r.name,
              container: r.container,
              image: r.image,
              reason: r.reason,
            },
            r.pullable,
          );
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
    await this.#engine.close();
  }
}
