// Fills a test/kube-lab API server with objects shaped like a real cluster's (issue 25): nodes with
// 50 images in status.images, labels, addresses and conditions (about 11 KB of JSON), and pods with
// 2 containers, 15 env entries, resources and a probe, owned by a ReplicaSet, bound to a node; one in
// `stuckEvery` stuck in ImagePullBackOff, its status written through the status subresource as the
// kubelet writes it. Requests go straight to the API server with undici, a bounded number at once.
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import type { KubeLab } from './kube-lab.ts';
import { waitingStatus } from './kubelet.ts';

/** Images a node reports; a real cluster's nodes share most of theirs, as here (50 of these 400). */
const IMAGE_POOL = Array.from({ length: 400 }, (_, i) => {
  const repo = `registry.example.test/team-${i % 40}/service-${i}`;
  const digest = (i.toString(16).padStart(8, '0') + 'ab'.repeat(28)).slice(0, 64);
  return { names: [`${repo}@sha256:${digest}`, `${repo}:v1.${i % 17}.${i % 5}`], sizeBytes: 20_000_000 + i * 7919 };
});

export function shapedNode(i: number): Record<string, unknown> {
  const name = `node-${String(i).padStart(5, '0')}`;
  const zone = `zone-${i % 3}`;
  const images = Array.from({ length: 50 }, (_, k) => IMAGE_POOL[(i * 7 + k * 13) % IMAGE_POOL.length]!);
  const at = '2026-12-01T10:00:00Z';
  const condition = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    lastHeartbeatTime: at,
    lastTransitionTime: at,
    reason,
    message,
  });
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': i % 10 === 9 ? 'arm64' : 'amd64',
        'kubernetes.io/hostname': name,
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': i % 10 === 9 ? 'arm64' : 'amd64',
        'node.kubernetes.io/instance-type': 'm5.2xlarge',
        'topology.kubernetes.io/region': 'region-1',
        'topology.kubernetes.io/zone': zone,
        'node-role.kubernetes.io/worker': '',
        'pool.example.test/name': `pool-${i % 8}`,
      },
      annotations: {
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
    },
    spec: { podCIDR: `10.${(i >> 8) & 255}.${i & 255}.0/24`, providerID: `example://${zone}/${name}` },
    status: {
      capacity: { cpu: '8', memory: '32658820Ki', pods: '110', 'ephemeral-storage': '101445540Ki' },
      allocatable: { cpu: '7910m', memory: '31408516Ki', pods: '110', 'ephemeral-storage': '93492209510' },
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      addresses: [
        { type: 'InternalIP', address: `10.0.${(i >> 8) & 255}.${i & 255}` },
        { type: 'Hostname', address: name },
        { type: 'InternalDNS', address: `${name}.region-1.compute.internal` },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: randomUUID().replaceAll('-', ''),
        systemUUID: randomUUID(),
        bootID: randomUUID(),
        kernelVersion: '6.1.0-28-cloud-amd64',
        osImage: 'Debian GNU/Linux 12 (bookworm)',
        containerRuntimeVersion: 'containerd://1.7.24',
        kubeletVersion: 'v1.20.15',
        kubeProxyVersion: 'v1.20.15',
        operatingSystem: 'linux',
        architecture: i % 10 === 9 ? 'arm64' : 'amd64',
      },
      images,
    },
  };
}

export interface PodShape {
  namespace: string;
  name: string;
  node: string;
  /** the image of the first container (the second is a sidecar) */
  image: string;
}

export function shapedPod(p: PodShape): Record<string, unknown> {
  const app = p.name.replace(/-[^-]+$/, '');
  const env = Array.from({ length: 15 }, (_, e) =>
    e % 5 === 0
      ? { name: `SECRET_${e}`, valueFrom: { secretKeyRef: { name: `${app}-secrets`, key: `key-${e}` } } }
      : e % 7 === 0
        ? { name: `POD_NAME_${e}`, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }
        : { name: `APP_SETTING_${e}`, value: `value-${e}-for-${app}` },
  );
  const container = (name: string, image: string, port: number) => ({
    name,
    image,
    imagePullPolicy: 'IfNotPresent',
    args: ['--config=/etc/app/config.yaml', `--port=${port}`],
    env,
    ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } },
    readinessProbe: {
      httpGet: { path: '/ready', port, scheme: 'HTTP' },
      initialDelaySeconds: 5,
      periodSeconds: 10,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    },
    volumeMounts: [{ name: 'config', mountPath: '/etc/app', readOnly: true }],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
  });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      namespace: p.namespace,
      labels: { app, 'pod-template-hash': '5d8f9c7b6d', 'app.kubernetes.io/part-of': 'shop' },
      annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9102' },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: `${app}-5d8f9c7b6d`,
          uid: randomUUID(),
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      nodeName: p.node,
      serviceAccountName: 'default',
      containers: [
        container('app', p.image, 8080),
        container('sidecar', 'registry.example.test/mesh/proxy:1.20.1', 15001),
      ],
      volumes: [{ name: 'config', configMap: { name: `${app}-config` } }],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
    },
  };
}

/** The status the kubelet writes for a pod whose first container's image will not pull. */
export function stuckStatus(image: string): Record<string, unknown> {
  return waitingStatus([
    { name: 'app', image, reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` },
    { name: 'sidecar', image: 'registry.example.test/mesh/proxy:1.20.1', reason: 'ContainerCreating', message: '' },
  ]);
}

export interface FillOptions {
  nodes: number;
  pods: number;
  /** one pod in this many is stuck (default 20) */
  stuckEvery?: number;
  /** namespaces the pods are spread over (default 50) */
  namespaces?: number;
  /** the image of a stuck pod's app container; others get a healthy-looking one */
  stuckImage: (i: number) => string;
  /** requests in flight at once (default 32) */
  parallel?: number;
  /** the namespaces exist already (a second fill of the same lab) */
  namespacesExist?: boolean;
  /** the pods are bound to this many nodes (default: opts.nodes) */
  bindTo?: number;
  /** called now and then with the objects created so far */
  progress?: (done: number, total: number) => void;
}

export interface FillResult {
  nodes: number;
  pods: number;
  stuck: number;
  namespaces: string[];
  requests: number;
  ms: number;
}

/** Creates what `opts` asks for in the lab; every request's failure (other than 409 on a retry) throws. */
export async function fillLab(lab: KubeLab, opts: FillOptions): Promise<FillResult> {
  const t0 = performance.now();
  const parallel = opts.parallel ?? 32;
  const stuckEvery = opts.stuckEvery ?? 20;
  const agent = new Agent({ connect: { rejectUnauthorized: false }, connections: parallel, pipelining: 1 });
  let requests = 0;
  const send = async (method: 'POST' | 'PATCH', path: string, body: unknown, contentType = 'application/json') => {
    for (let attempt = 1; ; attempt++) {
      requests++;
      const res = await request(`${lab.url}${path}`, {
        method,
        dispatcher: agent,
        headers: { authorization: `Bearer ${lab.adminToken}`, 'content-type': contentType },
        body: JSON.stringify(body),
        headersTimeout: 120_000,
        bodyTimeout: 120_000,
      });
      const text = await res.body.text();
      if (res.statusCode < 300) return;
      // 409 AlreadyExists after a retry: the earlier attempt did land
      if (res.statusCode === 409 && attempt > 1 && method === 'POST') return;
      // an API server under this load may answer 429 or 5xx: wait and try again, a few times
      if ((res.statusCode === 429 || res.statusCode >= 500) && attempt < 5) {
        await new Promise((r) => setTimeout(r, 500 * attempt));
        continue;
      }
      throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
    }
  };
  const total = opts.nodes + opts.pods;
  let done = 0;
  const inParallel = async (count: number, each: (i: number) => Promise<void>) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(parallel, count) }, async () => {
        for (let i = next++; i < count; i = next++) {
          await each(i);
          done++;
          if (done % 1000 === 0) opts.progress?.(done, total);
        }
      }),
    );
  };
  try {
    const namespaces = Array.from({ length: opts.namespaces ?? 50 }, (_, i) => `team-${String(i).padStart(3, '0')}`);
    if (!opts.namespacesExist)
      for (const ns of namespaces) await send('POST', '/api/v1/namespaces', { metadata: { name: ns } });
    await inParallel(opts.nodes, (i) => send('POST', '/api/v1/nodes', shapedNode(i)));
    let stuck = 0;
    await inParallel(opts.pods, async (i) => {
      const namespace = namespaces[i % namespaces.length]!;
      const name = `svc-${Math.floor(i / 10)}-${i % 10}`;
      const isStuck = i % stuckEvery === stuckEvery - 1;
      const image = isStuck ? opts.stuckImage(i) : `registry.example.test/team-${i % 40}/service-${i % 400}:v1.2.3`;
      const node = `node-${String(i % Math.max(1, opts.bindTo ?? opts.nodes)).padStart(5, '0')}`;
      await send('POST', `/api/v1/namespaces/${namespace}/pods`, shapedPod({ namespace, name, node, image }));
      if (isStuck) {
        stuck++;
        await send(
          'PATCH',
          `/api/v1/namespaces/${namespace}/pods/${name}/status`,
          stuckStatus(image),
          'application/merge-patch+json',
        );
      }
    });
    return { nodes: opts.nodes, pods: opts.pods, stuck, namespaces, requests, ms: performance.now() - t0 };
  } finally {
    await agent.close();
  }
}
