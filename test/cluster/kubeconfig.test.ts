// Where the cluster connection comes from: --kubeconfig, KUBECONFIG (a list), the in-cluster
// service account, or nothing. The loaded configs are used for real against the fixture server.
import t from 'tap';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.ts';
import { ClusterReader } from '../../src/cluster/reader.ts';
import { KubeApiServer } from '../helpers/kube-api.ts';

const dir = await mkdtemp(join(tmpdir(), 'pullguard-kubeconfig-'));
const api = await KubeApiServer.start();
api.putServiceAccount('shop', 'default', ['regcred']);
t.teardown(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

const noSa = join(dir, 'no-such-sa');

// what a read through the loaded config answers (the ServiceAccount's pull secrets; its uid is the server's)
const through = async (kc: KubeConfig) => {
  const { status, names } = await new ClusterReader(kc, { cacheTtlMs: 0 }).serviceAccountPullSecrets('shop', 'default');
  return { status, names };
};
const expected = { status: 'ok', names: ['regcred'] };

t.test('an explicit path wins over KUBECONFIG and in-cluster', async (t) => {
  const file = await api.writeKubeconfig(dir, { file: 'explicit' });
  const loaded = loadKubeConfig({
    kubeconfig: file,
    env: { KUBECONFIG: join(dir, 'nope'), KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
  });
  t.ok(loaded);
  t.equal(loaded?.source, `kubeconfig ${file}`);
  t.equal(loaded?.kc.getCurrentCluster()?.server, api.url);
  if (loaded) t.same(await through(loaded.kc), expected, 'reads the API through it');
});

t.test('an explicit path that cannot be loaded is an error that quotes nothing from the file', async (t) => {
  t.throws(() => loadKubeConfig({ kubeconfig: join(dir, 'missing'), env: {} }), {
    message: /cannot load kubeconfig .*missing: no such file \(check --kubeconfig or KUBECONFIG\)/,
  });
  const broken = join(dir, 'broken');
  await writeFile(broken, 'users:\n- name: x\n  user:\n    token: SUPER-SECRET-TOKEN-123\n  : : [\n');
  const err = t.throws(() => loadKubeConfig({ kubeconfig: broken, env: {} })) as Error;
  t.notMatch(String(err?.message), /SUPER-SECRET/);
  const noContext = join(dir, 'no-context');
  await writeFile(
    noContext,
    JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] }),
  );
  t.throws(() => loadKubeConfig({ kubeconfig: noContext, env: {} }), { message: /no current context/ });
});

t.test('KUBECONFIG: a list, missing files skipped, the first current-context wins', async (t) => {
  const first = await api.writeKubeconfig(join(dir, 'a'));
  const other = await KubeApiServer.start();
  t.teardown(() => other.close());
  const second = await other.writeKubeconfig(join(dir, 'b'));
  const env = { KUBECONFIG: [join(dir, 'missing'), first, second].join(delimiter) };
  const loaded = loadKubeConfig({ env, serviceAccountDir: noSa });
  t.equal(loaded?.source, `KUBECONFIG ${[first, second].join(delimiter)}`);
  t.equal(loaded?.kc.getCurrentCluster()?.server, api.url, 'first file decides');
  t.equal(loaded?.kc.getClusters().length, 1, 'same-named entries: the first is kept, as kubectl does');
  if (loaded) t.same(await through(loaded.kc), expected, 'reads the API through it');
});

t.test('KUBECONFIG naming only missing files falls through', async (t) => {
  t.equal(loadKubeConfig({ env: { KUBECONFIG: join(dir, 'missing') }, serviceAccountDir: noSa }), null);
});

t.test('in-cluster: the service account token, CA and namespace', async (t) => {
  const sa = join(dir, 'sa');
  await mkdir(sa, { recursive: true });
  await writeFile(join(sa, 'token'), api.token);
  await writeFile(join(sa, 'ca.crt'), api.caPem);
  await writeFile(join(sa, 'namespace'), 'pullguard\n');
  const port = new URL(api.url).port;
  const loaded = loadKubeConfig({
    env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port },
    serviceAccountDir: sa,
  });
  t.equal(loaded?.source, 'in-cluster service account');
  t.equal(loaded?.kc.getCurrentCluster()?.server, `https://127.0.0.1:${port}`);
  t.equal(loaded?.kc.getContextObject(loaded.kc.getCurrentContext())?.namespace, 'pullguard');
  if (loaded) t.same(await through(loaded.kc), expected, 'reads the API through it');
  // the token file is read through the tokenFile provider, so a rotated token is picked up
  const user = loaded?.kc.getCurrentUser();
  t.equal(user?.authProvider?.name, 'tokenFile');

  const v6 = loadKubeConfig({
    env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
    serviceAccountDir: sa,
  });
  t.equal(v6?.kc.getCurrentCluster()?.server, 'https://[fd00::1]:443');
});

t.test('in-cluster needs both the env and the token file', async (t) => {
  const sa = join(dir, 'sa');
  t.equal(loadKubeConfig({ env: {}, serviceAccountDir: sa }), null, 'no KUBERNETES_SERVICE_HOST');
  t.equal(
    loadKubeConfig({
      env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      serviceAccountDir: noSa,
    }),
    null,
    'no token',
  );
  t.equal(loadKubeConfig({ env: {}, serviceAccountDir: noSa }), null, 'nothing at all');
});
