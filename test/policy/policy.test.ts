import t from 'tap';
import { actionFor, isMode } from '../../src/policy/policy.ts';

t.test('enforce denies fail, warns risk, ignores ok', async (t) => {
  t.equal(actionFor({ verdict: 'fail', reason: 'tag-not-found' }, 'enforce', {}), 'deny');
  t.equal(actionFor({ verdict: 'risk', reason: 'timeout' }, 'enforce', {}), 'warn');
  t.equal(actionFor({ verdict: 'ok', reason: 'available' }, 'enforce', {}), 'ignore');
});

t.test('warn mode never denies; audit only records', async (t) => {
  t.equal(actionFor({ verdict: 'fail', reason: 'tag-not-found' }, 'warn', {}), 'warn');
  t.equal(actionFor({ verdict: 'fail', reason: 'tag-not-found' }, 'audit', {}), 'record');
  t.equal(actionFor({ verdict: 'risk', reason: 'timeout' }, 'audit', {}), 'record');
  t.equal(actionFor({ verdict: 'ok', reason: 'available' }, 'audit', {}), 'ignore');
});

t.test('per-reason actions override the defaults', async (t) => {
  const actions = { 'platform-not-found': 'warn', 'rate-limited': 'ignore', 'registry-error': 'deny' } as const;
  t.equal(actionFor({ verdict: 'fail', reason: 'platform-not-found' }, 'enforce', actions), 'warn');
  t.equal(actionFor({ verdict: 'risk', reason: 'rate-limited' }, 'enforce', actions), 'ignore');
  t.equal(actionFor({ verdict: 'risk', reason: 'registry-error' }, 'enforce', actions), 'deny', 'an operator may choose to deny a risk');
  t.equal(actionFor({ verdict: 'risk', reason: 'registry-error' }, 'warn', actions), 'warn', 'warn mode still never denies');
});

t.test('modes', async (t) => {
  t.ok(isMode('enforce') && isMode('warn') && isMode('audit'));
  t.notOk(isMode('off'));
  t.notOk(isMode(undefined));
});
