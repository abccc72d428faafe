// PodReader's node reads: `pullguard diagnose -A` and a watch round diagnose many pods on few nodes;
// each node is read once, not once per pod.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { nodePlatform } from '../../src/cluster/nodes.ts';
import { PodReader } from '../../src/cluster/pods.ts';
import { KubeApiServer, makeNode } from '../helpers/kube-api.ts';

/** A fixture API server where the user may get nodes, as `diagnose` runs as a person (the webhook's own access only lists them). */
async function nodeGetter(t: { teardown(fn: () => unknown): void }) {
  const api = await KubeApiServer.start({
    rbac: [{ apiGroup: '', resource: 'nodes', verbs: ['get'], namespaced: false }],
  });
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-pods-'));
  t.teardown(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const kubeconfig = async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(await api.writeKubeconfig(dir));
    return kc;
  };
  return { api, kubeconfig };
}

t.test('a node is read once for the pods on it; a missing one is undefined', async (t) => {
  const { api, kubeconfig } = await nodeGetter(t);
  api.putNode(makeNode({ name: 'n1', architecture: 'arm64' }));
  const kc = await kubeconfig();
  const reader = new PodReader(kc, 10_000);
  const nodes = await Promise.all([reader.node('n1'), reader.node('n1'), reader.node('n1')]);
  t.equal((await reader.node('n1'))?.architecture, 'arm64');
  t.ok(
    nodes.every((n) => n?.name === 'n1'),
    'every pod gets the node',
  );
  t.equal(api.countRequests({ resource: 'nodes', name: 'n1' }), 1, 'one request for four asks');
  t.equal(await reader.node('gone'), undefined);
});

t.test('a node without nodeInfo: its platform from the labels, as the node watch reads it', async (t) => {
  const { api, kubeconfig } = await nodeGetter(t);
  const bare = makeNode({ name: 'new', architecture: 'arm64' });
  delete (bare.status as Record<string, unknown>).nodeInfo;
  api.putNode(bare);
  const kc = await kubeconfig();
  const node = await new PodReader(kc, 10_000).node('new');
  t.same(node && { os: node.os, architecture: node.architecture }, { os: 'linux', architecture: 'arm64' });
  t.same(node && nodePlatform(node), { os: 'linux', architecture: 'arm64' }, 'the platform a diagnosis checks');
});
