// Diagnoses pods: reads what the kubelet recorded, checks the stuck containers' images now with the
// pod's own credentials (its pull secrets, then the node's) and its node's platform, and joins both.

import { STUCK_PODS } from '../cluster/projections.ts';
import { nodePlatform } from '../cluster/nodes.ts';
import type { PodObject, PodReader } from '../cluster/pods.ts';
import { errorLine } from '../cluster/api-errors.ts';
import { Deadline } from '../deadline.ts';
import type { Finding } from '../findings.ts';
import { format as formatPlatform } from '../platform/index.ts';
import type { NodeFacts, PodCheck } from '../podcheck/podcheck.ts';
import { imageUsesOf, type PodSpecSite } from '../workload/images.ts';
import { type ContainerDiagnosis, diagnoseContainer } from './diagnose.ts';
import { type ContainerEvidence, containerEvidence, podEventOf } from './evidence.ts';

export interface DiagnoseDeps {
  reader: PodReader;
  /** the pod check (the watch passes one whose engine keeps to its registry budget) */
  podCheck: Pick<PodCheck, 'check'>;
  /** per pod, for the cluster reads and the registries */
  deadlineMs: number;
  now?: () => Date;
}

export interface DiagnoseTarget {
  /** undefined: every namespace */
  namespace?: string;
  /** named pods (diagnosed whatever their state); empty: every stuck pod */
  pods: string[];
  labelSelector?: string;
}

type Obj = Record<string, unknown>;

/** What a diagnosis reads of a pod: a pod as read, or the watch's projection of one (cluster/projections.ts). */
export type DiagnosedPod = PodObject;

export async function diagnoseOne(
  deps: DiagnoseDeps,
  pod: DiagnosedPod,
  named: boolean,
): Promise<ContainerDiagnosis[]> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const name = pod.metadata?.name ?? '';
  const pending = containerEvidence(pod, [], named);
  if (!pending.length) return [];
  const events = (await deps.reader.events(namespace, name, pod.metadata?.uid)).map(podEventOf);
  const evidence = containerEvidence(pod, events, named);
  const nodeName = pod.spec?.nodeName;
  const node = nodeName ? await deps.reader.node(nodeName) : undefined;
  const platform = node && nodePlatform(node);

  const site: PodSpecSite = {
    kind: 'Pod',
    namespace,
    name,
    specPath: 'spec',
    spec: (pod.spec ?? {}) as unknown as Obj,
    template: false,
  };
  const wanted = new Set(evidence.map(useKey));
  const uses = imageUsesOf(site).filter((u) => {
    const list = /\.(initContainers|containers|ephemeralContainers|volumes)\[/.exec(u.field)?.[1];
    return list !== undefined && wanted.has(`${list}\u0000${u.container}`);
  });
  // A pod on a node is checked for that node: its platform, its images.
  const facts: NodeFacts | undefined = node
    ? { ...(platform ? { platform } : {}), hasImage: (names) => names.some((n) => node.images.includes(n)) }
    : undefined;
  const findings: Finding[] = await deps.podCheck.check({ site, namespace }, uses, {
    deadline: Deadline.after(deps.deadlineMs),
    ...(facts ? { node: facts } : {}),
  });
  const now = deps.now?.() ?? new Date();
  const where: ContainerDiagnosis['pod'] = {
    namespace,
    name,
    ...(nodeName ? { node: nodeName } : {}),
    ...(platform ? { platform: formatPlatform(platform) } : {}),
  };
  return evidence.map((ev) =>
    diagnoseContainer(
      where,
      ev,
      findings.find((f) => useKey(ev) === `${/\.(\w+)\[/.exec(f.field)?.[1]}\u0000${f.container}`),
      now,
    ),
  );
}

/** The image use a container's evidence is about: its own image, or the image volume it waits on (workload/images.ts names it "volume <name>"). */
function useKey(ev: ContainerEvidence): string {
  return ev.volume ? `volumes\u0000volume ${ev.volume}` : `${ev.list}\u0000${ev.container}`;
}

/** Where diagnoses go as they are made: a pod's at once, in the order the pods were listed. */
export interface DiagnoseSink {
  diagnoses(list: ContainerDiagnosis[]): void;
  /** a pod that could not be read or checked, in one line */
  error(line: string): void;
}

/** pods diagnosed at once: the engine shares registry answers between them anyway */
const IN_FLIGHT = 8;

/**
 * Diagnoses the pods asked for and hands each pod's diagnoses to the sink as soon as the pods
 * listed before it are done. A list is read a page at a time and only its stuck pods are kept
 * until they are diagnosed: `diagnose -A` of a large cluster holds a few pages, never the
 * cluster's stuck pods or their diagnoses. Named pods come in namespace/name order.
 */
export async function diagnoseEach(deps: DiagnoseDeps, target: DiagnoseTarget, sink: DiagnoseSink): Promise<void> {
  const named = target.pods.length > 0;
  const running: { pod: DiagnosedPod; done: Promise<ContainerDiagnosis[] | string> }[] = [];
  const start = (pod: DiagnosedPod) =>
    running.push({
      pod,
      done: diagnoseOne(deps, pod, named).catch(
        (err: unknown) => `pod ${pod.metadata?.namespace}/${pod.metadata?.name}: ${errorLine(err)}`,
      ),
    });
  const finishOne = async () => {
    const out = await running.shift()!.done;
    if (typeof out === 'string') sink.error(out);
    else if (out.length) sink.diagnoses(out);
  };
  for await (const page of podsOf(deps, target, sink)) {
    for (const pod of page) {
      if (running.length >= IN_FLIGHT) await finishOne();
      start(pod);
    }
  }
  while (running.length) await finishOne();
}

/** The pods to diagnose, a batch at a time: the named ones (read), or each page's stuck ones. */
async function* podsOf(deps: DiagnoseDeps, target: DiagnoseTarget, sink: DiagnoseSink): AsyncGenerator<DiagnosedPod[]> {
  if (target.pods.length) {
    const ns = target.namespace ?? 'default';
    const read = await Promise.allSettled(target.pods.map((p) => deps.reader.pod(ns, p)));
    const pods: DiagnosedPod[] = [];
    for (const r of read) {
      if (r.status === 'fulfilled') pods.push(r.value);
      else sink.error((r.reason as Error).message);
    }
    pods.sort((a, b) =>
      `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`),
    );
    yield pods;
    return;
  }
  // Only the stuck pods of each page are kept (in the page worker).
  yield* deps.reader.pages(target.namespace, target.labelSelector, STUCK_PODS);
}
