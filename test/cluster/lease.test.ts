// LeaseLock against a real kube-apiserver: the Lease's reads and writes the watch's leader election
// makes. A missing Lease and a lost race are answers (undefined, false), not errors, and the times
// go out as MicroTimes the API server takes.
import t from 'tap';
import { LeaseLock, type LeaderRecord } from '../../src/cluster/lease.ts';
import { startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { FakeKubelet } from '../helpers/kubelet.ts';

let lab: KubeLab;
t.before(async () => {
  lab = await startKubeLab();
  await new FakeKubelet(lab.kc()).namespace('pullguard');
});
t.teardown(() => lab?.stop());

const record = (holder: string, transitions = 0): LeaderRecord => ({
  holderIdentity: holder,
  leaseDurationSeconds: 3,
  acquireTime: new Date(),
  renewTime: new Date(),
  leaseTransitions: transitions,
});

t.test('a missing Lease reads as none; of two replicas creating it, one wins', async (t) => {
  const where = { namespace: 'pullguard', name: 'create-race' };
  const a = new LeaseLock(lab.kc(), where);
  const b = new LeaseLock(lab.kc(), where);
  t.equal(await a.get(), undefined, 'no Lease yet');
  const won = await Promise.all([a.create(record('a')), b.create(record('b'))]);
  t.same(won.sort(), [false, true], 'one create, one 409');
  const held = await a.get();
  t.ok(held && ['a', 'b'].includes(held.holderIdentity));
  t.equal(held?.leaseDurationSeconds, 3);
});

t.test('of two replicas updating what they read, the second is refused', async (t) => {
  const where = { namespace: 'pullguard', name: 'update-race' };
  const a = new LeaseLock(lab.kc(), where);
  const b = new LeaseLock(lab.kc(), where);
  t.equal(await a.create(record('a')), true);
  await Promise.all([a.get(), b.get()]);
  t.equal(await a.update(record('a')), true, 'the renewal');
  t.equal(await b.update(record('b', 1)), false, 'the takeover from a stale read: 409');
  const now = await b.get();
  t.equal(now?.holderIdentity, 'a');
  t.equal(await b.update({ ...now!, holderIdentity: '' }), true, 'after a fresh read it goes through');
  t.equal((await a.get())?.holderIdentity, '', 'handed over');
});

t.test('creating a Lease in a namespace that does not exist is an error, not a lost race', async (t) => {
  const lock = new LeaseLock(lab.kc(), { namespace: 'no-such-namespace', name: 'x' });
  await t.rejects(lock.create(record('a')));
});
