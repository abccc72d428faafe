// What the kubelet recorded about a pod's image pulls: each container's waiting reason and message,
// and the Failed/BackOff events that name it (involvedObject.fieldPath "spec.containers{web}").
// From those: how long the pull has been failing, how many times, and the kubelet's current back-off
// (10 s doubling to 5 minutes per image, as its image puller does).
// Anyone who may create Events in a namespace can write one about any pod, so only the kubelet's
// own (source.component, reportingComponent or reportingController "kubelet") count as its
// evidence; the others are kept apart, to be shown as such and used for nothing.

import { parseImageName } from '../reference/index.ts';
import { isStuckReason } from '../cluster/projections.ts';

export const BACKOFF_INITIAL_S = 10;
export const BACKOFF_MAX_S = 300;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** An Event as both APIs give it (core/v1, or events.k8s.io/v1 read through core/v1). */
export interface PodEvent {
  type?: string;
  reason?: string;
  message?: string;
  fieldPath?: string;
  /** who reported it: source.component, reportingComponent (core/v1) or reportingController (events.k8s.io/v1) */
  source?: string;
  /** reported by the kubelet, and by nobody else */
  fromKubelet: boolean;
  count: number;
  first?: Date;
  last?: Date;
}

const CONTAINER_LISTS = ['initContainers', 'containers', 'ephemeralContainers'] as const;
type ContainerList = (typeof CONTAINER_LISTS)[number];
const STATUS_LISTS: Record<ContainerList, string> = {
  initContainers: 'initContainerStatuses',
  containers: 'containerStatuses',
  ephemeralContainers: 'ephemeralContainerStatuses',
};

export interface ContainerEvidence {
  container: string;
  list: ContainerList;
  /**
   * the image volume (volumes[].image) whose pull failed, when the container waits on one: the
   * kubelet pulls a pod's image volumes before its containers and fails each container that mounts a
   * volume that did not pull with that pull's reason and message; the pull's own events are on the pod,
   * without a fieldPath (kuberuntime_manager.go getImageVolumes, toKubeContainerImageVolumes)
   */
  volume?: string;
  /** from the spec (what the kubelet pulls), else the status */
  image: string;
  pullPolicy?: string;
  /** the container's waiting reason and message, when it waits */
  reason?: string;
  message?: string;
  /** the kubelet's Failed and BackOff events about this container, newest last */
  events: PodEvent[];
  /** such events reported by someone else than the kubelet (the first MAX_UNTRUSTED), never used */
  untrusted: PodEvent[];
  /** how many such events there were */
  untrustedCount: number;
  /** failed pulls the events count */
  failedPulls: number;
  /** the first and the latest failed pull the events show */
  since?: Date;
  lastFailure?: Date;
}

function toDate(v: unknown): Date | undefined {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v;
  if (typeof v !== 'string' || v === '') return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** At most this many events not from the kubelet are kept per container, to show. */
export const MAX_UNTRUSTED = 5;

/** One Event object (plain JSON or a client-node instance) as the fields diagnose needs. */
export function podEventOf(e: unknown): PodEvent {
  const o = isObj(e) ? e : {};
  const involved = isObj(o.involvedObject) ? o.involvedObject : isObj(o.regarding) ? o.regarding : {};
  const series = isObj(o.series) ? o.series : undefined;
  const meta = isObj(o.metadata) ? o.metadata : {};
  const count = Number(series?.count ?? o.count ?? o.deprecatedCount ?? 1) || 1;
  const first =
    toDate(o.firstTimestamp) ??
    toDate(o.deprecatedFirstTimestamp) ??
    toDate(o.eventTime) ??
    toDate(meta.creationTimestamp);
  const last =
    toDate(series?.lastObservedTime) ??
    toDate(o.lastTimestamp) ??
    toDate(o.deprecatedLastTimestamp) ??
    toDate(o.eventTime) ??
    first;
  const source = isObj(o.source) ? o.source : isObj(o.deprecatedSource) ? o.deprecatedSource : {};
  // Every reporter field that is set must say kubelet: a forger who sets one and not the other is caught.
  const reporters = [str(source.component), str(o.reportingComponent), str(o.reportingController)].filter(
    (r): r is string => r !== undefined && r !== '',
  );
  const out: PodEvent = { count, fromKubelet: reporters.length > 0 && reporters.every((r) => r === 'kubelet') };
  if (reporters.length) out.source = reporters.find((r) => r !== 'kubelet') ?? reporters[0]!;
  const set = <K extends keyof PodEvent>(k: K, v: PodEvent[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('type', str(o.type));
  set('reason', str(o.reason));
  set('message', str(o.message) ?? str(o.note));
  set('fieldPath', str(involved.fieldPath));
  set('first', first);
  set('last', last);
  return out;
}

function isPullEvent(e: PodEvent): boolean {
  if (e.reason === 'BackOff') return /pulling image/i.test(e.message ?? '');
  if (e.reason === 'Failed' || e.reason === 'InspectFailed' || e.reason === 'ErrImageNeverPull') return true;
  return false;
}

/** A failed pull attempt (not the "Error: ErrImagePull" echo nor a back-off notice). */
function isPullFailure(e: PodEvent): boolean {
  return e.reason === 'Failed' && /^Failed to pull image/i.test(e.message ?? '');
}

/** An image volume of the pod: its name, reference and pull policy. */
interface ImageVolume {
  name: string;
  reference: string;
  pullPolicy?: string;
}

function imageVolumesOf(spec: Obj): ImageVolume[] {
  const out: ImageVolume[] = [];
  for (const v of Array.isArray(spec.volumes) ? (spec.volumes as unknown[]) : []) {
    if (!isObj(v) || !isObj(v.image)) continue;
    const reference = str(v.image.reference);
    const name = str(v.name);
    if (!reference || !name) continue;
    const policy = str(v.image.pullPolicy);
    out.push({ name, reference, ...(policy ? { pullPolicy: policy } : {}) });
  }
  return out;
}

/**
 * Whether a kubelet text names this image: quoted as given ("Back-off pulling image \"x\""), after
 * "for" (evalCRIPullErr), or quoted as the runtime normalized it (containerd: "docker.io/library/x:1").
 */
function names(text: string, image: string): boolean {
  if (text.includes(`"${image}"`) || text.includes(`for ${image} because`)) return true;
  try {
    const { repo, tag, digest } = parseImageName(image);
    return text.includes(`"${repo}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}"`);
  } catch {
    return false;
  }
}

/**
 * The image volume a container's waiting state is about, if any: one it mounts (all of the pod's
 * when the mounts are not known, as in the watch's projection) whose reference the kubelet's text
 * names while it does not name the container's own image.
 */
function failedVolume(c: Obj, volumes: ImageVolume[], text: string | undefined): ImageVolume | undefined {
  if (!volumes.length || !text) return undefined;
  const own = str(c.image);
  if (own && names(text, own)) return undefined;
  const mounts = Array.isArray(c.volumeMounts)
    ? new Set((c.volumeMounts as unknown[]).map((m) => (isObj(m) ? str(m.name) : undefined)))
    : undefined;
  return volumes.find((v) => (!mounts || mounts.has(v.name)) && names(text, v.reference));
}

/**
 * Evidence per container. With `all`, every container is returned (a pod named on the command
 * line); otherwise only those whose waiting reason is in STUCK_REASON_SOURCES.
 */
export function containerEvidence(pod: unknown, events: PodEvent[], all = false): ContainerEvidence[] {
  const p = isObj(pod) ? pod : {};
  const spec = isObj(p.spec) ? p.spec : {};
  const status = isObj(p.status) ? p.status : {};
  const volumes = imageVolumesOf(spec);
  const out: ContainerEvidence[] = [];
  for (const list of CONTAINER_LISTS) {
    const containers = Array.isArray(spec[list]) ? (spec[list] as unknown[]) : [];
    const statuses = Array.isArray(status[STATUS_LISTS[list]]) ? (status[STATUS_LISTS[list]] as unknown[]) : [];
    for (const c of containers) {
      if (!isObj(c)) continue;
      const name = str(c.name) ?? '';
      const st = statuses.find((s) => isObj(s) && s.name === name) as Obj | undefined;
      const waiting = isObj(st?.state) && isObj(st.state.waiting) ? st.state.waiting : undefined;
      const reason = str(waiting?.reason);
      const stuck = isStuckReason(reason);
      if (!stuck && !all) continue;
      const message = str(waiting?.message);
      const volume = stuck ? failedVolume(c, volumes, message) : undefined;
      // A volume's pull events are the pod's own (no fieldPath) and name its reference.
      const fieldPath = `spec.${list}{${name}}`;
      const about = events.filter((e) =>
        volume
          ? !e.fieldPath && isPullEvent(e) && names(e.message ?? '', volume.reference)
          : e.fieldPath === fieldPath && isPullEvent(e),
      );
      about.sort((a, b) => (a.last?.getTime() ?? 0) - (b.last?.getTime() ?? 0));
      const mine = about.filter((e) => e.fromKubelet);
      const others = about.filter((e) => !e.fromKubelet);
      const failures = mine.filter(isPullFailure);
      const firsts = failures.map((e) => e.first?.getTime()).filter((n): n is number => n !== undefined);
      const lasts = failures.map((e) => e.last?.getTime()).filter((n): n is number => n !== undefined);
      const ev: ContainerEvidence = {
        container: name,
        list,
        ...(volume ? { volume: volume.name } : {}),
        image: volume?.reference ?? str(c.image) ?? str(st?.image) ?? '',
        events: mine,
        untrusted: others.slice(-MAX_UNTRUSTED),
        untrustedCount: others.length,
        failedPulls: failures.reduce((n, e) => n + e.count, 0),
      };
      const policy = volume ? volume.pullPolicy : str(c.imagePullPolicy);
      if (policy) ev.pullPolicy = policy;
      if (reason) ev.reason = reason;
      if (message) ev.message = message;
      if (firsts.length) ev.since = new Date(Math.min(...firsts));
      if (lasts.length) ev.lastFailure = new Date(Math.max(...lasts));
      out.push(ev);
    }
  }
  return out;
}

export interface Backoff {
  /** failed pulls so far */
  attempts: number;
  /** the kubelet's current wait between pulls, seconds */
  seconds: number;
  /** 1 for 10 s, 2 for 20 s, … up to the 5-minute cap */
  step: number;
  /** seconds since the first failure the events show */
  failingForSeconds?: number;
  /** seconds until the next pull is due (0: due now) */
  nextRetryInSeconds?: number;
}

/** The kubelet's back-off after `attempts` failed pulls (doubling from 10 s, capped at 5 minutes). */
export function backoffAfter(ev: Pick<ContainerEvidence, 'failedPulls' | 'since' | 'lastFailure'>, now: Date): Backoff {
  const attempts = Math.max(1, ev.failedPulls);
  const step = Math.min(attempts, Math.ceil(Math.log2(BACKOFF_MAX_S / BACKOFF_INITIAL_S)) + 1);
  const seconds = Math.min(BACKOFF_INITIAL_S * 2 ** (attempts - 1), BACKOFF_MAX_S);
  const out: Backoff = { attempts: ev.failedPulls, seconds, step };
  if (ev.since) out.failingForSeconds = Math.max(0, Math.round((now.getTime() - ev.since.getTime()) / 1000));
  if (ev.lastFailure)
    out.nextRetryInSeconds = Math.max(
      0,
      Math.round((ev.lastFailure.getTime() + seconds * 1000 - now.getTime()) / 1000),
    );
  return out;
}

/**
 * The 1.32+ back-off message, `Back-off pulling image "x": <error>: <message>`: the kubelet appends
 * the previous pull's error and message (kubernetes#127918; pkg/kubelet/images/image_manager.go
 * pullImage, prevPullErrMsg), so the cause survives the events, which expire after an hour.
 */
export function backoffCause(message: string | undefined): { error: string; text: string } | undefined {
  const m = /^Back-off pulling image "(?:[^"\\]|\\.)*": ([A-Za-z]+): ([\s\S]*)$/.exec(message ?? '');
  return m ? { error: m[1]!, text: m[2]! } : undefined;
}

/** The text that carries the runtime's cause: the waiting message, else the newest failed pull's. */
export function runtimeText(ev: ContainerEvidence): string | undefined {
  if (ev.message && !/^Back-off pulling image/i.test(ev.message)) return ev.message;
  for (let i = ev.events.length - 1; i >= 0; i--) {
    const e = ev.events[i]!;
    if (e.reason !== 'BackOff' && e.message && !/^Error: /.test(e.message)) return e.message;
  }
  // No failed pull left in the events: a 1.32+ back-off message still carries the cause.
  return ev.message;
}
