// --context chooses the kubeconfig context, as kubectl's flag does.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCheck } from '../../src/cli/check.ts';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullguard-context-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'kubeconfig.yaml');
writeFileSync(
  file,
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'prod', cluster: { server: 'https://prod.example:6443' } },
      { name: 'staging', cluster: { server: 'https://staging.example:6443' } },
    ],
    users: [{ name: 'me', user: { token: 'not-a-real-token' } }],
    contexts: [
      { name: 'prod', context: { cluster: 'prod', user: 'me' } },
      { name: 'staging', context: { cluster: 'staging', user: 'me' } },
    ],
    'current-context': 'prod',
  }),
);

t.test('the current context, or the one --context names', async (t) => {
  t.equal(loadKubeConfig({ kubeconfig: file, env: {} })!.kc.getCurrentCluster()!.server, 'https://prod.example:6443');
  const chosen = loadKubeConfig({ kubeconfig: file, env: {}, context: 'staging' })!;
  t.equal(chosen.kc.getCurrentCluster()!.server, 'https://staging.example:6443');
  t.match(chosen.source, 'context staging');
  t.equal(
    loadKubeConfig({ env: { KUBECONFIG: file }, context: 'staging' })!.kc.getCurrentCluster()!.server,
    'https://staging.example:6443',
  );
  t.throws(() => loadKubeConfig({ kubeconfig: file, env: {}, context: 'dev' }), /no such context in kubeconfig/);
  t.throws(() => loadKubeConfig({ env: {}, context: 'staging' }), /no kubeconfig to choose it from/);
});

t.test('pullguard check --context with an unknown name: one line, exit 2', async (t) => {
  let stderr = '';
  const code = await runCheck(['nginx:1.25', '--kubeconfig', file, '--context', 'dev'], {
    stdout: () => undefined,
    stderr: (s) => (stderr += s),
    stdin: () => '',
    env: {},
    isTTY: false,
  });
  t.equal(code, 2);
  t.match(stderr, /^pullguard check: --context dev: no such context in kubeconfig .*\n$/);
});
