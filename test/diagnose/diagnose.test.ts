// The evidence the kubelet leaves and how diagnose joins it with pullguard's finding of now.
import t from 'tap';
import type { Finding } from '../../src/findings.ts';
import { diagnoseContainer, diagnosesToText } from '../../src/diagnose/diagnose.ts';
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
  });
  t.equal(e.count, 7);
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
