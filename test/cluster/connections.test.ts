// One connection to the API server for a command's many requests (src/cluster/connections.ts):
// client-node makes a new dispatcher, so a new TLS connection, for every request; pullguard keeps
// one per kubeconfig. Counted at a TLS proxy in front of the lab's real kube-apiserver.
import t from 'tap';
import { closeConnections, trackConnections } from '../../src/cluster/connections.ts';
import { PodReader } from '../../src/cluster/pods.ts';
import { ClusterReader } from '../../src/cluster/reader.ts';
import { labThroughProxy, startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';

let lab: KubeLab;
t.before(async () => {
  lab = await startKubeLab();
});
t.teardown(() => lab?.stop());

t.test(
  "twenty reads, ours and client-node's, over one or two connections; closed, the next read opens one",
  async (t) => {
    const { proxy, kc } = await labThroughProxy(lab);
    t.teardown(() => proxy.stop());
    trackConnections(kc);
    const reader = new PodReader(kc, 10_000);
    for (let i = 0; i < 10; i++) await reader.events('default', `web-${i}`);
    for (let i = 0; i < 5; i++) await reader.pages('default').next();
    // client-node's generated API (a Secret read), through the same kubeconfig
    const secrets = new ClusterReader(kc, { cacheTtlMs: 0 });
    for (let i = 0; i < 5; i++) await secrets.readPullSecrets('default', [`missing-${i}`]);
    t.equal(proxy.count(), 20, 'twenty requests reached the API server');
    // one, and a second when the next request comes before undici has let the first go (it reuses
    // both from then on); a dispatcher per request opened twenty
    t.ok(proxy.connections() <= 2, `over ${proxy.connections()} connections`);

    const before = proxy.connections();
    closeConnections(kc);
    await reader.events('default', 'web-after');
    t.equal(proxy.connections(), before + 1, 'after closeConnections, a new one');
    closeConnections(kc);
  },
);
