// The evidence the kubelet leaves and how diagnose joins it with pullguard's finding of now.
import t from 'tap';
import type { Finding } from '../../src/findings.ts';
import { diagnoseContainer, diagnosesToJson, diagnosesToText, shorten } from '../../src/diagnose/diagnose.ts';
import { backoffAfter, backoffCause, containerEvidence, podEventOf } from '../../src/diagnose/evidence.ts';

const NOW = new Date('2026-01-01T12:00:00Z');
const ago = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();
const IMAGE = 'registry.example/app:1.4';
const RUNTIME = `rpc error: code = NotFound desc = failed to pull and unpack image "${IMAGE}": failed to resolve reference "${IMAGE}": ${IMAGE}: not found`;

function pod(reason: string, message: string) {
  return {
    metadata: { name: 'web-1', namespace: 'shop' },
    spec: {
      nodeName: 'n1',
      initContainers: [{ name: 'init', image: 'busybox' }],
      containers: [{ name: 'web', image: IMAGE }],
    },
    status: {
      initContainerStatuses: [{ name: 'init', state: { terminated: { exitCode: 0 } } }],
      containerStatuses: [{ name: 'web', image: IMAGE, state: { waiting: { reason, message } } }],
    },
  };
}

const events = [
  { reason: 'Pulling', message: `Pulling image "${IMAGE}"`, count: 4, fieldPath: 'spec.containers{web}' },
  {
    reason: 'Failed',
    message: `Failed to pull image "${IMAGE}": ${RUNTIME}`,
    count: 4,
    fieldPath: 'spec.containers{web}',
  },
  { reason: 'Failed', message: 'Error: ErrImagePull', count: 4, fieldPath: 'spec.containers{web}' },
  { reason: 'BackOff', message: `Back-off pulling image "${IMAGE}"`, count: 6, fieldPath: 'spec.containers{web}' },
  { reason: 'Failed', message: 'Error: ImagePullBackOff', count: 6, fieldPath: 'spec.containers{web}' },
  { reason: 'Failed', message: 'Failed to pull image "other": x', count: 9, fieldPath: 'spec.containers{other}' },
].map((e) =>
  podEventOf({
    reason: e.reason,
    message: e.message,
    count: e.count,
    firstTimestamp: ago(150),
    lastTimestamp: ago(20),
    involvedObject: { kind: 'Pod', name: 'web-1', fieldPath: e.fieldPath },
    source: { component: 'kubelet', host: 'n1' },
  }),
);

function finding(over: Partial<Finding>): Finding {
  return {
    image: IMAGE,
    reference: IMAGE,
    container: 'web',
    field: 'spec.containers[0].image',
    object: { kind: 'Pod', namespace: 'shop', name: 'web-1' },
    verdict: 'fail',
    reason: 'tag-not-found',
    message: `image "${IMAGE}": tag 1.4 does not exist in registry.example/app`,
    hint: 'push the tag or use an existing one',
    evidence: [],
    ...over,
  };
}

t.test('evidence: only stuck containers, their own events, the failed pulls counted', async (t) => {
  const [ev, ...rest] = containerEvidence(pod('ImagePullBackOff', `Back-off pulling image "${IMAGE}"`), events);
  t.equal(rest.length, 0, 'the finished init container is not stuck');
  t.equal(ev!.container, 'web');
  t.equal(ev!.failedPulls, 4, "the runtime's Failed event, not the Error: echoes");
  t.equal(ev!.events.length, 4, "its Failed and BackOff events; the other container's are not its");
  t.equal(containerEvidence(pod('ImagePullBackOff', ''), events, true).length, 2, 'a named pod: every container');
});

t.test('backoff: 10 s doubling to 5 minutes', async (t) => {
  const at = (n: number) => backoffAfter({ failedPulls: n, lastFailure: new Date(NOW.getTime() - 5000) }, NOW);
  t.same(
    [1, 2, 3, 4, 5, 6, 9].map((n) => at(n).seconds),
    [10, 20, 40, 80, 160, 300, 300],
  );
  t.same(
    [1, 2, 6, 9].map((n) => at(n).step),
    [1, 2, 6, 6],
  );
  t.equal(at(4).nextRetryInSeconds, 75);
});

t.test('events.k8s.io/v1 fields: series count, note, regarding', async (t) => {
  const e = podEventOf({
    reason: 'Failed',
    note: 'Failed to pull image "x": not found',
    series: { count: 7, lastObservedTime: ago(3) },
    eventTime: ago(100),
    regarding: { kind: 'Pod', fieldPath: 'spec.containers{web}' },
    reportingController: 'kubelet',
  });
  t.equal(e.count, 7);
  t.ok(e.fromKubelet, 'reportingController "kubelet"');
  t.equal(e.message, 'Failed to pull image "x": not found');
  t.equal(e.fieldPath, 'spec.containers{web}');
  t.equal(e.last?.toISOString(), ago(3));
});

t.test('still failing: the kubelet quoted, the cause, the back-off', async (t) => {
  const [ev] = containerEvidence(pod('ImagePullBackOff', `Back-off pulling image "${IMAGE}"`), events);
  const d = diagnoseContainer({ namespace: 'shop', name: 'web-1', node: 'n1' }, ev!, finding({}), NOW);
  t.equal(d.now, 'still-failing');
  t.equal(d.reason, 'tag-not-found');
  t.equal(d.runtime?.reason, 'not-found');
  t.notOk(d.disagreement);
  t.match(d.kubelet.message!, ': not found', "the runtime's text, not the back-off notice");
  t.equal(d.backoff?.seconds, 80);
  t.match(d.outlook, 'still failing: the next retry, due in ~60s, will fail the same way');
  t.match(diagnosesToText([d]), 'backoff:   4 failed pulls over 3m; waiting 80s between pulls (step 4 of 6');
});

t.test('would now succeed once the tag exists', async (t) => {
  const [ev] = containerEvidence(pod('ImagePullBackOff', `Back-off pulling image "${IMAGE}"`), events);
  const d = diagnoseContainer(
    { namespace: 'shop', name: 'web-1' },
    ev!,
    finding({ verdict: 'ok', reason: 'available' }),
    NOW,
  );
  t.equal(d.now, 'would-succeed');
  t.match(d.outlook, 'the next retry, due in ~60s, will succeed; delete the pod to retry at once');
});

t.test('a disagreement is said', async (t) => {
  const [ev] = containerEvidence(pod('ImagePullBackOff', `Back-off pulling image "${IMAGE}"`), events);
  const d = diagnoseContainer({ namespace: 'shop', name: 'web-1' }, ev!, finding({ reason: 'access-denied' }), NOW);
  t.match(d.disagreement!, "the kubelet's message says the image (repository, tag or digest) was not found");
  t.match(d.disagreement!, 'pullguard now finds access-denied');
});

t.test('the registry cannot be asked now: the runtime text gives the cause', async (t) => {
  const text = `rpc error: code = Unknown desc = failed to pull and unpack image "${IMAGE}": failed to copy: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit`;
  const [ev] = containerEvidence(pod('ErrImagePull', text), []);
  const d = diagnoseContainer(
    { namespace: 'shop', name: 'web-1' },
    ev!,
    finding({ verdict: 'risk', reason: 'timeout', message: 'the registry did not answer', hint: 'later' }),
    NOW,
  );
  t.equal(d.reason, 'rate-limited');
  t.equal(d.now, 'unknown');
  t.match(d.message, "the kubelet reports that the registry's pull rate limit was reached");
  t.ok(d.hint.length > 0);
});

// A long containerd message as the kubelet's waiting message carries it.
const LONG = `rpc error: code = Unknown desc = failed to pull and unpack image "${IMAGE}": failed to resolve reference "${IMAGE}": failed to do request: Head "https://registry.example/v2/app/manifests/1.4": dial tcp 10.96.12.7:443: connect: connection refused while the node was resolving the registry's address through the cluster's DNS`;

t.test("the kubelet's message is shortened at spaces, its start and its end kept", async (t) => {
  for (const max of [60, 97, 120, 160, 200, 240]) {
    const short = shorten(LONG, max);
    t.ok([...short].length <= max, `${max}: at most ${max} characters`);
    const [head, tail] = short.split(' … ');
    t.ok(LONG.startsWith(head!), `${max}: the start is the message's`);
    t.ok(LONG.endsWith(tail!), `${max}: the end is the message's`);
    t.equal(LONG[head!.length], ' ', `${max}: the start ends with a word (${JSON.stringify(head)})`);
    t.equal(LONG[LONG.length - tail!.length - 1], ' ', `${max}: the end starts with a word (${JSON.stringify(tail)})`);
  }
  t.match(shorten(LONG), /^rpc error: code = Unknown desc = failed to pull and unpack … /, 'never "rpc erro …"');
  t.match(shorten(LONG), /connect: connection refused .* DNS$/, "the runtime's cause, at the end, is kept");
  t.equal(shorten('short message'), 'short message');
  const word = 'x'.repeat(300);
  t.equal([...shorten(word)].length, 240, 'a text without spaces is still cut to the limit');

  const [ev] = containerEvidence(pod('ErrImagePull', LONG), events);
  const d = diagnoseContainer({ namespace: 'shop', name: 'web-1' }, ev!, finding({}), NOW);
  t.match(d.kubelet.message!, /^rpc error: code = Unknown desc = failed to pull and unpack … /);
  t.match(
    diagnosesToText([d]),
    /kubelet: {3}ErrImagePull "rpc error: code = Unknown desc = failed to pull and unpack … .*DNS"\n/,
  );
});

// Anyone who may create Events in the namespace can write one about the pod.
const forged = (
  over: Record<string, unknown>,
  message = `Failed to pull image "${IMAGE}": 429 Too Many Requests - Server message: toomanyrequests: limit`,
) =>
  podEventOf({
    reason: 'Failed',
    message,
    count: 7,
    firstTimestamp: ago(100),
    lastTimestamp: ago(1),
    involvedObject: { kind: 'Pod', name: 'web-1', fieldPath: 'spec.containers{web}' },
    ...over,
  });

t.test('events not reported by the kubelet are shown as such and used for nothing', async (t) => {
  const others = [
    forged({ source: { component: 'evil-controller' } }),
    forged({ reportingController: 'evil-controller' }),
    forged({}),
    // claims the kubelet in one field and not in the other
    forged({ source: { component: 'kubelet' }, reportingComponent: 'evil-controller' }),
  ];
  t.same(
    others.map((e) => e.fromKubelet),
    [false, false, false, false],
  );
  const back = `Back-off pulling image "${IMAGE}"`;
  const [ev] = containerEvidence(pod('ImagePullBackOff', back), [...events, ...others]);
  t.equal(ev!.failedPulls, 4, "the kubelet's count only");
  t.equal(ev!.events.length, 4);
  t.equal(ev!.untrustedCount, 4);
  // The registry could not be asked: the kubelet's own text gives the cause, not the forged one.
  const d = diagnoseContainer(
    { namespace: 'shop', name: 'web-1' },
    ev!,
    finding({ verdict: 'risk', reason: 'timeout', message: 'the registry did not answer', hint: 'later' }),
    NOW,
  );
  t.equal(d.runtime?.reason, 'not-found', "the kubelet's event, not the forged rate limit");
  t.equal(d.reason, 'not-found');
  t.notMatch(d.kubelet.message!, 'toomanyrequests');
  t.notOk(
    d.kubelet.events.some((e) => e.includes('toomanyrequests')),
    "not among the kubelet's events",
  );
  t.equal(d.untrusted?.count, 4);
  t.match(
    d.untrusted!.events[0]!,
    /^Failed \(x7\): Failed to pull image .*toomanyrequests.* \(reported by "evil-controller"\)$/,
  );
  const text = diagnosesToText([d]);
  t.match(text, /untrusted: not from the kubelet, ignored: Failed \(x7\): .* \(reported by "evil-controller"\)/);
  t.match(text, /untrusted: not from the kubelet, ignored: .* \(reported by "\(nobody\)"\)/);
  const json = JSON.parse(diagnosesToJson([d])).diagnoses[0];
  t.equal(json.untrusted.count, 4);
  t.equal(json.untrusted.events.length, 4);
  t.notOk(json.kubelet.events.some((e: string) => e.includes('toomanyrequests')));

  // Only forged events: the status says only "Back-off"; no cause is taken from them.
  const [alone] = containerEvidence(pod('ImagePullBackOff', back), others);
  const a = diagnoseContainer(
    { namespace: 'shop', name: 'web-1' },
    alone!,
    finding({ verdict: 'risk', reason: 'timeout', message: 'the registry did not answer', hint: 'later' }),
    NOW,
  );
  t.notOk(a.runtime, 'no runtime cause');
  t.equal(a.reason, 'timeout');
  t.equal(a.backoff?.attempts, 0, 'no failed pull counted');

  // Many: a few shown, the rest counted.
  const flood = Array.from({ length: 40 }, () => forged({ source: { component: 'evil' } }));
  const [many] = containerEvidence(pod('ImagePullBackOff', back), flood);
  const m = diagnoseContainer({ namespace: 'shop', name: 'web-1' }, many!, finding({}), NOW);
  t.equal(m.untrusted?.count, 40);
  t.equal(m.untrusted?.events.length, 5);
  t.match(diagnosesToText([m]), 'untrusted: 35 more events not from the kubelet, ignored');
});

t.test("an Event's text never changes a verdict the registry answered", async (t) => {
  // Even one that claims to be the kubelet's: whoever wrote it, the registry's answer stands.
  const lie = forged({ source: { component: 'kubelet' } }, `Failed to pull image "${IMAGE}": ${RUNTIME}`);
  const back = `Back-off pulling image "${IMAGE}"`;
  const [ev] = containerEvidence(pod('ImagePullBackOff', back), [lie]);
  const cases: [Partial<Finding>, string, string][] = [
    [{ verdict: 'ok', reason: 'available', message: 'available', hint: '' }, 'available', 'would-succeed'],
    [{ verdict: 'fail', reason: 'access-denied' }, 'access-denied', 'still-failing'],
    [{ verdict: 'risk', reason: 'rate-limited' }, 'rate-limited', 'still-failing'],
    [{ verdict: 'risk', reason: 'registry-error' }, 'registry-error', 'still-failing'],
  ];
  for (const [over, reason, now] of cases) {
    const d = diagnoseContainer({ namespace: 'shop', name: 'web-1' }, ev!, finding(over), NOW);
    t.equal(d.reason, reason, `${over.reason}: the registry's reason`);
    t.equal(d.now, now, `${over.reason}: the registry's outlook`);
  }
  // The same forged text from another reporter: not even a disagreement.
  const [other] = containerEvidence(pod('ImagePullBackOff', back), [
    forged({ source: { component: 'evil' } }, `Failed to pull image "${IMAGE}": ${RUNTIME}`),
  ]);
  const d = diagnoseContainer({ namespace: 'shop', name: 'web-1' }, other!, finding({ reason: 'access-denied' }), NOW);
  t.notOk(d.disagreement, 'no disagreement from an event the kubelet did not report');
  t.equal(d.reason, 'access-denied');
});

// Today's kubelets (1.28-1.37) and CRI-O: the waiting reasons and messages they write, each test
// naming the upstream source of its text.
const QUAY = 'quay.io/team/app:1.0';
const today = (reason: string, message: string) => ({
  metadata: { name: 'api-1', namespace: 'shop' },
  spec: { nodeName: 'n1', containers: [{ name: 'api', image: QUAY }] },
  status: { containerStatuses: [{ name: 'api', image: QUAY, state: { waiting: { reason, message } } }] },
});
const at = { namespace: 'shop', name: 'api-1', node: 'n1' };
const available = (over: Partial<Finding> = {}) =>
  finding({
    image: QUAY,
    reference: QUAY,
    container: 'api',
    verdict: 'ok',
    reason: 'available',
    message: `image "${QUAY}" is available`,
    hint: '',
    ...over,
  });

t.test('RegistryUnavailable (CRI-O): listed, the unreachable registry named', async (t) => {
  // kubernetes pkg/kubelet/images/image_manager.go evalCRIPullErr: "image pull failed for %s because
  // the registry is unavailable%s"; CRI-O server/image_pull.go wraps ECONNREFUSED in ErrRegistryUnavailable
  const text = `image pull failed for ${QUAY} because the registry is unavailable: pinging container registry quay.io: Get "https://quay.io/v2/": dial tcp 10.0.0.7:443: connect: connection refused`;
  const [ev] = containerEvidence(today('RegistryUnavailable', text), []);
  t.ok(ev, 'a container waiting with RegistryUnavailable is stuck');
  const d = diagnoseContainer(at, ev!, undefined, NOW);
  t.ok(d.stuck);
  t.equal(d.reason, 'registry-unreachable');
  t.equal(d.runtime?.host, '10.0.0.7:443');
  t.ok(d.backoff, 'pulls are retried with the back-off');
});

t.test('SignatureValidationFailed (CRI-O): the node refused it; the fix points to its signature policy', async (t) => {
  // evalCRIPullErr: "image pull failed for %s because the signature validation failed%s"; CRI-O
  // internal/storage/image.go WrapSignatureCRIErrorIfNeeded (containers/image PolicyRequirementError)
  const text = `image pull failed for ${QUAY} because the signature validation failed: verifying signatures: SignatureValidationFailed: Source image rejected: A signature was required, but no signature exists`;
  const [ev] = containerEvidence(today('SignatureValidationFailed', text), []);
  const d = diagnoseContainer(at, ev!, available(), NOW);
  t.equal(d.reason, 'signature-refused', 'the registry serving the image does not overrule the node');
  t.equal(d.now, 'still-failing');
  t.match(d.message, "the node's signature policy refused the image");
  t.match(d.hint, 'signature policy');
  t.match(d.hint, 'policy.json');
  t.match(d.hint, 'pullguard does not verify signatures');
  t.notOk(d.disagreement, 'the registry and the node do not disagree: they answer different questions');
  t.match(d.outlook, "refused by the node's signature policy");
  // Only the reason is left (a runtime that says no more): the reason alone names the cause.
  const [bare] = containerEvidence(today('SignatureValidationFailed', ''), []);
  t.equal(diagnoseContainer(at, bare!, undefined, NOW).reason, 'signature-refused');
  // A tag the registry does not have: the registry's answer stands, the node never got that far.
  t.equal(diagnoseContainer(at, ev!, finding({ image: QUAY, container: 'api' }), NOW).reason, 'tag-not-found');
});

t.test('ImageInspectError: the node could not look the image up; no back-off, the runtime to check', async (t) => {
  // kubernetes pkg/kubelet/images/image_manager.go imagePullPrecheck: "Failed to inspect image %q: %v"
  // with the imageRef GetImageRef returned (empty on error); types.go ErrImageInspect; event InspectFailed
  const text =
    'Failed to inspect image "": rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix /run/containerd/containerd.sock: connect: connection refused"';
  const [ev] = containerEvidence(today('ImageInspectError', text), []);
  t.ok(ev, 'listed');
  const d = diagnoseContainer(at, ev!, available(), NOW);
  t.equal(d.reason, 'inspect-failed', "the runtime's socket refusing is not the registry being down");
  t.notOk(d.backoff, 'inspection is retried at each sync, not on the image back-off');
  t.equal(d.now, 'unknown');
  t.match(d.hint, 'crictl inspecti');
});

t.test('the 1.32+ back-off message is read as the cause when the events are gone', async (t) => {
  // kubernetes#127918, pkg/kubelet/images/image_manager.go pullImage: `Back-off pulling image %q`
  // + ": " + prevPullErrMsg ("<error>: <message>", stored when the pull failed)
  const cases: [string, string, string][] = [
    [
      'ErrImagePull',
      `rpc error: code = NotFound desc = failed to pull and unpack image "${QUAY}": failed to resolve reference "${QUAY}": ${QUAY}: not found`,
      'not-found',
    ],
    [
      'RegistryUnavailable',
      `image pull failed for ${QUAY} because the registry is unavailable: dial tcp 10.0.0.7:443: connect: connection refused`,
      'registry-unreachable',
    ],
    [
      'SignatureValidationFailed',
      `image pull failed for ${QUAY} because the signature validation failed: Source image rejected: Signature for identity quay.io/team/app:1.0 is not accepted`,
      'signature-refused',
    ],
    // kubernetes pkg/kubelet/images/throttled_puller.go: the kubelet's own limit, not the registry's
    ['ErrImagePull', 'pull QPS exceeded', 'pull-throttled'],
  ];
  for (const [error, cause, reason] of cases) {
    const message = `Back-off pulling image "${QUAY}": ${error}: ${cause}`;
    t.same(backoffCause(message), { error, text: cause });
    const [ev] = containerEvidence(today('ImagePullBackOff', message), []);
    t.equal(ev!.events.length, 0, 'no events left');
    const d = diagnoseContainer(at, ev!, undefined, NOW);
    t.equal(d.reason, reason, `${error}: ${reason}`);
    t.equal(d.kubelet.message, message);
  }
  t.equal(backoffCause(`Back-off pulling image "${QUAY}"`), undefined, 'before 1.32: no cause to read');
  // pull QPS exceeded with the registry answering now: the next retry will succeed, and the kubelet's limit is named.
  const [qps] = containerEvidence(today('ErrImagePull', 'pull QPS exceeded'), []);
  const d = diagnoseContainer(at, qps!, available(), NOW);
  t.equal(d.reason, 'pull-throttled');
  t.equal(d.now, 'would-succeed');
  t.match(d.hint, 'registryPullQPS');
});

t.test('image volumes: a failed volume pull is diagnosed for the volume, with the pod-level events', async (t) => {
  // kubernetes pkg/kubelet/kuberuntime/kuberuntime_manager.go (000f26050b9b) getImageVolumes: each
  // volumes[].image is pulled by EnsureImageExists with the pod's own reference (ref.GetReference(pod):
  // no fieldPath), so its Pulling/Failed/BackOff events are the pod's; toKubeContainerImageVolumes then
  // fails every container mounting it with the pull's error and message (syncResult.Fail), which the
  // container's waiting state shows, and records "Error: <message>" on the container.
  const MODELS = 'registry.example/models:v3';
  const failure = `rpc error: code = NotFound desc = failed to pull and unpack image "${MODELS}": failed to resolve reference "${MODELS}": ${MODELS}: not found`;
  const volPod = (reason: string, message: string) => ({
    metadata: { name: 'infer-1', namespace: 'shop' },
    spec: {
      nodeName: 'n1',
      containers: [
        { name: 'server', image: IMAGE, volumeMounts: [{ name: 'models', mountPath: '/models' }] },
        { name: 'sidecar', image: IMAGE },
      ],
      volumes: [
        { name: 'scratch', emptyDir: {} },
        { name: 'models', image: { reference: MODELS, pullPolicy: 'IfNotPresent' } },
      ],
    },
    status: {
      containerStatuses: [
        { name: 'server', image: IMAGE, state: { waiting: { reason, message } } },
        { name: 'sidecar', image: IMAGE, state: { running: {} } },
      ],
    },
  });
  const podEvents = [
    { reason: 'Pulling', message: `Pulling image "${MODELS}"`, count: 3 },
    { reason: 'Failed', message: `Failed to pull image "${MODELS}": ${failure}`, count: 3 },
    { reason: 'BackOff', message: `Back-off pulling image "${MODELS}"`, count: 5 },
    { reason: 'Failed', message: `Error: ${failure}`, count: 3, fieldPath: 'spec.containers{server}' },
  ].map((e) =>
    podEventOf({
      ...e,
      firstTimestamp: ago(100),
      lastTimestamp: ago(10),
      involvedObject: { kind: 'Pod', name: 'infer-1', ...(e.fieldPath ? { fieldPath: e.fieldPath } : {}) },
      source: { component: 'kubelet' },
    }),
  );
  const list = containerEvidence(volPod('ImagePullBackOff', `Back-off pulling image "${MODELS}"`), podEvents);
  t.equal(list.length, 1, 'only the container that waits');
  const ev = list[0]!;
  t.equal(ev.container, 'server');
  t.equal(ev.volume, 'models');
  t.equal(ev.image, MODELS, "the volume's reference, not the container's image");
  t.equal(ev.pullPolicy, 'IfNotPresent');
  t.equal(ev.failedPulls, 3, "the pod's own Failed event counts");
  t.equal(ev.events.length, 2, "the pod-level Failed and BackOff about the volume's image");
  const d = diagnoseContainer(
    { namespace: 'shop', name: 'infer-1', node: 'n1' },
    ev,
    finding({ image: MODELS, reference: MODELS, container: 'volume models', field: 'spec.volumes[1].image.reference' }),
    NOW,
  );
  t.equal(d.volume, 'models');
  t.equal(d.reason, 'tag-not-found');
  t.equal(d.now, 'still-failing');
  t.equal(d.runtime?.reason, 'not-found');
  t.match(diagnosesToText([d]), 'container "server", image volume "models", image "registry.example/models:v3"');
  t.match(JSON.parse(diagnosesToJson([d])).diagnoses[0], { container: 'server', volume: 'models', image: MODELS });

  // ErrImagePull with the runtime's text (the reference normalized) and no mounts known (the watch's projection)
  const bare = volPod('ErrImagePull', failure);
  for (const c of bare.spec.containers) delete (c as { volumeMounts?: unknown }).volumeMounts;
  t.equal(containerEvidence(bare, [])[0]!.volume, 'models');
  // A short name, as containerd writes it: "docker.io/library/…"
  bare.spec.volumes[1]!.image!.reference = 'models:v3';
  bare.status.containerStatuses[0]!.state = {
    waiting: {
      reason: 'ErrImagePull',
      message:
        'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/models:v3": not found',
    },
  };
  t.equal(containerEvidence(bare, [])[0]!.volume, 'models');
  // The container's own image failing is the container's, even with an image volume mounted.
  const own = volPod('ErrImagePull', `Failed to pull image "${IMAGE}": ${RUNTIME}`);
  t.equal(containerEvidence(own, [])[0]!.volume, undefined);
  t.equal(containerEvidence(own, [])[0]!.image, IMAGE);
});
