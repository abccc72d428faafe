// Check the images of one pod spec as the kubelet would: the keyring it will build (the pod's pull
// secrets, or its ServiceAccount's, then the node's), the platforms of the nodes it may land on, and
// the registry's answers through the engine. The webhook, `pullguard check`, diagnose and the
// watch's re-verification all come here; this module alone splits their deadline between cluster
// reads and registry requests.

import { then, type Maybe } from '../cache.ts';
import type { Deadline } from '../deadline.ts';
import type { PodCredentials } from './credentials.ts';
import type { Finding, ImageUse } from '../findings.ts';
import type { Platform } from '../platform/index.ts';
import { placementOf, type Placement } from '../placement/placement.ts';
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
  /** the platforms of the nodes a pod with this placement may land on (all nodes without one) */
  platforms(placement?: Placement): readonly Platform[];
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

/** What is known of the node a pod already runs on: it stands for the cluster's nodes. */
export interface NodeFacts {
  /** its platform, when it reports one */
  platform?: Platform;
  /** whether it reports one of these image names in status.images */
  hasImage(names: string[]): boolean;
}

export interface PodCheckOptions {
  /** when the answer is due, and the caller's signal (a client that went away, a shutdown) */
  deadline: Deadline;
  /** the pod's node, when it is on one (diagnose): its platform, not the cluster's, is checked */
  node?: NodeFacts;
  /** registry answers older than this are asked again (re-verification); default: any cached one */
  maxAgeMs?: number;
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

  /**
   * What another pod check shares with this one: the credentials, the nodes and the configured
   * platforms (the watch's checks, whose engines count requests against budgets of their own).
   */
  get shared(): Pick<PodCheckParts, 'credentials' | 'platforms' | 'nodes'> {
    return { credentials: this.#credentials, platforms: this.#configured, nodes: this.#nodes };
  }

  /** Whether checks can see what they need (the nodes' platforms, when those are required). */
  get ready(): boolean {
    return this.#configured.length > 0 || !this.#nodes || this.#nodes.ready;
  }

  /**
   * One finding per use, by the deadline: cluster reads first (within their share of it), then the
   * registries. At once when everything it needs is cached (most webhook reviews).
   */
  check(pod: PodSite, uses: ImageUse[], opts: PodCheckOptions): Maybe<Finding[]> {
    if (!uses.length) return [];
    const cluster = opts.deadline.share(CLUSTER_SHARE);
    const credentials = this.#credentials.forSite(pod.site ?? NO_SITE, pod.namespace, cluster);
    const node = opts.node;
    // The nodes' list is waited for (beside the cluster reads) only when it has not come yet.
    const site = pod.site ?? NO_SITE;
    const known = node ? (node.platform ? [node.platform] : NO_PLATFORMS) : this.#platformsKnown(site);
    if (known) return then(credentials, (c) => this.engine.check(uses, this.#options(c, known, opts)));
    return Promise.all([credentials, this.#nodesListed(site, cluster.ms())]).then(([c, platforms]) =>
      this.engine.check(uses, this.#options(c, platforms, opts)),
    );
  }

  #options(credentials: CredentialContext, platforms: readonly Platform[], opts: PodCheckOptions): CheckOptions {
    const options: CheckOptions = { credentials, platforms, deadline: opts.deadline };
    if (opts.onSettled) options.onSettled = opts.onSettled;
    if (opts.maxAgeMs !== undefined) options.maxAgeMs = opts.maxAgeMs;
    const imageOnAnyNode = opts.node ? (names: string[]) => opts.node!.hasImage(names) : this.#imageOnAnyNode;
    if (imageOnAnyNode) options.imageOnAnyNode = imageOnAnyNode;
    return options;
  }

  /**
   * The platforms of the nodes the pod spec may land on now, or undefined when the check must wait
   * for the nodes' first list. None when no node fits its placement: then it is not an image's
   * problem, and platforms are not judged.
   */
  #platformsKnown(site: PodSpecSite): readonly Platform[] | undefined {
    if (this.#configured.length) return this.#configured;
    const nodes = this.#nodes;
    if (!nodes) return NO_PLATFORMS;
    return !nodes.ready && this.#waitForNodes ? undefined : nodes.platforms(placementOf(site.spec, site.kind));
  }

  /** The same once the nodes' first list has come (or `waitMs` passed: then what is known). */
  async #nodesListed(site: PodSpecSite, waitMs: number): Promise<readonly Platform[]> {
    const nodes = this.#nodes!;
    await nodes.whenReady(waitMs);
    return nodes.platforms(placementOf(site.spec, site.kind));
  }

  async close(): Promise<void> {
    await this.#close?.();
  }
}
