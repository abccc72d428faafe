// Check the images of one pod spec as the kubelet would: the keyring it will build (the pod's pull
// secrets, or its ServiceAccount's, then the node's), the platforms of the nodes it may land on, and
// the registry's answers through the engine. The webhook and `pullguard check` both come here; this
// module alone splits their deadline between cluster reads and registry requests.

import type { PodCredentials } from './credentials.ts';
import type { Finding, ImageUse } from '../findings.ts';
import type { Platform } from '../platform/index.ts';
import type { CheckOptions, Preflight } from '../preflight/engine.ts';
import type { CredentialContext } from '../credentials/context.ts';
import type { PodSpecSite } from '../workload/images.ts';

/** Where a pod spec sits: its object (none for images named on the command line) and namespace. */
export interface PodSite {
  site?: PodSpecSite;
  /** the namespace its secrets and ServiceAccount are read from */
  namespace: string;
}

/** The nodes pods may land on, as far as they are known. */
export interface NodeView {
  /** the first list has arrived */
  readonly ready: boolean;
  /** resolves true once ready, false after timeoutMs */
  whenReady(timeoutMs: number): Promise<boolean>;
  platforms(): readonly Platform[];
  imageOnAnyNode(names: string[]): boolean;
}

export interface PodCheckParts {
  engine: Preflight;
  credentials: PodCredentials;
  /** configured platforms: when given, the nodes' are not asked */
  platforms?: readonly Platform[];
  /** the cluster's nodes, when they are watched */
  nodes?: NodeView | null;
  /**
   * Wait for the first node list (within the cluster's share of the deadline) before checking.
   * `pullguard check` does; the webhook does not: its readiness probe waits for the list instead.
   */
  waitForNodes?: boolean;
  /** stops what was started for this check (node watch, connection pools) */
  close?: () => Promise<void>;
}

export interface PodCheckOptions {
  /** when the answer is due, on the performance.now() clock */
  deadline: number;
  /** the caller gave up (a client that went away, a shutdown) */
  signal?: AbortSignal;
  /** called as each image use gets its finding (progress) */
  onSettled?: () => void;
}

/** images named on the command line belong to no object: a pod spec with nothing in it */
const NO_SITE: PodSpecSite = { kind: 'Pod', specPath: 'spec', spec: {}, template: false };
const NO_PLATFORMS: readonly Platform[] = [];

/** Cluster reads may use this share of the time left at most, so the registries still get the rest. */
const CLUSTER_SHARE = 0.5;

export class PodCheck {
  readonly engine: Preflight;
  readonly #credentials: PodCredentials;
  readonly #configured: readonly Platform[];
  readonly #nodes: NodeView | null;
  readonly #waitForNodes: boolean;
  readonly #close: (() => Promise<void>) | undefined;
  readonly #imageOnAnyNode: ((names: string[]) => boolean | undefined) | undefined;

  constructor(parts: PodCheckParts) {
    this.engine = parts.engine;
    this.#credentials = parts.credentials;
    this.#configured = parts.platforms ?? [];
    this.#nodes = parts.nodes ?? null;
    this.#waitForNodes = parts.waitForNodes ?? false;
    this.#close = parts.close;
    const nodes = this.#nodes;
    if (nodes) this.#imageOnAnyNode = (names) => (nodes.ready ? nodes.imageOnAnyNode(names) : undefined);
  }

  /** Whether checks can see what they need (the nodes' platforms, when those are required). */
  get ready(): boolean {
    return this.#configured.length > 0 || !this.#nodes || this.#nodes.ready;
  }

  /** One finding per use, by the deadline: cluster reads first (bounded), then the registries. */
  async check(pod: PodSite, uses: ImageUse[], opts: PodCheckOptions): Promise<Finding[]> {
    if (!uses.length) return [];
    const clusterMs = Math.max(1, Math.floor((opts.deadline - performance.now()) * CLUSTER_SHARE));
    // Made only when the cluster is asked: a review answered from caches needs no timer.
    const cutoff = () => {
      const limit = AbortSignal.timeout(clusterMs);
      return opts.signal ? AbortSignal.any([opts.signal, limit]) : limit;
    };
    const site = pod.site ?? NO_SITE;
    // The nodes' list is waited for (beside the cluster reads) only when it has not come yet.
    const known = this.#platformsKnown();
    let credentials: CredentialContext;
    let platforms: readonly Platform[];
    if (known) {
      credentials = await this.#credentials.forSite(site, pod.namespace, cutoff);
      platforms = known;
    } else
      [credentials, platforms] = await Promise.all([
        this.#credentials.forSite(site, pod.namespace, cutoff),
        this.#nodesListed(clusterMs),
      ]);
    return this.engine.check(uses, this.#options(credentials, platforms, opts));
  }

  /**
   * The findings now, when the cluster reads and registry answers they need are all cached and the
   * platforms are known (most webhook reviews); otherwise undefined, and check() does the work.
   */
  cachedFindings(pod: PodSite, uses: ImageUse[], opts: PodCheckOptions): Finding[] | undefined {
    if (!uses.length) return [];
    const platforms = this.#platformsKnown();
    if (!platforms) return undefined;
    const credentials = this.#credentials.forSiteCached(pod.site ?? NO_SITE, pod.namespace);
    const findings = credentials && this.engine.cachedFindings(uses, this.#options(credentials, platforms, opts));
    if (findings && opts.onSettled) for (const _ of uses) opts.onSettled();
    return findings;
  }

  #options(credentials: CredentialContext, platforms: readonly Platform[], opts: PodCheckOptions): CheckOptions {
    // Whole milliseconds: the engine puts this number in the timeout message ("within 1497 ms").
    const options: CheckOptions = {
      credentials,
      platforms,
      deadline: Math.max(1, Math.floor(opts.deadline - performance.now())),
    };
    if (opts.onSettled) options.onSettled = opts.onSettled;
    if (opts.signal) options.signal = opts.signal;
    if (this.#imageOnAnyNode) options.imageOnAnyNode = this.#imageOnAnyNode;
    return options;
  }

  /** The platforms now, or undefined when the check must wait for the nodes' first list. */
  #platformsKnown(): readonly Platform[] | undefined {
    if (this.#configured.length) return this.#configured;
    const nodes = this.#nodes;
    if (!nodes) return NO_PLATFORMS;
    return !nodes.ready && this.#waitForNodes ? undefined : nodes.platforms();
  }

  /** The nodes' platforms once their first list has come (or `waitMs` passed: then what is known). */
  async #nodesListed(waitMs: number): Promise<readonly Platform[]> {
    const nodes = this.#nodes!;
    await nodes.whenReady(waitMs);
    return nodes.platforms();
  }

  async close(): Promise<void> {
    await this.#close?.();
  }
}
