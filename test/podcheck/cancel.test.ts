// One deadline for the whole pod check, cluster reads included: an API server that never answers
// gets its requests closed when the check's share of the deadline passes (not at the reader's own,
// much longer timeout), and `pullguard check --timeout` is one deadline for the command.
import t from 'tap';
import { Deadline } from '../../src/deadline.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPodCheck } from '../../src/app/build.ts';
import { runCheck } from '../../src/cli/check.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { imageUsesOf, podSpecSite } from '../../src/workload/images.ts';
import { runInProcess } from '../helpers/cli.ts';
import { KubeApiServer, makeNode } from '../helpers/kube-api.ts';
import { silentServer } from '../helpers/silent.ts';
import { waitFor } from '../helpers/wait.ts';

let api: KubeApiServer;
let dir: string;
let kubeconfig: string;

t.before(async () => {
  api = await KubeApiServer.start();
  api.putNode(makeNode({ name: 'amd-1', architecture: 'amd64' }));
  dir = mkdtempSync(join(tmpdir(), 'pullguard-cancel-'));
  kubeconfig = await api.writeKubeconfig(dir);
});
t.teardown(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

const deployment = (image: string) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { template: { spec: { containers: [{ name: 'web', image }] } } },
});

t.test('a hanging API server: its requests are closed by the check deadline', async (t) => {
  api.latencyMs = 3_600_000;
  t.teardown(() => (api.latencyMs = 0));
  const reg = await silentServer();
  t.teardown(reg.stop);
  // The reader's own request timeout is half of the configured 60 s: only the check's deadline
  // can close the read within the margin below.
  const config = validateConfig({
    deadline: 60_000,
    cluster: { kubeconfig, watchNodes: false },
    registry: { endpoints: { [reg.host]: `http://${reg.host}` } },
  });
  const { podCheck } = await buildPodCheck(config, { env: {}, dockerConfigs: [] });
  t.teardown(() => podCheck.close());
  const site = podSpecSite(deployment(`${reg.host}/demo/app:1.0`))!;
  const before = api.countRequests({ resource: 'serviceaccounts' });
  const deadline = 1_000;
  const findings = await podCheck.check({ site, namespace: 'shop' }, imageUsesOf(site), {
    deadline: Deadline.after(deadline),
  });
  t.equal(findings[0]!.reason, 'timeout', 'the registry did not answer either');
  t.equal(api.countRequests({ resource: 'serviceaccounts' }) - before, 1, 'the ServiceAccount was asked for');
  await waitFor(() => api.openRequests === 0, {
    what: 'the API server to see the read closed',
    timeoutMs: 10 * deadline,
  });
  await waitFor(() => reg.open() === 0, {
    what: 'the registry to see its connection closed',
    timeoutMs: 10 * deadline,
  });
});

t.test('pullguard check --timeout is one deadline for the command, nodes and cluster reads included', async (t) => {
  api.latencyMs = 3_600_000;
  t.teardown(() => (api.latencyMs = 0));
  const reg = await silentServer();
  t.teardown(reg.stop);
  const stdin = JSON.stringify(deployment(`${reg.host}/demo/app:1.0`));
  const timeout = 4_000;
  const started = performance.now();
  const { code, stdout } = await runInProcess(
    runCheck,
    ['-f', '-', '--kubeconfig', kubeconfig, '--insecure-registry', reg.host, '--timeout', `${timeout}ms`, '-o', 'json'],
    { stdin },
  );
  const elapsed = performance.now() - started;
  t.equal(code, 3, 'a timeout is not verified: exit 3');
  t.match(JSON.parse(stdout).findings, [{ reason: 'timeout' }]);
  // Each stage waiting a full --timeout (nodes, cluster reads, registry) took three times as long.
  t.ok(elapsed >= timeout - 100, `not before the deadline (${Math.round(elapsed)} ms)`);
  t.ok(elapsed < 2 * timeout, `one deadline, not one per stage (${Math.round(elapsed)} ms, --timeout ${timeout} ms)`);
  await waitFor(() => api.openRequests === 0, {
    what: 'no request left open at the API server',
    timeoutMs: 10 * timeout,
  });
  await waitFor(() => reg.open() === 0, { what: 'no request left open at the registry', timeoutMs: 10 * timeout });
});
