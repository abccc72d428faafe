// What pullguard's lists keep of each object, as pure functions of its parsed JSON: a pod as a
// WatchedPod (who it is, its node and owner, its containers' images and waiting states, its pull
// secrets, where an unplaced pod may land), a node as its NodeFacts (platform, labels, taints,
// images). The page worker (page-worker.ts) applies them to list pages by name and loads this
// module alone, so it is kept free of everything else; watch events and small pages are projected
// on the main thread by the same functions.
import type { PlacementNode, Taint } from '../placement/placement.ts';
import type { Projection } from './page-split.ts';

export interface WatchedContainer {
  name: string;
  image?: string;
  imagePullPolicy?: string;
}

export interface WatchedContainerStatus {
  name: string;
  image?: string;
  state?: { waiting?: { reason?: string; message?: string } };
}

/** A volume by name; an image volume with its reference (the others keep their place in the list). */
export interface WatchedVolume {
  name: string;
  image?: { reference?: string; pullPolicy?: string };
}

export interface WatchedPod {
  metadata: {
    uid: string;
    namespace: string;
    name: string;
    /** kind and name of each owner (a pod with one is checked through its owner) */
    ownerReferences?: { kind: string; name: string }[];
  };
  spec: {
    nodeName?: string;
    serviceAccountName?: string;
    imagePullSecrets?: { name: string }[];
    initContainers?: WatchedContainer[];
    containers?: WatchedContainer[];
    ephemeralContainers?: WatchedContainer[];
    volumes?: WatchedVolume[];
    /** where a pod not yet on a node may land (placement/): kept only while it has no nodeName */
    nodeSelector?: unknown;
    affinity?: unknown;
    tolerations?: unknown;
    os?: unknown;
    hostNetwork?: unknown;
  };
  status: {
    phase?: string;
    initContainerStatuses?: WatchedContainerStatus[];
    containerStatuses?: WatchedContainerStatus[];
    ephemeralContainerStatuses?: WatchedContainerStatus[];
  };
}

/**
 * Waiting reasons that mean the image could not be pulled (or, for ImageInspectError, not even looked
 * up on the node), each with where the kubelet or the runtime writes it. The kubelet copies the
 * error's text into state.waiting.reason (kuberuntime_manager.go SyncPod: startContainerResult.Fail).
 * One table: diagnose, the watch and its metric all read it.
 */
export const STUCK_REASON_SOURCES = {
  // kubernetes pkg/kubelet/images/types.go ErrImagePull; image_manager.go evalCRIPullErr's fallback
  ErrImagePull: 'kubernetes pkg/kubelet/images/types.go ErrImagePull',
  // types.go ErrImagePullBackOff; image_manager.go pullImage (IsInBackOffSinceUpdate)
  ImagePullBackOff: 'kubernetes pkg/kubelet/images/types.go ErrImagePullBackOff',
  // types.go ErrInvalidImageName; image_manager.go EnsureImageExists ("Failed to apply default image tag")
  InvalidImageName: 'kubernetes pkg/kubelet/images/types.go ErrInvalidImageName',
  // types.go ErrImageNeverPull; image_manager.go imageNotPresentOnNeverPolicyError
  ErrImageNeverPull: 'kubernetes pkg/kubelet/images/types.go ErrImageNeverPull',
  // types.go ErrImageInspect; image_manager.go imagePullPrecheck ("Failed to inspect image %q: %v",
  // event InspectFailed): the runtime could not say whether the image is on the node
  ImageInspectError: 'kubernetes pkg/kubelet/images/types.go ErrImageInspect',
  // cri-api pkg/errors ErrRegistryUnavailable, mapped by image_manager.go evalCRIPullErr ("image pull
  // failed for %s because the registry is unavailable%s"); CRI-O server/image_pull.go wraps ECONNREFUSED
  // in it (kubernetes#117717)
  RegistryUnavailable:
    'k8s.io/cri-api pkg/errors ErrRegistryUnavailable (kubelet images/image_manager.go evalCRIPullErr)',
  // cri-api pkg/errors ErrSignatureValidationFailed, mapped by evalCRIPullErr ("… because the signature
  // validation failed%s"); CRI-O internal/storage/image.go WrapSignatureCRIErrorIfNeeded wraps
  // containers/image's PolicyRequirementError and InvalidSignatureError in it (kubernetes#117935)
  SignatureValidationFailed:
    'k8s.io/cri-api pkg/errors ErrSignatureValidationFailed (kubelet images/image_manager.go evalCRIPullErr)',
} as const;

/** Whether a waiting reason means the image could not be pulled (a key of STUCK_REASON_SOURCES). */
export function isStuckReason(reason: string | undefined): boolean {
  return reason !== undefined && Object.hasOwn(STUCK_REASON_SOURCES, reason);
}

/**
 * Whether a pod waits on an image pull: a container (init, app or ephemeral) waiting with one of
 * STUCK_REASON_SOURCES' reasons.
 */
function waitsOnPull(pod: WatchedPod): boolean {
  const { initContainerStatuses = [], containerStatuses = [], ephemeralContainerStatuses = [] } = pod.status;
  for (const list of [initContainerStatuses, containerStatuses, ephemeralContainerStatuses])
    for (const s of list) if (isStuckReason(s.state?.waiting?.reason)) return true;
  return false;
}

/**
 * The pods the watch holds: those stuck on an image now (diagnosed, counted in the metric) and bare
 * ones (no owner: re-verified themselves). Any other pod is checked through its owner, so the watch
 * lets it go once parsed.
 */
function heldByWatch(pod: WatchedPod): boolean {
  return !pod.metadata.ownerReferences?.length || waitsOnPull(pod);
}

/** Every pod, as its WatchedPod. */
export const PODS: Projection<WatchedPod> = { name: 'pods', project: (object) => watchedPod(object) };
/** The pods waiting on an image pull (`diagnose`). */
export const STUCK_PODS: Projection<WatchedPod> = {
  name: 'stuck-pods',
  project: (object) => {
    const pod = watchedPod(object);
    return pod && waitsOnPull(pod) ? pod : undefined;
  },
};
/** The pods the watch holds (heldByWatch). */
export const WATCHED_PODS: Projection<WatchedPod> = {
  name: 'watched-pods',
  project: (object) => {
    const pod = watchedPod(object);
    return pod && heldByWatch(pod) ? pod : undefined;
  },
};

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function list<T>(v: unknown, each: (o: Obj) => T | undefined): T[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out: T[] = [];
  for (const x of v) {
    const o = obj(x);
    const item = o && each(o);
    if (item !== undefined) out.push(item);
  }
  return out;
}

/** Copies the named string fields that are set. */
function pick<K extends string>(o: Obj, keys: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const k of keys) {
    const v = str(o[k]);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function container(c: Obj): WatchedContainer {
  return { name: str(c.name) ?? '', ...pick(c, ['image', 'imagePullPolicy'] as const) };
}

function containerStatus(s: Obj): WatchedContainerStatus {
  const waiting = obj(obj(s.state)?.waiting);
  return {
    name: str(s.name) ?? '',
    ...pick(s, ['image'] as const),
    ...(waiting ? { state: { waiting: pick(waiting, ['reason', 'message'] as const) } } : {}),
  };
}

function volume(v: Obj): WatchedVolume {
  const image = obj(v.image);
  return { name: str(v.name) ?? '', ...(image ? { image: pick(image, ['reference', 'pullPolicy'] as const) } : {}) };
}

function imageVolumes(volumes: WatchedVolume[] | undefined): WatchedVolume[] | undefined {
  return volumes?.some((v) => v.image) ? volumes : undefined;
}

/** A pod's uid (parsed JSON). */
export function podUid(object: unknown): string | undefined {
  return str(obj(obj(object)?.metadata)?.uid);
}

/** What is kept of a pod (parsed JSON); undefined without a uid. */
export function watchedPod(object: unknown): WatchedPod | undefined {
  const o = obj(object);
  const meta = obj(o?.metadata);
  const uid = str(meta?.uid);
  if (!o || !meta || !uid) return undefined;
  const status = obj(o.status) ?? {};
  const owners = list(meta.ownerReferences, (r) => ({ kind: str(r.kind) ?? '', name: str(r.name) ?? '' }));
  const statuses = {
    initContainerStatuses: list(status.initContainerStatuses, containerStatus),
    containerStatuses: list(status.containerStatuses, containerStatus),
    ephemeralContainerStatuses: list(status.ephemeralContainerStatuses, containerStatus),
  };
  return {
    metadata: {
      uid,
      namespace: str(meta.namespace) ?? '',
      name: str(meta.name) ?? '',
      ...(owners?.length ? { ownerReferences: owners } : {}),
    },
    spec: podSpecOf(obj(o.spec) ?? {}),
    status: { ...pick(status, ['phase'] as const), ...defined(statuses) },
  };
}

/**
 * What is kept of a pod spec (a pod's, or a workload's template): what the pod check reads of it,
 * its images and pull policies, its credentials and where it may land.
 */
function podSpecOf(spec: Obj): WatchedPod['spec'] {
  const secrets = list(spec.imagePullSecrets, (s) => (str(s.name) ? { name: str(s.name) as string } : undefined));
  const lists = {
    initContainers: list(spec.initContainers, container),
    containers: list(spec.containers, container),
    ephemeralContainers: list(spec.ephemeralContainers, container),
    // only when one is an image volume: the others matter only for its index in the list
    volumes: imageVolumes(list(spec.volumes, volume)),
  };
  return {
    ...pick(spec, ['nodeName', 'serviceAccountName'] as const),
    // A pod on its node is judged for that node; one not yet placed, by where it may land.
    ...(str(spec.nodeName) ? {} : unplaced(spec)),
    ...(secrets?.length ? { imagePullSecrets: secrets } : {}),
    ...defined(lists),
  };
}

/** A workload as its list keeps it: who it is, and its pod template's spec as podSpecOf keeps it. */
export interface KeptWorkload {
  metadata: { name: string; namespace: string; uid?: string };
  /** spec.template (Deployment, StatefulSet, DaemonSet) or spec.jobTemplate.spec.template (CronJob) */
  spec: { template?: { spec: WatchedPod['spec'] }; jobTemplate?: { spec: { template: { spec: WatchedPod['spec'] } } } };
}

/** What is kept of a workload (parsed JSON) for re-verification; undefined without a name or a pod template. */
export function keptWorkload(object: unknown): KeptWorkload | undefined {
  const o = obj(object);
  const meta = obj(o?.metadata);
  const name = str(meta?.name);
  const spec = obj(o?.spec);
  if (!meta || !name || !spec) return undefined;
  const uid = str(meta.uid);
  const metadata = { name, namespace: str(meta.namespace) ?? '', ...(uid ? { uid } : {}) };
  const template = obj(obj(spec.template)?.spec);
  if (template) return { metadata, spec: { template: { spec: podSpecOf(template) } } };
  const job = obj(obj(obj(obj(spec.jobTemplate)?.spec)?.template)?.spec);
  if (job) return { metadata, spec: { jobTemplate: { spec: { template: { spec: podSpecOf(job) } } } } };
  return undefined;
}

/** Deployments, StatefulSets, DaemonSets and CronJobs as re-verification reads them. */
export const WORKLOADS: Projection<KeptWorkload> = { name: 'workloads', project: keptWorkload };

/** The placement fields of a pod spec that are set (placement/placement.ts reads them). */
function unplaced(spec: Record<string, unknown>): Partial<WatchedPod['spec']> {
  const out: Partial<WatchedPod['spec']> = {};
  for (const k of ['nodeSelector', 'affinity', 'tolerations', 'os', 'hostNetwork'] as const)
    if (spec[k] !== undefined && spec[k] !== null) out[k] = spec[k];
  return out;
}

/** The entries whose value is a non-empty list. */
function defined<T extends Record<string, unknown[] | undefined>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v?.length) out[k as keyof T] = v as T[keyof T];
  return out;
}

export interface NodeFacts extends PlacementNode {
  name: string;
  /** status.nodeInfo.operatingSystem, else the kubernetes.io/os label, else '' */
  os: string;
  /** status.nodeInfo.architecture, else the kubernetes.io/arch label, else '' */
  architecture: string;
  /** every name in status.images (capped by the kubelet, so only a hint); interned when watched */
  images: readonly string[];
}

// Loosely typed: a node as parsed JSON, the fields nodeFacts reads.
export interface NodeLike {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: { taints?: { key?: string; value?: string; effect?: string }[] };
  status?: {
    nodeInfo?: { operatingSystem?: string; architecture?: string };
    images?: { names?: string[] }[];
  };
}

/**
 * What pullguard reads of a node, the one place its platform is worked out: status.nodeInfo as the
 * kubelet reports it, else the kubernetes.io/os and kubernetes.io/arch labels; its labels and the
 * taints that keep pods away (placement); its images. The node watch (with a pool that holds each
 * repeated string once) and the reads for a diagnosis both come here.
 */
export function nodeFacts(node: NodeLike | undefined, pool?: { intern(s: string): string }): NodeFacts | undefined {
  const name = node?.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(node?.metadata?.labels ?? {})) {
    if (typeof v === 'string') labels[k] = v;
  }
  const taints: Taint[] = [];
  for (const t of node?.spec?.taints ?? []) {
    if (typeof t?.key !== 'string' || (t.effect !== 'NoSchedule' && t.effect !== 'NoExecute')) continue;
    taints.push({ key: t.key, effect: t.effect, ...(typeof t.value === 'string' ? { value: t.value } : {}) });
  }
  const info = node?.status?.nodeInfo;
  const images = new Set<string>();
  for (const img of node?.status?.images ?? []) {
    for (const n of img?.names ?? []) if (typeof n === 'string') images.add(n);
  }
  const facts: NodeFacts = {
    name,
    os: info?.operatingSystem || labels['kubernetes.io/os'] || '',
    architecture: info?.architecture || labels['kubernetes.io/arch'] || '',
    labels,
    taints,
    images: [...images],
  };
  return pool ? pooled(facts, pool) : facts;
}

/** A node's facts with each repeated string (image names, label keys and values, taints) the pool's one copy. */
export function pooled(node: NodeFacts, pool: { intern(s: string): string }): NodeFacts {
  const own = (s: string) => pool.intern(s);
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(node.labels)) labels[own(k)] = own(v);
  return {
    ...node,
    labels,
    taints: node.taints.map((t) => ({
      ...t,
      key: own(t.key),
      ...(t.value !== undefined ? { value: own(t.value) } : {}),
    })),
    images: node.images.map(own),
  };
}

/** What a node list keeps of each node (page-worker.ts applies it by name): its facts, strings not yet pooled. */
export const NODE_FACTS: Projection<NodeFacts> = {
  name: 'node-facts',
  project: (object) => nodeFacts(object as NodeLike),
};
