// Placement on a real kube-apiserver: nodes of mixed platforms, labels and taints; each pod (and
// each workload kind) is judged against the nodes it can land on, not the whole cluster.
// `pullguard check --kubeconfig` reads the nodes as the webhook's node watch does (one list).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import t from 'tap';
import { startServer } from '../../src/app/server.ts';
import { runCheck } from '../../src/cli/check.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { createLogger } from '../../src/server/logger.ts';
import { runInProcess } from '../helpers/cli.ts';
import { startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { waitFor } from '../helpers/wait.ts';
import { serve } from '../server/lib.ts';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

let lab: KubeLab;
let reg: TestRegistry;
let dir: string;

interface LabNode {
  name: string;
  os: string;
  arch: string;
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: string }[];
}

// 2 linux/amd64, 2 linux/arm64 (one kept for a team by a taint), 1 windows/amd64 (tainted, as
// clusters with Windows nodes usually do), and a label with numbers for Gt/Lt.
const NODES: LabNode[] = [
  { name: 'amd-1', os: 'linux', arch: 'amd64', labels: { gen: '3' } },
  { name: 'amd-2', os: 'linux', arch: 'amd64', labels: { gen: '3' } },
  { name: 'arm-1', os: 'linux', arch: 'arm64', labels: { gen: '5' } },
  {
    name: 'arm-2',
    os: 'linux',
    arch: 'arm64',
    labels: { gen: '5', dedicated: 'arm' },
    taints: [
      { key: 'dedicated', value: 'arm', effect: 'NoSchedule' },
      { key: 'soft', value: 'x', effect: 'PreferNoSchedule' },
    ],
  },
  { name: 'win-1', os: 'windows', arch: 'amd64', taints: [{ key: 'os', value: 'windows', effect: 'NoSchedule' }] },
];

async function makeNode(core: CoreV1Api, n: LabNode): Promise<void> {
  await core.createNode({
    body: {
      metadata: { name: n.name, labels: { 'kubernetes.io/os': n.os, 'kubernetes.io/arch': n.arch, ...n.labels } },
    },
  });
  // The API server taints a new node not-ready; the node lifecycle controller (not in the lab)
  // lifts it once the kubelet reports Ready. Done here as it does, leaving the node's own taints.
  await core.patchNode({ name: n.name, body: { spec: { taints: n.taints ?? [] } } }, MERGE);
  await core.patchNodeStatus(
    { name: n.name, body: { status: { nodeInfo: { operatingSystem: n.os, architecture: n.arch } } } },
    MERGE,
  );
}

t.before(async () => {
  [lab, reg] = await Promise.all([startKubeLab(), startRegistry()]);
  const core = lab.kc().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'shop' } } });
  for (const n of NODES) await makeNode(core, n);
  // demo/app:1.0 is linux/amd64 only (a single manifest); demo/idx:1.0 an index of linux/amd64 and linux/arm64.
  await reg.pushImage('demo/app', '1.0', { platform: 'linux/amd64' });
  await reg.pushIndex('demo/idx', '1.0', ['linux/amd64', 'linux/arm64']);
  dir = mkdtempSync(join(tmpdir(), 'pullguard-placement-'));
});
t.teardown(async () => {
  await Promise.all([lab?.stop(), reg?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const ARM_TOLERATION = { key: 'dedicated', operator: 'Equal', value: 'arm', effect: 'NoSchedule' };
const WIN_TOLERATION = { key: 'os', operator: 'Equal', value: 'windows', effect: 'NoSchedule' };
const required = (...matchExpressions: object[]) => ({
  nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions }] } },
});

/** Each placement form: the pod spec's placement fields, and the verdicts for the single-platform image and the index. */
const CASES: { name: string; spec: object; app: string; idx: string }[] = [
  // amd-1, amd-2, arm-1 (arm-2 and win-1 are tainted)
  { name: 'no placement', spec: {}, app: 'risk', idx: 'ok' },
  { name: 'nodeSelector arm64', spec: { nodeSelector: { 'kubernetes.io/arch': 'arm64' } }, app: 'fail', idx: 'ok' },
  { name: 'nodeSelector amd64', spec: { nodeSelector: { 'kubernetes.io/arch': 'amd64' } }, app: 'ok', idx: 'ok' },
  // nodeName skips the scheduler: the NoSchedule taint does not keep the pod off arm-2
  { name: 'nodeName arm-2 (tainted)', spec: { nodeName: 'arm-2' }, app: 'fail', idx: 'ok' },
  { name: 'nodeName amd-1', spec: { nodeName: 'amd-1' }, app: 'ok', idx: 'ok' },
  {
    name: 'affinity In [arm64]',
    spec: { affinity: required({ key: 'kubernetes.io/arch', operator: 'In', values: ['arm64'] }) },
    app: 'fail',
    idx: 'ok',
  },
  {
    name: 'affinity NotIn [arm64]',
    spec: { affinity: required({ key: 'kubernetes.io/arch', operator: 'NotIn', values: ['arm64'] }) },
    app: 'ok',
    idx: 'ok',
  },
  {
    name: 'affinity gen Gt 4, tolerating the arm taint',
    spec: { affinity: required({ key: 'gen', operator: 'Gt', values: ['4'] }), tolerations: [ARM_TOLERATION] },
    app: 'fail',
    idx: 'ok',
  },
  {
    // one value per field requirement (API validation); two terms are ORed
    name: 'matchFields metadata.name In [arm-2] or In [amd-1], tolerating the arm taint',
    spec: {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['arm-2'] }] },
              { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['amd-1'] }] },
            ],
          },
        },
      },
      tolerations: [ARM_TOLERATION],
    },
    app: 'risk',
    idx: 'ok',
  },
  // every taint tolerated: all five nodes
  { name: 'tolerates every taint', spec: { tolerations: [{ operator: 'Exists' }] }, app: 'risk', idx: 'risk' },
  {
    name: 'os windows, tolerating the windows taint',
    spec: { os: { name: 'windows' }, tolerations: [WIN_TOLERATION] },
    app: 'fail',
    idx: 'fail',
  },
  // no node has this label: not an image problem, nothing said about platforms
  { name: 'nodeSelector matching no node', spec: { nodeSelector: { pool: 'gpu' } }, app: 'ok', idx: 'ok' },
];

const verdictOf = (f: { verdict: string }) => f.verdict;

function podYaml(name: string, spec: object): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop' },
    spec: {
      ...spec,
      containers: [
        { name: 'app', image: `${reg.host}/demo/app:1.0` },
        { name: 'idx', image: `${reg.host}/demo/idx:1.0` },
      ],
    },
  });
}

interface JsonOut {
  findings: {
    verdict: string;
    reason: string;
    container: string;
    message: string;
    hint: string;
    object: { name?: string; kind: string };
  }[];
}

async function check(files: string[]): Promise<JsonOut> {
  const r = await runInProcess(runCheck, [
    ...files.flatMap((f) => ['-f', f]),
    '--kubeconfig',
    lab.kubeconfig,
    '--insecure-registry',
    reg.host,
    '--timeout',
    '60s',
    '-o',
    'json',
  ]);
  if (r.stderr.includes('Error') || !r.stdout.startsWith('{')) throw new Error(`check failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as JsonOut;
}

t.test('each pod is judged against the nodes it can land on', async (t) => {
  const files = CASES.map((c, i) => {
    const file = join(dir, `pod-${i}.json`);
    writeFileSync(file, podYaml(`case-${i}`, c.spec));
    return file;
  });
  const out = await check(files);
  for (const [i, c] of CASES.entries()) {
    const mine = out.findings.filter((f) => f.object.name === `case-${i}`);
    const app = mine.find((f) => f.container === 'app')!;
    const idx = mine.find((f) => f.container === 'idx')!;
    t.equal(verdictOf(app), c.app, `${c.name}: demo/app:1.0 (linux/amd64 only) ${app.message}`);
    t.equal(verdictOf(idx), c.idx, `${c.name}: demo/idx:1.0 (linux/amd64, linux/arm64) ${idx.message}`);
  }

  // The words: which nodes, how many, and the node selector that keeps the pod on what the image offers.
  const arm = out.findings.find((f) => f.object.name === 'case-1' && f.container === 'app')!;
  t.equal(arm.reason, 'platform-not-found');
  t.match(arm.message, 'linux/arm64 (1 node)');
  t.equal(arm.hint, 'add nodeSelector {kubernetes.io/arch: amd64}, or build the image for linux/arm64 too');
  const some = out.findings.find((f) => f.object.name === 'case-0' && f.container === 'app')!;
  t.match(
    some.message,
    'is built for linux/amd64 only; on linux/arm64 (1 node) it pulls, then fails with "exec format error"',
  );
  const someIdx = out.findings.find((f) => f.object.name === 'case-9' && f.container === 'idx')!;
  t.match(someIdx.message, 'has no build for windows/amd64 (1 node), where the pod may land');
  const all = out.findings.find((f) => f.object.name === 'case-9' && f.container === 'app')!;
  t.match(all.message, 'linux/arm64 (2 nodes), windows/amd64 (1 node)');
  const win = out.findings.find((f) => f.object.name === 'case-10' && f.container === 'idx')!;
  t.match(win.hint, 'nodeSelector {kubernetes.io/os: linux}');
});

t.test('workloads through their pod template; DaemonSets with the tolerations their controller adds', async (t) => {
  const template = (spec: object) => ({
    metadata: { labels: { app: 'x' } },
    spec: { ...spec, containers: [{ name: 'app', image: `${reg.host}/demo/app:1.0` }] },
  });
  const onArm = { nodeSelector: { 'kubernetes.io/arch': 'arm64' } };
  const objects = [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      spec: { selector: { matchLabels: { app: 'x' } }, template: template(onArm) },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      spec: { serviceName: 'x', selector: { matchLabels: { app: 'x' } }, template: template(onArm) },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      spec: { selector: { matchLabels: { app: 'x' } }, template: template(onArm) },
    },
    {
      apiVersion: 'batch/v1',
      kind: 'Job',
      spec: { template: { ...template(onArm), spec: { ...template(onArm).spec, restartPolicy: 'Never' } } },
    },
    {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      spec: {
        schedule: '* * * * *',
        jobTemplate: {
          spec: { template: { ...template(onArm), spec: { ...template(onArm).spec, restartPolicy: 'Never' } } },
        },
      },
    },
    // A DaemonSet runs on every node it tolerates: its controller's own tolerations (not-ready,
    // unschedulable, …) do not cover the arm or windows taints, so amd-1, amd-2 and arm-1.
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      spec: { selector: { matchLabels: { app: 'x' } }, template: template({}) },
    },
    // Pinned to amd64: certain to pull.
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      spec: {
        selector: { matchLabels: { app: 'x' } },
        template: template({ nodeSelector: { 'kubernetes.io/arch': 'amd64' } }),
      },
    },
  ];
  const files = objects.map((o, i) => {
    const file = join(dir, `workload-${i}.json`);
    writeFileSync(file, JSON.stringify({ ...o, metadata: { name: `w-${i}`, namespace: 'shop' } }));
    return file;
  });
  const out = await check(files);
  const byName = (name: string) => out.findings.find((f) => f.object.name === name)!;
  for (const i of [0, 1, 2, 3, 4]) t.equal(byName(`w-${i}`).verdict, 'fail', `${objects[i]!.kind} pinned to arm64`);
  t.equal(byName('w-5').verdict, 'risk', 'DaemonSet on every untainted node');
  t.match(byName('w-5').message, 'linux/arm64 (1 node)');
  t.equal(byName('w-6').verdict, 'ok', 'DaemonSet pinned to amd64');
});

t.test('serve: the node watch places each review; denied, warned or allowed as the pod lands', async (t) => {
  const s = await serve(null, {
    cluster: { kubeconfig: lab.kubeconfig, watchNodes: true },
    platforms: [],
    registry: { insecure: [reg.host] },
    mode: 'enforce',
  });
  t.teardown(() => s.close());
  await waitFor(async () => (await s.get('/readyz')).status === 200, { what: 'the node list', everyMs: 100 });
  const review = (name: string, spec: object) =>
    s.review({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: crypto.randomUUID(),
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: 'shop',
        operation: 'CREATE',
        userInfo: { username: 'dev' },
        object: JSON.parse(podYaml(name, spec)),
      },
    });
  const onArm = await review('on-arm', { nodeSelector: { 'kubernetes.io/arch': 'arm64' } });
  t.equal(onArm.allowed, false, 'pinned to arm64: the amd64-only image will not run');
  t.match(onArm.status.message, /container "app".*linux\/arm64 \(1 node\)/);
  const onAmd = await review('on-amd', { nodeSelector: { 'kubernetes.io/arch': 'amd64' } });
  t.equal(onAmd.allowed, true);
  t.equal(onAmd.warnings, undefined, 'pinned to amd64: nothing to warn about');
  const free = await review('free', {});
  t.equal(free.allowed, true);
  t.match(free.warnings?.join('\n'), /linux\/arm64 \(1 node\)/, 'may land on arm-1: a warning');
});

t.test("the watch's re-verification places each workload by its template", async (t) => {
  const core = lab.kc().makeApiClient(CoreV1Api);
  const apps = lab.kc().makeApiClient(AppsV1Api);
  await core.createNamespace({ body: { metadata: { name: 'pullguard' } } });
  const deployment = (name: string, nodeSelector: Record<string, string>) =>
    apps.createNamespacedDeployment({
      namespace: 'shop',
      body: {
        metadata: { name },
        spec: {
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: { nodeSelector, containers: [{ name: 'app', image: `${reg.host}/demo/app:1.0` }] },
          },
        },
      },
    });
  await deployment('on-arm', { 'kubernetes.io/arch': 'arm64' });
  await deployment('on-amd', { 'kubernetes.io/arch': 'amd64' });
  const config = validateConfig({
    server: { host: '127.0.0.1', port: 0, metricsPort: 0 },
    cluster: { kubeconfig: lab.kubeconfig, watchNodes: true },
    registry: { insecure: [reg.host] },
    deadline: '5s',
    watch: { enabled: true, interval: '2s', eventInterval: '1m', leaseDuration: '3s', leaseNamespace: 'pullguard' },
    log: { level: 'silent' },
  });
  const running = await startServer(config, {}, createLogger('silent'));
  t.teardown(() => running.close());
  const events = (name: string) =>
    core
      .listNamespacedEvent({
        namespace: 'shop',
        fieldSelector: `involvedObject.kind=Deployment,involvedObject.name=${name},reason=ImageNotPullable`,
      })
      .then((l) => l.items);
  const posted = await waitFor(async () => ((await events('on-arm')).length ? events('on-arm') : undefined), {
    what: 'the Event on the Deployment pinned to arm64',
    timeoutMs: 90_000,
    everyMs: 250,
  });
  t.match(posted[0]!.message!, 'linux/arm64 (1 node)');
  // Rounds went on after that Event: the amd64 one was checked as often and got none.
  const reverifier = running.watch!.reverifier;
  const seen = reverifier.rounds;
  await waitFor(() => (reverifier.rounds >= seen + 2 ? true : undefined), {
    what: 'two more rounds',
    timeoutMs: 90_000,
  });
  t.same(await events('on-amd'), [], 'pinned to amd64: nothing to say');
});
