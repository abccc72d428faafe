// The server wired to a cluster (the fixture API server through a kubeconfig): pull secrets from the
// namespace open the private registry, the nodes' platforms come from the Node list, readiness waits
// for that list, and a slow API server never makes a review late or a denial.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeApiServer, dockerConfigJson, makeNode } from '../helpers/kube-api.ts';
import { sample, serve, startRegistries, type Obj, type Registries } from './lib.ts';
import { waitFor } from '../helpers/wait.ts';

let regs: Registries;
let api: KubeApiServer;
let kubeconfig: string;
let dir: string;

t.before(async () => {
  [regs, api] = await Promise.all([startRegistries(), KubeApiServer.start()]);
  dir = mkdtempSync(join(tmpdir(), 'pullguard-server-cluster-'));
  kubeconfig = await api.writeKubeconfig(dir);
  api.putSecret({
    namespace: 'lab-demo',
    name: 'regcred',
    type: 'kubernetes.io/dockerconfigjson',
    stringData: dockerConfigJson({ [regs.secure.host]: regs.user }),
  });
  api.putNode(makeNode({ name: 'amd-1', architecture: 'amd64' }));
});
t.teardown(async () => {
  await Promise.all([regs?.stop(), api?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** pod-create-init-digest.json whose pod names the pull secret (and the nodes have no credentials). */
function withPullSecret(): Obj {
  const body = sample('pod-create-init-digest.json', regs);
  body.request.uid = crypto.randomUUID();
  body.request.object.spec.imagePullSecrets = [{ name: 'regcred' }];
  return body;
}

t.test("the pod's pull secret opens the private registry; secrets never reach the log", async (t) => {
  const s = await serve(
    regs,
    { cluster: { kubeconfig, watchNodes: false }, credentials: { nodeDockerConfigs: [] } },
    { level: 'trace' },
  );
  t.teardown(() => s.close());
  regs.reset();
  const r = await s.review(withPullSecret());
  t.equal(r.allowed, true);
  t.equal(r.warnings, undefined);
  t.ok(
    api.countRequests({ verb: 'get', resource: 'secrets', namespace: 'lab-demo', name: 'regcred' }) >= 1,
    'the secret was read',
  );
  const basic = `Basic ${Buffer.from(`${regs.user.username}:${regs.user.password}`).toString('base64')}`;
  t.ok(
    regs.secure.proxy!.requests().some((e) => e.authorization === basic),
    'with its credentials',
  );

  // Without the secret, the private image is refused: denied, and the message says what is missing.
  const none = sample('pod-create-init-digest.json', regs);
  const denied = await s.review(none);
  t.equal(denied.allowed, false);
  t.match(denied.status.message, `container "sidecar": image "${regs.secure.host}/demo/app:multi"`);
  t.match(denied.status.message, /imagePullSecret/);

  const text = s.log.text();
  t.notMatch(text, regs.user.password, 'no password in the log');
  t.notMatch(text, basic.slice(6), 'no base64 credentials in the log');
  t.notMatch(text, api.token, 'no API server token in the log');
});

t.test("readiness waits for the node list; the nodes' platform is required", async (t) => {
  // The API server holds its answer to the node list until the test has seen the 503.
  const answer = api.holdAnswers(t);
  const s = await serve(regs, { cluster: { kubeconfig, watchNodes: true }, platforms: [] });
  t.teardown(() => s.close());
  const early = await s.get('/readyz');
  t.equal(early.status, 503, 'not ready before the nodes are listed');
  t.equal((await s.get('/healthz')).status, 200, 'but alive');
  answer();
  await waitFor(async () => (await s.get('/readyz')).status === 200, { what: 'readiness', everyMs: 100 });
  t.pass('ready once listed');

  // Only arm64 nodes now: the amd64-only demo/app:1.0 cannot run anywhere.
  api.putNode(makeNode({ name: 'arm-1', architecture: 'arm64' }));
  api.deleteNode('amd-1');
  t.teardown(() => {
    api.putNode(makeNode({ name: 'amd-1', architecture: 'amd64' }));
    api.deleteNode('arm-1');
  });
  // The node watch delivers the change shortly; review until it has.
  const r = await waitFor(
    async () => {
      const answer = await s.review(sample('deployment-create.json', regs));
      return answer.allowed ? undefined : answer;
    },
    { what: 'a review that sees the arm64 nodes', everyMs: 100 },
  );
  t.equal(r.allowed, false, "no build for the nodes' platform: denied");
  t.match(r.status.message, /linux\/arm64/);
  t.match(s.log.reviews().at(-1), { findings: [{ reason: 'platform-not-found' }] });
});

t.test('a slow API server: the review is still answered before the deadline, and not denied', async (t) => {
  // Two causes could make this review late: the API server (slow here on purpose) and the registry
  // (fast, but slow on a busy machine). The test decides which one is slow: the API server answers
  // long after the whole deadline, and the deadline is long enough that the registry's share of it
  // (what is left after the cluster reads give up) is ample even on a loaded machine.
  const deadline = 10_000;
  const s = await serve(regs, {
    deadline,
    cluster: { kubeconfig, watchNodes: false },
    credentials: { nodeDockerConfigs: [] },
  });
  t.teardown(() => s.close());
  api.latencyMs = deadline * 3;
  t.teardown(() => (api.latencyMs = 0));
  const started = performance.now();
  const r = await s.review(withPullSecret());
  const elapsed = performance.now() - started;
  t.ok(
    elapsed < deadline * 2,
    `answered in ${Math.round(elapsed)} ms (deadline ${deadline} ms), not by the API server`,
  );
  t.equal(r.allowed, true, 'the secret could not be read in time: not a reason to deny');
  t.ok(r.warnings?.length >= 1, 'but a warning');
  t.match(r.warnings.join('\n'), 'container "sidecar"');
  t.match(r.warnings.join('\n'), /imagePullSecrets \(regcred\) could not be read/, 'saying why');
});
