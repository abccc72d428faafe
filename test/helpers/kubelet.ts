// Plays the kubelet against a real API server: nodes with their platform, pods bound to them, the
// container status written through the status subresource, and the Failed/BackOff events the
// kubelet records (core/v1 as its recorder does, or events.k8s.io/v1 with a series).
import {
  CoreV1Api,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';

import { microTime } from '../../src/cluster/microtime.ts';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface StuckContainer {
  name: string;
  image: string;
  pullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** the waiting reason: ErrImagePull, ImagePullBackOff, InvalidImageName, ErrImageNeverPull */
  reason: string;
  /** the waiting message; default the kubelet's for the reason */
  message?: string;
  /** the runtime's text of the failed pull (the Failed event's "Failed to pull image …: <text>") */
  runtime?: string;
  /** failed pulls so far (the Failed event's count) */
  failures?: number;
  /** seconds since the latest failure */
  lastFailureAgoS?: number;
  /** record the events through events.k8s.io/v1 (with a series) instead of core/v1 */
  eventsApi?: 'v1' | 'events.k8s.io/v1';
}

export class FakeKubelet {
  readonly core: CoreV1Api;
  readonly events: EventsV1Api;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.events = kc.makeApiClient(EventsV1Api);
  }

  async namespace(name: string): Promise<void> {
    await this.core.createNamespace({ body: { metadata: { name } } });
  }

  /** A node that reports its platform (status.nodeInfo) as a kubelet would. */
  async node(name: string, architecture: string, images: string[] = []): Promise<void> {
    await this.core.createNode({
      body: { metadata: { name, labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': architecture } } },
    });
    const nodeInfo = {
      machineID: name,
      systemUUID: name,
      bootID: name,
      kernelVersion: '6.1.0',
      osImage: 'Debian GNU/Linux 12 (bookworm)',
      containerRuntimeVersion: 'containerd://1.7.24',
      kubeletVersion: 'v1.20.2',
      kubeProxyVersion: 'v1.20.2',
      operatingSystem: 'linux',
      architecture,
    };
    await this.core.patchNodeStatus(
      {
        name,
        body: { status: { nodeInfo, images: images.length ? [{ names: images, sizeBytes: 1000 }] : [] } },
      },
      MERGE,
    );
  }

  /** A pod bound to `node` whose containers wait as given, with the kubelet's events. */
  async stuckPod(
    namespace: string,
    name: string,
    node: string,
    containers: StuckContainer[],
    extra: { imagePullSecrets?: string[]; labels?: Record<string, string> } = {},
  ): Promise<V1Pod> {
    const pod = await this.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name, ...(extra.labels ? { labels: extra.labels } : {}) },
        spec: {
          nodeName: node,
          ...(extra.imagePullSecrets ? { imagePullSecrets: extra.imagePullSecrets.map((n) => ({ name: n })) } : {}),
          containers: containers.map((c) => ({
            name: c.name,
            image: c.image,
            ...(c.pullPolicy ? { imagePullPolicy: c.pullPolicy } : {}),
          })),
        },
      },
    });
    await this.setWaiting(namespace, name, containers);
    for (const c of containers) await this.recordEvents(pod, node, c);
    return pod;
  }

  async setWaiting(namespace: string, name: string, containers: StuckContainer[]): Promise<void> {
    await this.core.patchNamespacedPodStatus(
      {
        name,
        namespace,
        body: waitingStatus(
          containers.map((c) => ({
            name: c.name,
            image: c.image,
            reason: c.reason,
            message: c.message ?? defaultMessage(c),
          })),
        ),
      },
      MERGE,
    );
  }

  /** The events the kubelet records for a failed pull: Pulling, Failed (the runtime's text), Failed (Error: …), BackOff. */
  async recordEvents(pod: V1Pod, node: string, c: StuckContainer): Promise<void> {
    const namespace = pod.metadata!.namespace!;
    const failures = c.failures ?? 3;
    const last = new Date(Date.now() - (c.lastFailureAgoS ?? 5) * 1000);
    const first = new Date(last.getTime() - 10_000 * (2 ** Math.max(0, failures - 1) - 1));
    const fieldPath = `spec.containers{${c.name}}`;
    const list: { reason: string; message: string; count: number; type: 'Normal' | 'Warning' }[] = [];
    if (c.reason === 'InvalidImageName') {
      list.push({ reason: 'InspectFailed', message: c.message ?? defaultMessage(c), count: failures, type: 'Warning' });
      list.push({ reason: 'Failed', message: 'Error: InvalidImageName', count: failures, type: 'Warning' });
    } else if (c.reason === 'ErrImageNeverPull') {
      list.push({ reason: 'ErrImageNeverPull', message: defaultMessage(c), count: failures, type: 'Warning' });
      list.push({ reason: 'Failed', message: 'Error: ErrImageNeverPull', count: failures, type: 'Warning' });
    } else {
      list.push({ reason: 'Pulling', message: `Pulling image "${c.image}"`, count: failures, type: 'Normal' });
      list.push({
        reason: 'Failed',
        message: `Failed to pull image "${c.image}": ${c.runtime ?? 'rpc error: code = Unknown desc = unknown'}`,
        count: failures,
        type: 'Warning',
      });
      list.push({ reason: 'Failed', message: 'Error: ErrImagePull', count: failures, type: 'Warning' });
      list.push({ reason: 'BackOff', message: `Back-off pulling image "${c.image}"`, count: failures, type: 'Normal' });
      list.push({ reason: 'Failed', message: 'Error: ImagePullBackOff', count: failures, type: 'Warning' });
    }
    // The object an event is about: `regarding` in events.k8s.io/v1, `involvedObject` in core/v1.
    const about = {
      apiVersion: 'v1',
      kind: 'Pod',
      name: pod.metadata!.name!,
      namespace,
      uid: pod.metadata!.uid!,
      fieldPath,
    };
    for (const [i, e] of list.entries()) {
      const eventName = `${pod.metadata!.name}.${c.name}.${i}`;
      if (c.eventsApi === 'events.k8s.io/v1') {
        await this.events.createNamespacedEvent({
          namespace,
          body: {
            metadata: { name: eventName, namespace },
            eventTime: microTime(first),
            series: e.count > 1 ? { count: e.count, lastObservedTime: microTime(last) } : undefined,
            reportingController: 'kubelet',
            reportingInstance: node,
            action: e.reason === 'BackOff' ? 'Waiting' : 'Pulling',
            reason: e.reason,
            note: e.message,
            type: e.type,
            regarding: about,
          } as never,
        });
      } else {
        await this.core.createNamespacedEvent({
          namespace,
          body: {
            metadata: { name: eventName, namespace },
            involvedObject: about,
            reason: e.reason,
            message: e.message,
            type: e.type,
            count: e.count,
            firstTimestamp: first,
            lastTimestamp: last,
            source: { component: 'kubelet', host: node },
            reportingComponent: 'kubelet',
            reportingInstance: node,
          } as never,
        });
      }
    }
  }
}

function defaultMessage(c: StuckContainer): string {
  switch (c.reason) {
    case 'ImagePullBackOff':
      return `Back-off pulling image "${c.image}"`;
    case 'ErrImageNeverPull':
      return `Container image "${c.image}" is not present with pull policy of Never`;
    case 'InvalidImageName':
      return `Failed to apply default image tag "${c.image}": couldn't parse image reference "${c.image}": invalid reference format: repository name must be lowercase`;
    default:
      return c.runtime ?? '';
  }
}

/**
 * The status a kubelet writes for a pod whose containers all wait (Pending, not ready), each with
 * its waiting reason and message: FakeKubelet's stuck pods and the cluster-scale fill's.
 */
export function waitingStatus(containers: { name: string; image: string; reason: string; message: string }[]) {
  const now = new Date().toISOString();
  return {
    status: {
      phase: 'Pending',
      hostIP: '10.0.0.10',
      podIP: '10.1.0.10',
      startTime: now,
      conditions: [
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        {
          type: 'Ready',
          status: 'False',
          reason: 'ContainersNotReady',
          message: `containers with unready status: [${containers.map((c) => c.name).join(' ')}]`,
          lastTransitionTime: now,
        },
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
      ],
      containerStatuses: containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: '',
        ready: false,
        started: false,
        restartCount: 0,
        state: { waiting: { reason: c.reason, message: c.message } },
      })),
    },
  };
}
