// The watch's composition root (watch.enabled): its two pod checks, each with an engine of its own
// whose registry client counts against a budget of its own (watch.registryBudget per registry,
// watch.roundBudget in all): re-verification's per round, diagnosis's per interval, so that a long
// round does not starve the diagnosis of a pod that just got stuck, nor the reverse. Its API
// clients (Events, the Lease, pods, workload lists) are made here too; the Watch gets the parts.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { EventApi } from '../cluster/events.ts';
import { LeaseLock } from '../cluster/lease.ts';
import { AllPods } from '../cluster/all-pods.ts';
import { WATCHED_PODS } from '../cluster/projections.ts';
import { PodReader } from '../cluster/pods.ts';
import { WorkloadLists } from '../cluster/workloads.ts';
import type { Config } from '../config/schema.ts';
import { PodCheck } from '../podcheck/podcheck.ts';
import { Preflight } from '../preflight/engine.ts';
import type { ClientOptions, RegistryClient } from '../registry/client.ts';
import { RequestBudget } from '../watch/budget.ts';
import { Watch } from '../watch/watch.ts';

/** The pod list of replicas started together is spread over this much time (list-watch.ts startJitterMs). */
const POD_LIST_JITTER_MS = 5_000;

export interface WatchSetup {
  kc: KubeConfig;
  /** the webhook's pod check: the keyrings and plugins pods' pulls use, the nodes they land on */
  podCheck: PodCheck;
  /** a registry client as the webhook's (CAs, proxies, insecure hosts), with the watch's own observers */
  registryClient: (hooks: Pick<ClientOptions, 'onResponse' | 'onFailure'>) => RegistryClient;
  /** where the watch's metrics go */
  registry: Registry;
  logger?: Logger;
  /** this replica's name in the Lease */
  identity: string;
  leaseNamespace: string;
}

export function buildWatch(config: Config, setup: WatchSetup): Watch {
  const w = config.watch;
  // Engines of their own: answers cached for less than an interval, so every round asks the
  // registry again; no tag lists for suggestions (manifest HEADs only), and no config or layer
  // blobs of index builds, nor layers at all: a check's requests must stay near the one place in
  // the budget it takes (admission and `check` look at the blobs).
  const fresh = Math.max(1_000, Math.floor(w.interval / 2));
  const engineConfig: Config = {
    ...config,
    cache: {
      ...config.cache,
      positiveTtl: Math.min(config.cache.positiveTtl, fresh),
      negativeTtl: Math.min(config.cache.negativeTtl, fresh),
    },
    registry: { ...config.registry, maxTagsForSuggestions: 0, verifyLayers: false },
  };
  const engines: Preflight[] = [];
  // A rate limit either engine heard of stops both.
  const rateLimits = () => engines.flatMap((e) => [...e.client.rateLimits.values()]);
  const budget = (windowMs?: number) =>
    new RequestBudget({
      perRegistry: w.registryBudget,
      total: w.roundBudget,
      rateLimitThreshold: config.registry.rateLimitThreshold,
      rateLimits,
      ...(windowMs ? { windowMs } : {}),
    });
  const checkCounted = (b: RequestBudget): PodCheck => {
    const engine = new Preflight(
      engineConfig,
      setup.registryClient({ onResponse: (host) => b.spend(host), onFailure: (host) => b.spend(host) }),
    );
    engines.push(engine);
    return new PodCheck({ ...setup.podCheck.shared, engine });
  };
  const roundBudget = budget(); // reset by every round
  const diagnosisBudget = budget(w.interval);
  const logger = setup.logger ? { logger: setup.logger } : {};
  return new Watch({
    settings: w,
    deadlineMs: config.deadline,
    reverification: { podCheck: checkCounted(roundBudget), budget: roundBudget },
    diagnosis: { podCheck: checkCounted(diagnosisBudget), budget: diagnosisBudget },
    cluster: {
      events: new EventApi(setup.kc),
      lease: new LeaseLock(setup.kc, { namespace: setup.leaseNamespace, name: w.leaseName }),
      pods: new AllPods(setup.kc, { ...logger, which: WATCHED_PODS, startJitterMs: POD_LIST_JITTER_MS }),
      reader: new PodReader(setup.kc, Math.max(5_000, config.deadline)),
      workloads: new WorkloadLists(setup.kc),
    },
    registry: setup.registry,
    identity: setup.identity,
    ...logger,
    close: async () => {
      await Promise.all(engines.map((e) => e.close()));
    },
  });
}
