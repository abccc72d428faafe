import t from 'tap';
import { actionFor, isMode } from '../../src/policy/policy.ts';
import { validateConfig } from '../../src/config/schema.ts';

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
  const actions = validateConfig({
    actions: { 'platform-not-found': 'warn', 'rate-limited': 'ignore', 'tag-not-found': 'ignore' },
  }).actions;
  t.equal(actionFor({ verdict: 'fail', reason: 'platform-not-found' }, 'enforce', actions), 'warn');
  t.equal(actionFor({ verdict: 'risk', reason: 'rate-limited' }, 'enforce', actions), 'ignore');
  t.equal(actionFor({ verdict: 'fail', reason: 'tag-not-found' }, 'enforce', actions), 'ignore');
  t.equal(
    actionFor({ verdict: 'fail', reason: 'access-denied' }, 'enforce', actions),
    'deny',
    'the others keep their default',
  );
  t.equal(
    actionFor({ verdict: 'fail', reason: 'platform-not-found' }, 'warn', { 'platform-not-found': 'deny' }),
    'warn',
    'warn mode never denies',
  );
});

t.test("a risk can never be configured to deny: it is pullguard's own uncertainty", async (t) => {
  for (const reason of ['timeout', 'registry-error', 'registry-unreachable', 'rate-limited', 'unverifiable']) {
    t.throws(
      () => validateConfig({ actions: { [reason]: 'deny' } }),
      { message: new RegExp(`actions\\.${reason}: "${reason}" is a risk`) },
      reason,
    );
  }
  t.doesNotThrow(() => validateConfig({ actions: { 'access-denied': 'deny', timeout: 'ignore' } }));
});

t.test('modes', async (t) => {
  t.ok(isMode('enforce') && isMode('warn') && isMode('audit'));
  t.notOk(isMode('off'));
  t.notOk(isMode(undefined));
});
