// The pod check as both faces use it, counted at the fixture API server: every Secret,
// ServiceAccount and Node list is asked for once per cache miss, however many pods share it and
// whether `pullguard check` or the webhook asks.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCheck } from '../../src/cli/check.ts';
import { runInProcess } from '../helpers/cli.ts';
import { KubeApiServer, dockerConfigJson, makeNode } from '../helpers/kube-api.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { podReview, serve } from '../server/lib.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
let reg: TestRegistry;
let api: KubeApiServer;
let dir: string;
let kubeconfig: string;

t.before(async () => {
  [reg, api] = await Promise.all([startRegistry({ auth: 'htpasswd', users: [alice] }), KubeApiServer.start()]);
  await reg.pushImage('private/app', '1.0', { platform: 'linux/amd64' });
  dir = mkdtempSync(join(tmpdir(), 'pullguard-reads-'));
  kubeconfig = await api.writeKubeconfig(dir);
  for (const ns of ['cli', 'hook']) {
    api.putSecret({
      namespace: ns,
      name: 'regcred',
      type: 'kubernetes.io/dockerconfigjson',
      stringData: dockerConfigJson({ [reg.host]: alice }),
    });
    api.putServiceAccount(ns, 'default', ['regcred']);
  }
  api.putNode(makeNode({ name: 'amd-1', architecture: 'amd64' }));
});
t.teardown(async () => {
  await Promise.all([reg.stop(), api.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const count = (f: Parameters<KubeApiServer['countRequests']>[0]) => api.countRequests(f);

t.test('pullguard check: five workloads and two pods in one namespace, each object read once', async (t) => {
  const image = `${reg.host}/private/app:1.0`;
  const docs = [
    ...Array.from(
      { length: 5 },
      (_, i) =>
        `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d${i}, namespace: cli}\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: "${image}"}]\n`,
    ),
    ...Array.from(
      { length: 2 },
      (_, i) =>
        `apiVersion: v1\nkind: Pod\nmetadata: {name: p${i}, namespace: cli}\nspec:\n  imagePullSecrets: [{name: regcred}]\n  containers: [{name: app, image: "${image}"}]\n`,
    ),
  ].join('---\n');
  const before = api.requests.length;
  const { code, stdout, stderr } = await runInProcess(
    runCheck,
    ['-f', '-', '--kubeconfig', kubeconfig, '--registry-ca', reg.caFile!, '--timeout', '60s', '-o', 'json'],
    { stdin: docs },
  );
  t.equal(code, 0, stderr);
  const findings = JSON.parse(stdout).findings as { reason: string }[];
  t.same(
    findings.map((f) => f.reason),
    Array(7).fill('available'),
    'the secret opened the registry for every pod',
  );
  const sent = api.requests.slice(before);
  t.equal(count({ verb: 'get', resource: 'serviceaccounts', namespace: 'cli', name: 'default' }), 1, 'one SA read');
  t.equal(count({ verb: 'get', resource: 'secrets', namespace: 'cli', name: 'regcred' }), 1, 'one secret read');
  t.equal(sent.filter((r) => r.resource === 'nodes' && r.verb === 'list').length, 1, 'one node list');
  t.equal(sent.filter((r) => r.resource === 'nodes' && r.verb === 'watch').length, 0, 'no watch for one command');
  t.equal(sent.length, 3, 'nothing else');
});

t.test('the webhook: concurrent and repeated reviews read each object once', async (t) => {
  const s = await serve(null, {
    deadline: 60_000,
    cluster: { kubeconfig, watchNodes: true },
    platforms: [],
    registry: { caFiles: [reg.caFile!] },
  });
  t.teardown(() => s.close());
  const image = `${reg.host}/private/app:1.0`;
  const review = (secret: boolean) => {
    const body = podReview({ plain: reg, secure: reg, appDigest: '' }, [{ name: 'app', image }]);
    body.request.namespace = 'hook';
    body.request.object.metadata.namespace = 'hook';
    if (secret) body.request.object.spec.imagePullSecrets = [{ name: 'regcred' }];
    else {
      // A Deployment's template: its ServiceAccount's secrets count.
      body.request.kind = { group: 'apps', version: 'v1', kind: 'Deployment' };
      body.request.object = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: 'hook' },
        spec: { template: { spec: body.request.object.spec } },
      };
    }
    return body;
  };
  const answers = await Promise.all([...Array(4)].flatMap(() => [s.review(review(true)), s.review(review(false))]));
  answers.push(await s.review(review(false)), await s.review(review(true)));
  t.same(
    answers.map((a) => [a.allowed, a.warnings]),
    Array(10).fill([true, undefined]),
    'every review allowed, no warning',
  );
  t.equal(count({ verb: 'get', resource: 'serviceaccounts', namespace: 'hook', name: 'default' }), 1, 'one SA read');
  t.equal(count({ verb: 'get', resource: 'secrets', namespace: 'hook', name: 'regcred' }), 1, 'one secret read');
});
