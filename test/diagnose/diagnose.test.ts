// The evidence the kubelet leaves and how diagnose joins it with pullguard's finding of now.
import t from 'tap';
import type { Finding } from '../../src/findings.ts';
import { diagnoseContainer, diagnosesToJson, diagnosesToText, shorten } from '../../src/diagnose/diagnose.ts';
import { backoffAfter, containerEvidence, podEventOf } from '../../src/diagnose/evidence.ts';

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
