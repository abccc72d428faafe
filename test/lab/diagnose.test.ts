// `pullguard diagnose -A` against a real kube-apiserver: pods stuck for each cause, their status and
// events written as the kubelet writes them, the images on real registries on loopback.
import { CoreV1Api, type CoreV1Event } from '@kubernetes/client-node';
import t from 'tap';
import { startServer } from '../../src/app/server.ts';
import { runDiagnose } from '../../src/cli/diagnose.ts';
import { microTime } from '../../src/cluster/microtime.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { createLogger } from '../../src/server/logger.ts';
import { runInProcess } from '../helpers/cli.ts';
import { faults } from '../helpers/fault-proxy.ts';
import { startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { FakeKubelet } from '../helpers/kubelet.ts';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { waitFor } from '../helpers/wait.ts';

interface Diagnosis {
  pod: { namespace: string; name: string; node?: string; platform?: string };
  container: string;
  image: string;
  stuck: boolean;
  kubelet: { reason?: string; message?: string; events: string[] };
  reason: string;
  message: string;
  hint: string;
  now: string;
  outlook: string;
  backoff?: { attempts: number; seconds: number; step: number; nextRetryInSeconds?: number };
  disagreement?: string;
  untrusted?: { count: number; events: string[] };
}

let lab: KubeLab;
let anon: TestRegistry;
let priv: TestRegistry;
let limited: TestRegistry;
let closedPort: number;
const NS = 'shop';

const containerd = (image: string, rest: string) =>
  `rpc error: code = Unknown desc = failed to pull and unpack image "${image}": failed to resolve reference "${image}": ${rest}`;

t.before(async () => {
  [lab, anon, priv, limited, closedPort] = await Promise.all([
    startKubeLab(),
    startRegistry(),
    startRegistry({ auth: 'htpasswd', users: [{ username: 'alice', password: 's3cret' }] }),
    startRegistry({ proxy: true }),
    freePort(),
  ]);
  await anon.pushImage('demo/app', '1.0', { platform: 'linux/amd64' });
  await priv.pushImage('team/app', '1.0');
  await limited.pushImage('demo/app', '1.0');
  limited.proxy!.fault(faults.tooManyRequests());

  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.namespace(NS);
  await kubelet.node('node-amd64', 'amd64');
  await kubelet.node('node-arm64', 'arm64');
  const dockerconfig = (password: string) =>
    Buffer.from(
      JSON.stringify({
        auths: {
          [priv.host]: { username: 'alice', password, auth: Buffer.from(`alice:${password}`).toString('base64') },
        },
      }),
    ).toString('base64');
  await kubelet.core.createNamespacedSecret({
    namespace: NS,
    body: {
      metadata: { name: 'wrongcred' },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': dockerconfig('wrong-password') },
    },
  });

  const missingTag = `${anon.host}/demo/app:2.0`;
  const missingRepo = `${anon.host}/demo/nope:1.0`;
  const privImage = `${priv.host}/team/app:1.0`;
  const limitedImage = `${limited.host}/demo/app:1.0`;
  const downImage = `127.0.0.1:${closedPort}/demo/app:1.0`;
  const armImage = `${anon.host}/demo/app:1.0`;
  // The private image pulled without its secret or with a wrong one: the registry says 401 either way.
  const unauthorized = {
    name: 'web',
    image: privImage,
    reason: 'ImagePullBackOff',
    runtime: containerd(
      privImage,
      `unexpected status from HEAD request to https://${priv.host}/v2/team/app/manifests/1.0: 401 Unauthorized`,
    ),
  };
  const stuck: [string, string, Parameters<FakeKubelet['stuckPod']>[3], string[]?][] = [
    [
      'missing-tag',
      'node-amd64',
      [
        {
          name: 'web',
          image: missingTag,
          reason: 'ImagePullBackOff',
          runtime: containerd(missingTag, `${missingTag}: not found`).replace('Unknown', 'NotFound'),
          failures: 3,
          lastFailureAgoS: 5,
        },
      ],
    ],
    [
      'missing-repo',
      'node-amd64',
      [
        {
          name: 'web',
          image: missingRepo,
          reason: 'ErrImagePull',
          runtime: containerd(missingRepo, `${missingRepo}: not found`),
          eventsApi: 'events.k8s.io/v1',
        },
      ],
    ],
    ['no-secret', 'node-amd64', [unauthorized]],
    ['wrong-secret', 'node-amd64', [unauthorized], ['wrongcred']],
    [
      'rate-limit',
      'node-amd64',
      [
        {
          name: 'web',
          image: limitedImage,
          reason: 'ImagePullBackOff',
          runtime: containerd(
            limitedImage,
            `unexpected status code http://${limited.host}/v2/demo/app/manifests/1.0: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit`,
          ),
          eventsApi: 'events.k8s.io/v1',
        },
      ],
    ],
    [
      'unreachable',
      'node-amd64',
      [
        {
          name: 'web',
          image: downImage,
          reason: 'ErrImagePull',
          runtime: containerd(
            downImage,
            `failed to do request: Head "https://${`127.0.0.1:${closedPort}`}/v2/demo/app/manifests/1.0": dial tcp 127.0.0.1:${closedPort}: connect: connection refused`,
          ),
        },
      ],
    ],
    ['invalid-name', 'node-amd64', [{ name: 'web', image: 'Demo/App:1.0', reason: 'InvalidImageName' }]],
    [
      'wrong-platform',
      'node-arm64',
      [
        {
          name: 'web',
          image: armImage,
          reason: 'ImagePullBackOff',
          runtime: `rpc error: code = NotFound desc = failed to pull and unpack image "${armImage}": no match for platform in manifest: not found`,
        },
      ],
    ],
    [
      'never',
      'node-amd64',
      [{ name: 'web', image: `${anon.host}/demo/local:1.0`, pullPolicy: 'Never', reason: 'ErrImageNeverPull' }],
    ],
  ];
  for (const [name, node, containers, secrets] of stuck)
    await kubelet.stuckPod(NS, name, node, containers, secrets ? { imagePullSecrets: secrets } : {});
  // A running pod in another namespace: not stuck, not listed.
  await kubelet.namespace('calm');
  await kubelet.core.createNamespacedPod({
    namespace: 'calm',
    body: {
      metadata: { name: 'ok' },
      spec: { nodeName: 'node-amd64', containers: [{ name: 'web', image: armImage }] },
    },
  });
});

t.teardown(async () => {
  await Promise.all([lab?.stop(), anon?.stop(), priv?.stop(), limited?.stop()]);
});

function run(args: string[]) {
  return runInProcess(runDiagnose, [
    ...args,
    '--kubeconfig',
    lab.kubeconfig,
    '--insecure-registry',
    anon.host,
    '--insecure-registry',
    limited.host,
    '--insecure-registry',
    `127.0.0.1:${closedPort}`,
    '--registry-ca',
    priv.caFile!,
    '--timeout',
    '8s',
  ]);
}

const byPod = (list: Diagnosis[]) => new Map(list.map((d) => [d.pod.name, d]));

t.test('diagnose -A: every stuck pod, the right cause, the kubelet quoted', async (t) => {
  const { code, stdout, stderr } = await run(['-A', '-o', 'json']);
  t.equal(code, 1, 'something is stuck');
  t.equal(stderr, '');
  const list = (JSON.parse(stdout) as { diagnoses: Diagnosis[] }).diagnoses;
  const got = byPod(list);
  t.same([...got.keys()].sort(), [
    'invalid-name',
    'missing-repo',
    'missing-tag',
    'never',
    'no-secret',
    'rate-limit',
    'unreachable',
    'wrong-platform',
    'wrong-secret',
  ]);
  const expect: Record<string, [string, string]> = {
    'missing-tag': ['tag-not-found', 'still-failing'],
    'missing-repo': ['repository-not-found', 'still-failing'],
    'no-secret': ['access-denied', 'still-failing'],
    'wrong-secret': ['access-denied', 'still-failing'],
    'rate-limit': ['rate-limited', 'still-failing'],
    unreachable: ['registry-unreachable', 'still-failing'],
    'invalid-name': ['invalid-reference', 'still-failing'],
    'wrong-platform': ['platform-not-found', 'still-failing'],
    never: ['never-pull', 'still-failing'],
  };
  for (const [pod, [reason, now]] of Object.entries(expect)) {
    const d = got.get(pod)!;
    t.equal(d.reason, reason, `${pod}: cause`);
    t.equal(d.now, now, `${pod}: outlook`);
    t.ok(d.stuck, `${pod}: stuck`);
    t.ok(d.kubelet.message, `${pod}: the kubelet's message is kept`);
    t.ok(d.hint.length > 0, `${pod}: a fix`);
    t.notOk(d.disagreement, `${pod}: the kubelet and pullguard agree`);
  }
  t.match(got.get('missing-tag')!.kubelet.message!, ': not found');
  t.match(got.get('rate-limit')!.kubelet.message!, 'toomanyrequests');
  t.match(got.get('wrong-platform')!.kubelet.message!, 'no match for platform');
  t.match(got.get('wrong-platform')!.pod.platform!, 'linux/arm64');
  t.match(got.get('never')!.kubelet.message!, 'pull policy of Never');
  t.match(got.get('invalid-name')!.kubelet.message!, 'invalid reference format');
  t.match(got.get('wrong-secret')!.message, 'wrongcred', 'says which secret was refused');
  const tag = got.get('missing-tag')!;
  t.equal(tag.backoff?.attempts, 3, 'three failed pulls from the event count');
  t.equal(tag.backoff?.seconds, 40, 'the kubelet now waits 40 s (10 s doubling)');
  t.equal(tag.backoff?.step, 3);
  t.equal(got.get('missing-repo')!.backoff?.attempts, 3, 'events.k8s.io/v1 series counted too');
});

t.test('diagnose: text names pod, container, the kubelet quoted, cause, fix and outlook', async (t) => {
  const { code, stdout } = await run(['-n', NS, 'missing-tag', 'rate-limit']);
  t.equal(code, 1);
  t.match(stdout, `pod ${NS}/missing-tag (node node-amd64, linux/amd64), container "web"`);
  t.match(stdout, /kubelet: {3}ImagePullBackOff "Failed to pull image .*: not found"/);
  t.match(stdout, /cause: {5}tag-not-found: /);
  t.match(stdout, /fix: {7}\S/);
  t.match(stdout, /now: {7}still failing: the next retry, due in ~\d+s, will fail the same way/);
  t.match(stdout, 'backoff:   3 failed pulls');
  t.match(stdout, 'step 3 of 6');
  t.notMatch(stdout, /[\u0000-\u0008\u000b-\u001f]/, 'no control characters');
});

t.test('right after the image is pushed: "would now succeed"', async (t) => {
  await anon.pushImage('demo/app', '2.0', { platform: 'linux/amd64' });
  await anon.pushImage('demo/app', '1.0', { platform: 'linux/arm64' });
  const { code, stdout } = await run(['-A', '-o', 'json']);
  t.equal(code, 1, 'the pods are still stuck until the kubelet retries');
  const got = byPod((JSON.parse(stdout) as { diagnoses: Diagnosis[] }).diagnoses);
  t.equal(got.get('missing-tag')!.now, 'would-succeed');
  t.match(
    got.get('missing-tag')!.outlook,
    /the next retry, due in ~\d+s, will succeed; delete the pod to retry at once/,
  );
  t.equal(got.get('missing-repo')!.now, 'still-failing', 'not pushed: still failing');
  t.equal(got.get('no-secret')!.now, 'still-failing');
  t.equal(got.get('wrong-platform')!.now, 'would-succeed', 'an arm64 build now exists');
});

t.test('exit 0 when nothing is stuck; 2 on usage errors', async (t) => {
  t.equal((await run(['-n', 'calm'])).code, 0);
  t.match((await run(['-n', 'calm'])).stdout, 'no container is stuck');
  t.equal((await run(['-A', '-n', NS])).code, 2);
  t.equal((await run(['-o', 'yaml'])).code, 2);
  const missing = await run(['-n', NS, 'no-such-pod']);
  t.equal(missing.code, 2);
  t.match(
    missing.stderr,
    'pullguard diagnose: cannot get pod "no-such-pod" in namespace "shop": 404 Not Found: pods "no-such-pod" not found\n',
  );
});

t.test('a label selector narrows the pods', async (t) => {
  const { code, stdout } = await run(['-A', '-l', 'app=none']);
  t.equal(code, 0);
  t.match(stdout, 'no container is stuck');
});

// Today's kubelets (1.32+) and CRI-O write reasons and messages the v1.20 kubelet never wrote; the
// API server stores them as they come (waiting.reason and message are free text). Each names its
// upstream source. Image volumes are not among them: v1.20 drops volumes[].image (see test/diagnose/).
t.test("today's kubelet and CRI-O reasons, through diagnose and the watch", async (t) => {
  const TNS = 'today';
  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.namespace(TNS);
  await anon.pushImage('demo/signed', '1.0', { platform: 'linux/amd64' });
  const here = `${anon.host}/demo/signed:1.0`;
  const downImage = `127.0.0.1:${closedPort}/demo/app:1.0`;
  // CRI-O server/image_pull.go wraps ECONNREFUSED in cri-api ErrRegistryUnavailable; the kubelet's
  // images/image_manager.go evalCRIPullErr writes "image pull failed for %s because the registry is unavailable%s"
  const refused = `pinging container registry 127.0.0.1:${closedPort}: Get "https://127.0.0.1:${closedPort}/v2/": dial tcp 127.0.0.1:${closedPort}: connect: connection refused`;
  await kubelet.stuckPod(TNS, 'registry-unavailable', 'node-amd64', [
    {
      name: 'web',
      image: downImage,
      reason: 'RegistryUnavailable',
      message: `image pull failed for ${downImage} because the registry is unavailable: ${refused}`,
      runtime: `RegistryUnavailable: ${refused}`,
    },
  ]);
  // CRI-O internal/storage/image.go WrapSignatureCRIErrorIfNeeded; evalCRIPullErr "… because the signature validation failed%s"
  const rejected = 'Source image rejected: A signature was required, but no signature exists';
  await kubelet.stuckPod(TNS, 'unsigned', 'node-amd64', [
    {
      name: 'web',
      image: here,
      reason: 'SignatureValidationFailed',
      message: `image pull failed for ${here} because the signature validation failed: ${rejected}`,
      runtime: `SignatureValidationFailed: ${rejected}`,
    },
  ]);
  // kubernetes#127918 (images/image_manager.go pullImage, prevPullErrMsg): the back-off message keeps
  // the previous pull's error; the events are gone (they expire after an hour), so none are written.
  const gone = `${anon.host}/demo/app:9.9`;
  await kubelet.core.createNamespacedPod({
    namespace: TNS,
    body: {
      metadata: { name: 'events-expired' },
      spec: { nodeName: 'node-amd64', containers: [{ name: 'web', image: gone }] },
    },
  });
  await kubelet.setWaiting(TNS, 'events-expired', [
    {
      name: 'web',
      image: gone,
      reason: 'ImagePullBackOff',
      message: `Back-off pulling image "${gone}": ErrImagePull: ${containerd(gone, `${gone}: not found`)}`,
    },
  ]);
  // images/image_manager.go imagePullPrecheck: "Failed to inspect image %q: %v" (types.go ErrImageInspect)
  await kubelet.core.createNamespacedPod({
    namespace: TNS,
    body: {
      metadata: { name: 'inspect' },
      spec: { nodeName: 'node-amd64', containers: [{ name: 'web', image: here }] },
    },
  });
  await kubelet.setWaiting(TNS, 'inspect', [
    {
      name: 'web',
      image: here,
      reason: 'ImageInspectError',
      message:
        'Failed to inspect image "": rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix /run/crio/crio.sock: connect: connection refused"',
    },
  ]);

  const { code, stdout, stderr } = await run(['-n', TNS, '-o', 'json']);
  t.equal(code, 1);
  t.equal(stderr, '');
  const got = byPod((JSON.parse(stdout) as { diagnoses: Diagnosis[] }).diagnoses);
  t.same([...got.keys()].sort(), ['events-expired', 'inspect', 'registry-unavailable', 'unsigned']);
  const expect: Record<string, [string, string]> = {
    'registry-unavailable': ['registry-unreachable', 'still-failing'],
    unsigned: ['signature-refused', 'still-failing'],
    'events-expired': ['tag-not-found', 'still-failing'],
    inspect: ['inspect-failed', 'unknown'],
  };
  for (const [pod, [reason, now]] of Object.entries(expect)) {
    const d = got.get(pod)!;
    t.ok(d.stuck, `${pod}: listed as stuck`);
    t.equal(d.reason, reason, `${pod}: cause`);
    t.equal(d.now, now, `${pod}: outlook`);
    t.notOk(d.disagreement, `${pod}: nothing said against the kubelet`);
  }
  t.match(got.get('unsigned')!.hint, "node's container runtime refused the image under its signature policy");
  t.match(got.get('events-expired')!.kubelet.message!, 'Back-off pulling image');

  // The watch diagnoses them too and posts its Event.
  const posted = await watchPosting(t, TNS);
  t.match((await posted('unsigned')).message!, 'signature policy');
  t.match((await posted('registry-unavailable')).message!, 'container "web"');
});

// Hostile input, last (it adds pods): Events anyone who may create Events in the namespace could
// write, and an image full of Unicode bidi controls; through diagnose's output and the watch's Event.
const BIDI = '\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069';
const RAW_BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

t.test('events not from the kubelet are marked and change nothing; bidi controls never raw', async (t) => {
  const HNS = 'hostile';
  const kubelet = new FakeKubelet(lab.kc());
  await kubelet.namespace(HNS);
  await anon.pushImage('demo/forged', '1.0', { platform: 'linux/amd64' });
  const okImage = `${anon.host}/demo/forged:1.0`;
  // The kubelet saw "not found" before the image was pushed; the registry has it now.
  const pod = await kubelet.stuckPod(HNS, 'forged', 'node-amd64', [
    { name: 'web', image: okImage, reason: 'ImagePullBackOff', runtime: containerd(okImage, `${okImage}: not found`) },
  ]);
  const about = {
    apiVersion: 'v1',
    kind: 'Pod',
    name: 'forged',
    namespace: HNS,
    uid: pod.metadata!.uid!,
    fieldPath: 'spec.containers{web}',
  };
  const lie = `Failed to pull image "${okImage}": ${containerd(okImage, '429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit')}`;
  const now = new Date();
  await kubelet.core.createNamespacedEvent({
    namespace: HNS,
    body: {
      metadata: { name: 'forged.core', namespace: HNS },
      involvedObject: about,
      reason: 'Failed',
      message: lie,
      type: 'Warning',
      count: 50,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: 'evil-controller' },
    },
  });
  await kubelet.events.createNamespacedEvent({
    namespace: HNS,
    body: {
      metadata: { name: 'forged.events', namespace: HNS },
      eventTime: microTime(now),
      series: { count: 40, lastObservedTime: microTime(now) },
      reportingController: 'evil-controller',
      reportingInstance: 'evil-1',
      action: 'Pulling',
      reason: 'Failed',
      note: lie,
      type: 'Warning',
      regarding: about,
    } as never,
  });
  const bidiImage = `${anon.host}/demo/app${BIDI}:1.0`;
  await kubelet.stuckPod(HNS, 'bidi', 'node-amd64', [{ name: 'web', image: bidiImage, reason: 'InvalidImageName' }]);

  const json = await run(['-n', HNS, '-o', 'json']);
  t.equal(json.code, 1);
  t.notMatch(json.stdout, RAW_BIDI, 'JSON: no raw bidi control');
  const got = byPod(
    (JSON.parse(json.stdout) as { diagnoses: (Diagnosis & { untrusted?: { count: number; events: string[] } })[] })
      .diagnoses,
  );
  const forged = got.get('forged')!;
  t.equal(forged.reason, 'available', "the registry's answer, not the forged rate limit");
  t.equal(forged.now, 'would-succeed');
  t.equal(forged.backoff?.attempts, 3, "the kubelet's failed pulls only, not the forged 50 and 40");
  t.notOk(
    forged.kubelet.events.some((e) => e.includes('toomanyrequests')),
    "the forged text is not among the kubelet's events",
  );
  t.equal(forged.untrusted?.count, 2, 'both forged events (core/v1 and events.k8s.io/v1) are marked');
  t.ok(
    forged.untrusted?.events.every((e) => e.includes('(reported by "evil-controller")')),
    'each names who reported it',
  );
  t.equal(got.get('bidi')!.image, bidiImage, 'the JSON value is the image, escaped in the text');

  const text = await run(['-n', HNS]);
  t.notMatch(text.stdout, RAW_BIDI, 'text: no raw bidi control');
  t.match(text.stdout, 'app\\u061c\\u200e\\u200f\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069');
  t.match(
    text.stdout,
    /untrusted: not from the kubelet, ignored: Failed \(x50\): .*toomanyrequests.* \(reported by "evil-controller"\)/,
  );

  // The watch posts its Event about both pods: the same verdict, and no raw bidi control.
  const posted = await watchPosting(t, HNS);
  const bidiEvent = await posted('bidi');
  t.notMatch(bidiEvent.message!, RAW_BIDI, 'the posted Event: no raw bidi control');
  t.match(bidiEvent.message!, '\\u202e', 'shown escaped');
  const forgedEvent = await posted('forged');
  t.match(forgedEvent.message!, 'would now succeed', "the posted Event keeps the registry's verdict");
  t.notMatch(forgedEvent.message!, /toomanyrequests|rate limit/);
});

/**
 * `serve` with the watch on, leading in `namespace` (its Lease there): resolves to a function that
 * waits for the watch's ImagePullDiagnosed Event on a pod of that namespace.
 */
async function watchPosting(
  t: { teardown(fn: () => unknown): void },
  namespace: string,
): Promise<(pod: string) => Promise<CoreV1Event>> {
  const server = await startServer(
    validateConfig({
      server: { host: '127.0.0.1', port: 0, metricsPort: 0 },
      cluster: { kubeconfig: lab.kubeconfig, watchNodes: false },
      registry: { insecure: [anon.host, limited.host, `127.0.0.1:${closedPort}`] },
      deadline: '5s',
      watch: { enabled: true, interval: '10m', eventInterval: '1m', leaseDuration: '3s', leaseNamespace: namespace },
      log: { level: 'silent' },
    }),
    {},
    createLogger('silent'),
  );
  t.teardown(() => server.close());
  const core = lab.kc().makeApiClient(CoreV1Api);
  return (pod) =>
    waitFor(
      async () =>
        (
          await core.listNamespacedEvent({
            namespace,
            fieldSelector: `involvedObject.name=${pod},reason=ImagePullDiagnosed`,
          })
        ).items[0],
      { what: `an ImagePullDiagnosed Event on ${pod}`, timeoutMs: 90_000, everyMs: 250 },
    );
}
