// Predict, then run the same pod. pullguard judges each pod (`check --kubeconfig` on the
// manifests), then the same pods are bound to a real kubelet v1.20.2 with its own containerd
// (test/helpers/real-kubelet.ts) that really pulls from real registries on loopback; its outcome
// (Running, or the waiting reason and message it writes) must agree with the prediction. Then
// `pullguard diagnose` reads the pods that are really stuck, in the kubelet's own words.
// Needs root, containerd and what test/kube-lab/build.sh builds; without them it fails and says why.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type CoreV1Event, type V1Pod } from '@kubernetes/client-node';
import t from 'tap';
import { runCheck } from '../../src/cli/check.ts';
import { runDiagnose } from '../../src/cli/diagnose.ts';
import { runInProcess } from '../helpers/cli.ts';
import { startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import {
  missingForRealKubelet,
  PAUSE_BIN,
  processesIn,
  startRealKubelet,
  type RealKubelet,
} from '../helpers/real-kubelet.ts';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { waitFor } from '../helpers/wait.ts';
import { serve } from '../server/lib.ts';

const NS = 'pg-kubelet-lab';
const SECRET = 'alice-pull';

/**
 * A real linux/arm64 program (ELF, AArch64): exit(0). mov x0, #0; mov x8, #93 (exit); svc #0.
 * Written out by hand so that no cross toolchain is needed; an amd64 kernel without binfmt_misc
 * refuses it with ENOEXEC, "exec format error".
 */
function arm64Exit0(): Buffer {
  const base = 0x400000n;
  const code = Buffer.alloc(12);
  code.writeUInt32LE(0xd2800000, 0);
  code.writeUInt32LE(0xd2800ba8, 4);
  code.writeUInt32LE(0xd4000001, 8);
  const size = 64 + 56 + code.length;
  const h = Buffer.alloc(64 + 56);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(h, 0); // ELF64, little-endian, version 1, SysV
  h.writeUInt16LE(2, 16); // ET_EXEC
  h.writeUInt16LE(183, 18); // EM_AARCH64
  h.writeUInt32LE(1, 20);
  h.writeBigUInt64LE(base + 120n, 24); // entry: the code after the headers
  h.writeBigUInt64LE(64n, 32); // program headers right after this header
  h.writeUInt16LE(64, 52);
  h.writeUInt16LE(56, 54);
  h.writeUInt16LE(1, 56);
  // one PT_LOAD, read + execute, the whole file at `base`
  h.writeUInt32LE(1, 64);
  h.writeUInt32LE(5, 68);
  h.writeBigUInt64LE(0n, 72);
  h.writeBigUInt64LE(base, 80);
  h.writeBigUInt64LE(base, 88);
  h.writeBigUInt64LE(BigInt(size), 96);
  h.writeBigUInt64LE(BigInt(size), 104);
  h.writeBigUInt64LE(0x1000n, 112);
  return Buffer.concat([h, code]);
}

/** What the kubelet really did with the pod's one container. */
interface Outcome {
  /** pulled: the image is on the node (the container runs, or fails to start); failed: no pull */
  pull: 'pulled' | 'failed';
  /** Running, or the waiting reason (ErrImagePull, ImagePullBackOff, InvalidImageName, ...) */
  state: string;
  /** the waiting message; for ImagePullBackOff, the cause from the kubelet's Failed event */
  message: string;
}

interface Case {
  pod: string;
  what: string;
  image: (h: Hosts) => string;
  pullPolicy?: 'Never' | 'Always';
  secret?: boolean;
  /** pullguard's verdict and reason */
  predict: [string, string];
  /** the kubelet's outcome, and a text its message must hold */
  kubelet: { pull: Outcome['pull']; state: RegExp; message: RegExp };
  /** the kubelet fails, pullguard warns without denying: said in the table, not called agreement */
  weaker?: string;
}

interface Hosts {
  anon: string;
  priv: string;
  /** 127.0.0.1:PORT where nothing listens */
  closed: string;
}

const CASES: Case[] = [
  {
    pod: 'exists',
    what: 'an image that exists',
    image: (h) => `${h.anon}/demo/run:1.0`,
    predict: ['ok', 'available'],
    kubelet: { pull: 'pulled', state: /^Running$/, message: /^$/ },
  },
  {
    pod: 'missing-tag',
    what: 'a missing tag',
    image: (h) => `${h.anon}/demo/run:nope`,
    predict: ['fail', 'tag-not-found'],
    kubelet: { pull: 'failed', state: /^(ErrImagePull|ImagePullBackOff)$/, message: /code = NotFound.*: not found$/ },
  },
  {
    pod: 'missing-repo',
    what: 'a missing repository',
    image: (h) => `${h.anon}/demo/nothere:1.0`,
    predict: ['fail', 'repository-not-found'],
    kubelet: { pull: 'failed', state: /^(ErrImagePull|ImagePullBackOff)$/, message: /code = NotFound.*: not found$/ },
  },
  {
    pod: 'private-no-secret',
    what: 'a private registry, no imagePullSecret',
    image: (h) => `${h.priv}/team/locked:1.0`,
    predict: ['fail', 'access-denied'],
    kubelet: { pull: 'failed', state: /^(ErrImagePull|ImagePullBackOff)$/, message: /401 Unauthorized/ },
  },
  {
    pod: 'private-secret',
    what: 'a private registry, with its imagePullSecret',
    image: (h) => `${h.priv}/team/app:1.0`,
    secret: true,
    predict: ['ok', 'available'],
    kubelet: { pull: 'pulled', state: /^Running$/, message: /^$/ },
  },
  {
    pod: 'invalid',
    what: 'an invalid reference (upper case)',
    image: (h) => `${h.anon}/Demo/run:1.0`,
    predict: ['fail', 'invalid-reference'],
    kubelet: { pull: 'failed', state: /^InvalidImageName$/, message: /repository name must be lowercase/ },
  },
  {
    pod: 'index-no-amd64',
    what: "an index without the node's platform (arm64, s390x)",
    image: (h) => `${h.anon}/demo/multi:1.0`,
    predict: ['fail', 'platform-not-found'],
    kubelet: {
      pull: 'failed',
      state: /^(ErrImagePull|ImagePullBackOff)$/,
      message: /no match for platform in manifest/,
    },
  },
  {
    // The kubelet pulls a single manifest whatever its platform (containerd checks the platform
    // of an index's entries only). runc starts the container; its execve of the arm64 program then
    // fails, and the container exits at once: reason Error, exit code 1, and the only word of
    // "exec format error" is the container's log (then CrashLoopBackOff).
    pod: 'arm64-only',
    what: 'a single-platform image for linux/arm64',
    image: (h) => `${h.anon}/demo/arm:1.0`,
    predict: ['fail', 'platform-not-found'],
    kubelet: { pull: 'pulled', state: /^Error$/, message: /^exit code 1; log: exec \/hello: exec format error$/ },
  },
  {
    // containerd falls back to plain http for a 127.0.0.1 host without hosts.toml; refused either way
    pod: 'unreachable',
    what: 'a registry that does not answer (nothing listens)',
    image: (h) => `${h.closed}/demo/run:1.0`,
    predict: ['risk', 'registry-unreachable'],
    kubelet: {
      pull: 'failed',
      state: /^(ErrImagePull|ImagePullBackOff)$/,
      message: /code = Unknown .*dial tcp 127\.0\.0\.1:\d+: connect: connection refused$/,
    },
    weaker: 'pullguard warns (risk) and does not deny: a registry that is down now may be up at the next pull',
  },
  {
    // pullguard warns (unverifiable: the node's image list, at most 50 images, does not show it)
    pod: 'never-absent',
    what: 'imagePullPolicy Never, the image absent',
    image: (h) => `${h.anon}/demo/absent:1.0`,
    pullPolicy: 'Never',
    predict: ['risk', 'unverifiable'],
    kubelet: { pull: 'failed', state: /^ErrImageNeverPull$/, message: /is not present with pull policy of Never/ },
    weaker:
      'pullguard warns (risk, unverifiable) and does not deny: the Node lists at most 50 images, so absence there is no proof',
  },
];

let lab: KubeLab;
let anon: TestRegistry;
let priv: TestRegistry;
let kubelet: RealKubelet | undefined;
let dir: string;
let core: CoreV1Api;
let hosts: Hosts;

t.before(async () => {
  const missing = missingForRealKubelet();
  if (missing) throw new Error(`the real-kubelet test cannot run on this machine: ${missing}`);
  // the images hold amd64 and arm64 programs, and the cases name the node's platform: amd64
  if (process.arch !== 'x64')
    throw new Error(`the real-kubelet test is written for a linux/amd64 machine, this one is ${process.arch}`);
  [lab, anon, priv] = await Promise.all([
    startKubeLab(),
    startRegistry(),
    startRegistry({ auth: 'htpasswd', users: [{ username: 'alice', password: 's3cret' }] }),
  ]);
  hosts = { anon: anon.host, priv: priv.host, closed: `127.0.0.1:${await freePort()}` };
  dir = mkdtempSync(join(tmpdir(), 'pullguard-real-kubelet-'));
  // Programs that really run: the static pause (amd64: runs until killed) and an arm64 exit(0).
  const pause = { files: [{ name: 'pause', data: readFileSync(PAUSE_BIN), mode: 0o755 }], entrypoint: ['/pause'] };
  await anon.pushImage('demo/run', '1.0', { platform: 'linux/amd64', ...pause });
  await priv.pushImage('team/app', '1.0', { platform: 'linux/amd64', ...pause });
  await priv.pushImage('team/locked', '1.0', { platform: 'linux/amd64', ...pause });
  await anon.pushIndex('demo/multi', '1.0', ['linux/arm64', 'linux/s390x']);
  await anon.pushImage('demo/arm', '1.0', {
    platform: 'linux/arm64',
    files: [{ name: 'hello', data: arm64Exit0(), mode: 0o755 }],
    entrypoint: ['/hello'],
  });

  kubelet = await startRealKubelet({
    lab,
    registries: [{ host: anon.host }, { host: priv.host, caFile: priv.caFile! }],
  });
  core = lab.kc().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  const auth = Buffer.from('alice:s3cret').toString('base64');
  await core.createNamespacedSecret({
    namespace: NS,
    body: {
      metadata: { name: SECRET },
      type: 'kubernetes.io/dockerconfigjson',
      data: {
        '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [priv.host]: { auth } } })).toString('base64'),
      },
    },
  });
});

// Host paths a kubelet and containerd would write to without the private mount namespace.
const HOST_PATHS = ['/var/lib/kubelet', '/var/log/pods', '/var/log/containers', '/run/containerd'];
const hostPathsBefore = HOST_PATHS.filter((p) => existsSync(p));

t.teardown(async () => {
  // the kubelet and its containers first, while the API server still answers (a no-op when the
  // last subtest stopped it)
  await kubelet?.stop();
  await Promise.all([lab?.stop(), anon?.stop(), priv?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function podOf(c: Case): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: c.pod, namespace: NS },
    spec: {
      nodeName: kubelet!.node, // no scheduler: bound at once
      hostNetwork: true, // no CNI on this node
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      ...(c.secret ? { imagePullSecrets: [{ name: SECRET }] } : {}),
      containers: [{ name: 'app', image: c.image(hosts), ...(c.pullPolicy ? { imagePullPolicy: c.pullPolicy } : {}) }],
    },
  };
}

interface Finding {
  verdict: string;
  reason: string;
  message: string;
  object: { name?: string };
}

const PULL_FAILED = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);
const START_FAILED = new Set(['RunContainerError', 'CrashLoopBackOff', 'CreateContainerError', 'StartError']);

/** The kubelet's own Failed text for the pod's last pull ("Failed to pull image "x": <cause>"). */
async function pullFailure(pod: string): Promise<string | undefined> {
  const events = await core.listNamespacedEvent({
    namespace: NS,
    fieldSelector: `involvedObject.name=${pod},reason=Failed`,
  });
  const texts = events.items
    .filter((e: CoreV1Event) => e.source?.component === 'kubelet')
    .map((e) => e.message ?? '')
    .filter((m) => m.startsWith('Failed to pull image'));
  return texts.at(-1)?.replace(/^Failed to pull image "[^"]*": /, '');
}

/** Waits (bounded) until the kubelet has settled the pod's pull one way or the other. */
async function outcomeOf(c: Case): Promise<Outcome> {
  let last = 'no container status';
  return waitFor(
    async (): Promise<Outcome | undefined> => {
      const pod = await core.readNamespacedPod({ name: c.pod, namespace: NS });
      const s = pod.status?.containerStatuses?.[0];
      if (!s) return undefined;
      last = JSON.stringify({ state: s.state, lastState: s.lastState, restartCount: s.restartCount });
      const waiting = s.state?.waiting;
      const ended = s.state?.terminated ?? s.lastState?.terminated;
      // A container is Running from runc's start until its process ends: one whose program cannot
      // run here is Running for a moment, then exits. So Running settles only the cases expected to
      // run (pause runs until killed); the others wait on for the exit, and time out if none comes.
      if (s.state?.running && c.kubelet.state.test('Running')) return { pull: 'pulled', state: 'Running', message: '' };
      if (waiting?.reason && PULL_FAILED.has(waiting.reason)) {
        if (waiting.reason !== 'ImagePullBackOff')
          return { pull: 'failed', state: waiting.reason, message: waiting.message ?? '' };
        // the waiting message is only "Back-off pulling image": the cause is in the Failed event
        const cause = await pullFailure(c.pod);
        return cause === undefined ? undefined : { pull: 'failed', state: waiting.reason, message: cause };
      }
      // pulled, then the container could not start, or started and failed at once: the reason,
      // the exit code, the runtime's text and what the container wrote (as `kubectl logs` shows it)
      if (!s.imageID) return undefined;
      if (ended && ended.exitCode !== 0) {
        const log = kubelet!.containerLog(NS, c.pod, 'app');
        if (!log) return undefined; // the CRI log is written as the container runs: wait for its text
        const texts = [`exit code ${ended.exitCode}`, ended.message, `log: ${log}`].filter(Boolean);
        return { pull: 'pulled', state: ended.reason ?? 'terminated', message: texts.join('; ') };
      }
      if (waiting?.reason && START_FAILED.has(waiting.reason))
        return { pull: 'pulled', state: waiting.reason, message: waiting.message ?? '' };
      return undefined;
    },
    { what: `the kubelet's outcome for pod ${c.pod}`, timeoutMs: 180_000, everyMs: 300 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nlast status: ${last}\nkubelet.log:\n${kubelet?.logTail('kubelet', 20)}`);
  });
}

const rows: string[] = [];

t.test('pullguard predicts, the real kubelet agrees', async (t) => {
  t.equal(kubelet!.nodeObject.status?.nodeInfo?.architecture, 'amd64', 'the node reports its platform');
  t.equal(kubelet!.nodeObject.status?.nodeInfo?.kubeletVersion, 'v1.20.2');
  const files = CASES.map((c) => {
    const file = join(dir, `${c.pod}.json`);
    writeFileSync(file, JSON.stringify(podOf(c)));
    return file;
  });
  const r = await runInProcess(runCheck, [
    ...files.flatMap((f) => ['-f', f]),
    '--kubeconfig',
    lab.kubeconfig,
    '--insecure-registry',
    anon.host,
    '--registry-ca',
    priv.caFile!,
    '--timeout',
    '60s',
    '-o',
    'json',
  ]);
  t.equal(r.code, 1, `check: exit 1, images would fail ${r.stderr}`);
  const findings = (JSON.parse(r.stdout) as { findings: Finding[] }).findings;

  // The webhook's face on the same pods (enforce mode, the node watch): the same verdicts.
  const server = await serve(null, {
    cluster: { kubeconfig: lab.kubeconfig, watchNodes: true },
    platforms: [],
    registry: { insecure: [anon.host], caFiles: [priv.caFile!] },
    mode: 'enforce',
  });
  t.teardown(() => server.close());
  await waitFor(async () => (await server.get('/readyz')).status === 200, { what: 'the node list', everyMs: 100 });
  const webhook = new Map<string, string>();
  for (const c of CASES) {
    const answer = await server.review({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: crypto.randomUUID(),
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: NS,
        operation: 'CREATE',
        userInfo: { username: 'dev' },
        object: podOf(c),
      },
    });
    webhook.set(c.pod, answer.allowed === false ? 'deny' : answer.warnings?.length ? 'warn' : 'allow');
  }

  for (const c of CASES) await core.createNamespacedPod({ namespace: NS, body: podOf(c) });
  const outcomes = await Promise.all(CASES.map(outcomeOf));

  rows.push('| case | image | check predicts | webhook | kubelet: outcome | kubelet: message | agree |');
  rows.push('| --- | --- | --- | --- | --- | --- | --- |');
  for (const [i, c] of CASES.entries()) {
    const f = findings.find((x) => x.object.name === c.pod);
    const o = outcomes[i]!;
    t.ok(f, `${c.pod}: a finding`);
    if (!f) continue;
    t.same([f.verdict, f.reason], c.predict, `${c.what}: pullguard says ${f.verdict} (${f.reason}): ${f.message}`);
    const face = { ok: 'allow', risk: 'warn', fail: 'deny' }[f.verdict];
    t.equal(webhook.get(c.pod), face, `${c.what}: the webhook answers as check predicts (${face})`);
    t.equal(o.pull, c.kubelet.pull, `${c.what}: the kubelet ${o.pull} it (${o.state}: ${o.message})`);
    t.match(o.state, c.kubelet.state, `${c.what}: the kubelet's reason`);
    t.match(o.message, c.kubelet.message, `${c.what}: the kubelet's message`);
    // agreement: pullguard's "ok" is the kubelet's Running; its "fail" a pull that fails or an
    // image that pulls but cannot run here; "risk" is named as weaker, never counted as agreement
    const kubeletFails = o.state !== 'Running';
    const agree = f.verdict === 'ok' ? !kubeletFails : f.verdict === 'fail' ? kubeletFails : false;
    if (c.weaker) t.equal(f.verdict, 'risk', `${c.what}: ${c.weaker}`);
    else t.ok(agree, `${c.what}: pullguard (${f.verdict}) and the kubelet (${o.state}) agree`);
    const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll(c.image(hosts), '<image>');
    rows.push(
      `| ${c.what} | \`${c.image(hosts).replace(/^127\.0\.0\.1:\d+/, 'REG')}\`${c.pullPolicy ? ` (${c.pullPolicy})` : ''} | ${f.verdict} ${f.reason} | ${webhook.get(c.pod)} | ${o.pull}: ${o.state} | ${cell(o.message) || '-'} | ${agree ? 'yes' : c.weaker ? 'partly: warns, no denial' : 'NO'} |`,
    );
  }
  // Running was taken at first sight: the pods that run still do, never restarted, after all the others settled
  for (const c of CASES.filter((c) => c.kubelet.state.test('Running'))) {
    const s = (await core.readNamespacedPod({ name: c.pod, namespace: NS })).status?.containerStatuses?.[0];
    t.ok(s?.state?.running && s.restartCount === 0, `${c.what}: still running, never restarted`);
  }
  t.comment(`predict, then run (kubelet v1.20.2, containerd, node ${kubelet!.node}):\n${rows.join('\n')}`);
});

interface Diagnosis {
  pod: { name: string };
  container: string;
  image: string;
  stuck: boolean;
  kubelet: { reason?: string; message?: string; events: string[] };
  reason: string;
  now: string;
  disagreement?: string;
}

t.test("diagnose reads the kubelet's own texts on the pods really stuck", async (t) => {
  const r = await runInProcess(runDiagnose, [
    '-n',
    NS,
    '-o',
    'json',
    '--kubeconfig',
    lab.kubeconfig,
    '--insecure-registry',
    anon.host,
    '--registry-ca',
    priv.caFile!,
    '--timeout',
    '30s',
  ]);
  t.equal(r.code, 1, `something is stuck ${r.stderr}`);
  const got = new Map((JSON.parse(r.stdout) as { diagnoses: Diagnosis[] }).diagnoses.map((d) => [d.pod.name, d]));
  const expect: Record<string, [string, RegExp]> = {
    'missing-tag': ['tag-not-found', /: not found/],
    'missing-repo': ['repository-not-found', /: not found/],
    'private-no-secret': ['access-denied', /401 Unauthorized/],
    invalid: ['invalid-reference', /invalid reference format: repository name must be lowercase/],
    'index-no-amd64': ['platform-not-found', /no match for platform in manifest/],
    'never-absent': ['never-pull', /is not present with pull policy of Never/],
    unreachable: ['registry-unreachable', /connect: connection refused/],
  };
  t.same([...got.keys()].sort(), Object.keys(expect).sort(), 'the pods stuck pulling, and only those');
  for (const [pod, [reason, text]] of Object.entries(expect)) {
    const d = got.get(pod);
    t.ok(d, `${pod}: diagnosed`);
    if (!d) continue;
    t.ok(d.stuck, `${pod}: stuck`);
    t.equal(d.reason, reason, `${pod}: the cause (the kubelet: ${d.kubelet.reason}: ${d.kubelet.message})`);
    t.match(d.kubelet.reason ?? '', /^(ErrImagePull|ImagePullBackOff|InvalidImageName|ErrImageNeverPull)$/);
    const kubeletText = [d.kubelet.message ?? '', ...d.kubelet.events].join('\n');
    t.match(kubeletText, text, `${pod}: the kubelet's own text is read`);
    t.equal(d.now, 'still-failing', `${pod}: still failing`);
    t.notOk(d.disagreement, `${pod}: the kubelet and pullguard agree (${d.disagreement ?? ''})`);
  }

  // what a person reads: the kubelet quoted, then the cause and the fix
  const text = await runInProcess(runDiagnose, [
    '-n',
    NS,
    'missing-tag',
    'private-no-secret',
    '--kubeconfig',
    lab.kubeconfig,
    '--insecure-registry',
    anon.host,
    '--registry-ca',
    priv.caFile!,
    '--timeout',
    '30s',
  ]);
  t.equal(text.code, 1);
  t.match(text.stdout, `pod ${NS}/missing-tag (node ${kubelet!.node}, linux/amd64), container "app"`);
  t.match(text.stdout, /kubelet: +(ErrImagePull|ImagePullBackOff) .*demo\/run:nope: not found/);
  t.match(text.stdout, /cause: +tag-not-found: /);
  t.match(text.stdout, /kubelet: +(ErrImagePull|ImagePullBackOff) .*401 Unauthorized/);
  t.match(text.stdout, /cause: +access-denied: /);
  t.match(text.stdout, /fix: +\S/);
});

t.test("the node's image cache decides before any credential", async (t) => {
  // private-secret pulled team/app:1.0 onto the node; the same image without the secret is then
  // "already present on machine" for IfNotPresent, and runs: kubelet 1.20 uses the node's copy
  // without the pod's credentials (KEP-2535's NeverVerify, before there was a policy). pullguard
  // sees the image in the Node's status.images: a warning (unverifiable), not the registry's
  // refusal. With imagePullPolicy Always the kubelet asks the registry, and fails as predicted.
  const cases: Case[] = [
    {
      pod: 'cached-no-secret',
      what: 'the private image, no secret, already on the node (IfNotPresent)',
      image: (h) => `${h.priv}/team/app:1.0`,
      predict: ['risk', 'unverifiable'],
      kubelet: { pull: 'pulled', state: /^Running$/, message: /^$/ },
    },
    {
      pod: 'cached-always-no-secret',
      what: 'the same, imagePullPolicy Always',
      image: (h) => `${h.priv}/team/app:1.0`,
      pullPolicy: 'Always',
      predict: ['fail', 'access-denied'],
      kubelet: { pull: 'failed', state: /^(ErrImagePull|ImagePullBackOff)$/, message: /401 Unauthorized$/ },
    },
  ];
  // the kubelet reports its images with the node's status (every 10 s): what pullguard reads
  const image = cases[0]!.image(hosts);
  await waitFor(
    async () => (await core.readNode({ name: kubelet!.node })).status?.images?.some((i) => i.names?.includes(image)),
    { what: `${image} in the Node's status.images`, timeoutMs: 90_000, everyMs: 500 },
  );
  const files = cases.map((c) => {
    const file = join(dir, `${c.pod}.json`);
    writeFileSync(file, JSON.stringify(podOf(c)));
    return file;
  });
  const r = await runInProcess(runCheck, [
    ...files.flatMap((f) => ['-f', f]),
    '--kubeconfig',
    lab.kubeconfig,
    '--registry-ca',
    priv.caFile!,
    '--timeout',
    '60s',
    '-o',
    'json',
  ]);
  const findings = (JSON.parse(r.stdout) as { findings: Finding[] }).findings;
  for (const c of cases) await core.createNamespacedPod({ namespace: NS, body: podOf(c) });
  const [cached, always] = await Promise.all(cases.map(outcomeOf));
  for (const c of cases) {
    const f = findings.find((x) => x.object.name === c.pod)!;
    t.same([f.verdict, f.reason], c.predict, `${c.what}: pullguard says ${f.verdict} (${f.reason}): ${f.message}`);
  }
  t.equal(cached!.state, 'Running', 'IfNotPresent: the kubelet runs it, the image is on the node');
  t.match(
    findings.find((x) => x.object.name === cases[0]!.pod)!.message,
    'a node already has the image',
    'pullguard says why it does not deny',
  );
  t.equal(always!.pull, 'failed', `Always: the kubelet asks the registry and fails (${always!.message})`);
  t.match(always!.message, cases[1]!.kubelet.message);
  // the kubelet's recorder posts its Events on its own time: wait for the one that says why
  const present = await waitFor(
    async () => {
      const events = await core.listNamespacedEvent({
        namespace: NS,
        fieldSelector: `involvedObject.name=${cases[0]!.pod}`,
      });
      return events.items.find(
        (e) =>
          e.source?.component === 'kubelet' &&
          e.reason === 'Pulled' &&
          /already present on machine/.test(e.message ?? ''),
      );
    },
    { what: `the kubelet's Pulled event on ${cases[0]!.pod}`, timeoutMs: 60_000, everyMs: 300 },
  );
  t.match(present.message, /^Container image ".*team\/app:1\.0" already present on machine$/, 'the kubelet says why');
  rows.push(
    `| ${cases[0]!.what} | \`REG/team/app:1.0\` | risk unverifiable | - | pulled: Running | ${present.message!.replace(cases[0]!.image(hosts), '<image>')} | partly: warns, no denial |`,
    `| ${cases[1]!.what} | \`REG/team/app:1.0\` (Always) | fail access-denied | - | failed: ${always!.state} | ${always!.message.replaceAll(cases[1]!.image(hosts), '<image>')} | yes |`,
  );
  t.comment(`the table for the closing note:\n${rows.join('\n')}`);
});

t.test('stop: no process, folder or host path left behind', async (t) => {
  const kdir = kubelet!.dir;
  await kubelet!.stop();
  t.same(processesIn(kdir), [], 'no process names its folder (kubelet, containerd, shims, pause, containers)');
  t.notOk(existsSync(kdir), 'its folder is removed');
  t.same(
    HOST_PATHS.filter((p) => existsSync(p)),
    hostPathsBefore,
    'nothing appeared on the host outside the folder',
  );
});
