// EventApi against a real kube-apiserver: the Event writes the watch makes. An Event that exists
// already and a replace that lost a race are answers (false), not errors.
import t from 'tap';
import { EventApi, type CoreV1Event } from '../../src/cluster/events.ts';
import { startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { FakeKubelet } from '../helpers/kubelet.ts';

let lab: KubeLab;
t.before(async () => {
  lab = await startKubeLab();
  await new FakeKubelet(lab.kc()).namespace('shop');
});
t.teardown(() => lab?.stop());

const event = (name: string, message: string): CoreV1Event => ({
  metadata: { name, namespace: 'shop' },
  involvedObject: { apiVersion: 'v1', kind: 'Pod', name: 'web', namespace: 'shop' },
  reason: 'ImagePullDiagnosed',
  message,
  type: 'Warning',
  count: 1,
  source: { component: 'pullguard' },
});

t.test('a second create of one name is refused; a replace from a stale read too', async (t) => {
  const api = new EventApi(lab.kc());
  t.equal(await api.create(event('web.pullguard.1', 'first')), true);
  t.equal(await api.create(event('web.pullguard.1', 'again')), false, 'it exists: 409');
  const [a, b] = await Promise.all([api.read('shop', 'web.pullguard.1'), api.read('shop', 'web.pullguard.1')]);
  t.equal(a.message, 'first');
  a.count = 2;
  t.equal(await api.replace(a), true);
  b.count = 2;
  t.equal(await api.replace(b), false, 'another writer came first: 409');
  t.equal((await api.read('shop', 'web.pullguard.1')).count, 2);
});

t.test('an Event in a namespace that does not exist is an error, not an existing Event', async (t) => {
  const api = new EventApi(lab.kc());
  await t.rejects(api.create({ ...event('x', 'y'), metadata: { name: 'x', namespace: 'nowhere' } }));
});
