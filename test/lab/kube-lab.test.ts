// The lab tier's own harness: labs started at the same time (two checkouts, two test files) get
// their own ports and state, and stop() leaves nothing running or on disk.
import { existsSync, readFileSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import t from 'tap';
import { startKubeLab } from '../helpers/kube-lab.ts';

function running(pid: number): boolean {
  try {
    // a zombie waiting for its parent to reap it is gone for our purposes
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

t.test('two labs at once: separate API servers, both real, both stopped completely', async (t) => {
  const [a, b] = await Promise.all([startKubeLab(), startKubeLab()]);
  try {
    t.not(a.url, b.url, 'different ports');
    const na = a.kc().makeApiClient(CoreV1Api);
    const nb = b.kc().makeApiClient(CoreV1Api);
    await na.createNamespace({ body: { metadata: { name: 'only-in-a' } } });
    // the kubeconfig verifies the API server's own certificate
    const names = (await nb.listNamespace()).items.map((n) => n.metadata?.name);
    t.notOk(names.includes('only-in-a'), 'separate etcd data');
    // the same name in b: its own etcd (the API server's own namespaces appear asynchronously after
    // it is ready, so they prove nothing by a deadline)
    await nb.createNamespace({ body: { metadata: { name: 'only-in-a' } } });
    t.pass('b has its own store');
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  for (const lab of [a, b]) {
    t.equal(lab.pids.length, 2, 'etcd and kube-apiserver');
    for (const pid of lab.pids) t.notOk(running(pid), `process ${pid} is gone`);
    t.notOk(existsSync(lab.dir), 'its folder is removed');
  }
});
