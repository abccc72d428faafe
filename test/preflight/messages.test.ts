// explain()'s input is one shape per reason: a sub-reason is its own typed field, never text in a
// catch-all one. The @ts-expect-error lines are checked by `npm run typecheck`: each fails it once
// the field it passes is accepted for that reason.

import t from 'tap';
import { type ExplainInput, explain } from '../../src/preflight/messages.ts';
import { parseImage } from '../../src/reference/index.ts';
import { transientInput } from '../../src/preflight/engine.ts';
import type { Outcome } from '../../src/registry/client.ts';

const parsed = parseImage('registry.example/team/app:1.0');
if (!parsed.ok) throw new Error(parsed.error);
const about = { image: 'registry.example/team/app:1.0', ref: parsed.ref };

t.test('a field that does not belong to the reason does not compile', async (t) => {
  const rejected: ExplainInput[] = [
    // @ts-expect-error why an image is unverifiable is `why`, not text in `detail`
    { ...about, reason: 'unverifiable', detail: 'localhost' },
    // @ts-expect-error 'provider' is not a sub-reason of access-denied
    { ...about, reason: 'access-denied', why: 'provider' },
    // @ts-expect-error a tag list belongs to tag-not-found only
    { ...about, reason: 'repository-not-found', tags: ['1.0'] },
    // @ts-expect-error the kubelet's error is `error`
    { ...about, reason: 'invalid-reference', detail: 'invalid reference format' },
    // @ts-expect-error a credential failure names the failures
    { ...about, reason: 'unverifiable', why: 'credential-failure' },
    // @ts-expect-error only a credential failure carries failures
    { ...about, reason: 'unverifiable', why: 'localhost', failures: ['docker-credential-x failed'] },
    // @ts-expect-error not a reason why an image is unverifiable
    { ...about, reason: 'unverifiable', why: 'broken-secrets' },
    // @ts-expect-error a timeout has no registry outcome
    { ...about, reason: 'timeout', outcome: { kind: 'timeout' } },
    // @ts-expect-error platform-not-found says which platforms are missing and offered
    { ...about, reason: 'platform-not-found', single: false },
  ];
  t.equal(rejected.length, 9);
});

t.test('each sub-reason of unverifiable has its own words', async (t) => {
  const said = (i: ExplainInput) => explain(i).message;
  t.match(said({ ...about, reason: 'unverifiable', why: 'localhost' }), 'names "localhost"');
  t.match(said({ ...about, reason: 'unverifiable', why: 'provider' }), 'kubelet credential provider');
  t.match(said({ ...about, reason: 'unverifiable', why: 'never-absent' }), 'ErrImageNeverPull');
  t.match(
    said({ ...about, reason: 'unverifiable', why: 'unread-secrets', unreadSecrets: ['pull-a', 'pull-b'] }),
    "the pod's imagePullSecrets (pull-a, pull-b) could not be read",
  );
  t.match(
    said({ ...about, reason: 'unverifiable', why: 'credential-failure', failures: ['docker-credential-x: exit 1'] }),
    'registry.example/team/app:1.0": docker-credential-x: exit 1; without those credentials',
  );
});

t.test('platform-not-found: no build for some nodes, or for all of them', async (t) => {
  const platforms = {
    missing: ['linux/s390x (2 nodes)'],
    missingPlain: ['linux/s390x'],
    offered: ['linux/amd64'],
    pin: 'nodeSelector {kubernetes.io/arch: amd64}',
    single: false,
  };
  const some = explain({ ...about, reason: 'platform-not-found', ...platforms, partial: true });
  t.match(some.message, 'has no build for linux/s390x (2 nodes), where the pod may land (it offers linux/amd64)');
  t.equal(some.hint, 'add nodeSelector {kubernetes.io/arch: amd64}, or build the image for linux/s390x too');
  const all = explain({ ...about, reason: 'platform-not-found', ...platforms, partial: false });
  t.match(all.message, 'has no build for linux/s390x (2 nodes), the nodes the pod may land on (it offers linux/amd64)');
  t.equal(all.hint, some.hint, 'the same two ways out');
});

t.test('access-denied: broken pull secrets are named, whatever the registry says', async (t) => {
  const { message } = explain({ ...about, reason: 'access-denied', brokenSecrets: ['bad-secret'] });
  t.match(message, 'imagePullSecret "bad-secret" does not parse');
});

t.test('a request that timed out: the message says the deadline, the request goes to the evidence', async (t) => {
  const image = 'registry.example:5000/team/app:1.0';
  const parsed = parseImage(image);
  if (!parsed.ok) throw new Error('test image does not parse');
  const text = explain(
    transientInput(
      { image, ref: parsed.ref },
      'timeout',
      { kind: 'timeout' } as Outcome,
      'registry.example:5000 did not answer in time (8000 ms)',
    ),
  );
  t.match(text.message, /did not answer within the deadline; the pull may still work$/);
  t.notMatch(text.message, /within registry\.example/, 'not "within <the evidence line>"');
});

t.test('platform-not-found without the platforms known (diagnose from the kubelet text): a whole hint', async (t) => {
  const text = explain({ ...about, reason: 'platform-not-found', missing: [], offered: [], single: false });
  t.equal(text.hint, "build the image for the nodes' platform too");
});
