// What the upstream tables in test/fixtures/vectors/placement.json do not pin down: the DaemonSet
// controller's tolerations, a pod bound by spec.nodeName, spec.os, Gt/Lt edge cases and the key.

import t from 'tap';
import { fits, type PlacementNode, placementOf, type Taint } from '../../src/placement/placement.ts';

const node = (over: Partial<PlacementNode> = {}): PlacementNode => ({
  name: 'n1',
  os: 'linux',
  labels: {},
  taints: [],
  ...over,
});
const tainted = (...taints: Taint[]): PlacementNode => node({ taints });
const affinity = (...expressions: Record<string, unknown>[]) => ({
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: expressions }] },
  },
});

t.test('DaemonSet pods tolerate the node-condition taints the controller adds tolerations for', async (t) => {
  const spec = { containers: [{ name: 'c', image: 'x' }] };
  const ds = placementOf(spec, 'DaemonSet');
  const pod = placementOf(spec, 'Pod');
  for (const taint of [
    { key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/disk-pressure', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/memory-pressure', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/pid-pressure', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' },
  ]) {
    t.ok(fits(ds, tainted(taint)), `DaemonSet tolerates ${taint.key}:${taint.effect}`);
    t.notOk(fits(pod, tainted(taint)), `a plain pod does not tolerate ${taint.key}:${taint.effect}`);
  }
  // Only NoExecute is tolerated for not-ready: a NoSchedule taint of that key is not.
  t.notOk(fits(ds, tainted({ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' })), 'not-ready:NoSchedule');
  t.notOk(fits(ds, tainted({ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' })), 'other taints stay');

  const network = { key: 'node.kubernetes.io/network-unavailable', effect: 'NoSchedule' };
  t.notOk(fits(ds, tainted(network)), 'network-unavailable without hostNetwork');
  t.ok(fits(placementOf({ ...spec, hostNetwork: true }, 'DaemonSet'), tainted(network)), 'with hostNetwork');
  t.notOk(fits(placementOf({ ...spec, hostNetwork: true }, 'Deployment'), tainted(network)), 'not for a Deployment');
});

t.test('spec.nodeName skips the scheduler: NoSchedule taints do not apply, NoExecute ones do', async (t) => {
  const bound = placementOf({ nodeName: 'n1' });
  t.ok(fits(bound, tainted({ key: 'dedicated', value: 'x', effect: 'NoSchedule' })), 'NoSchedule ignored');
  t.notOk(fits(bound, tainted({ key: 'dedicated', value: 'x', effect: 'NoExecute' })), 'NoExecute refused');
  const tolerant = placementOf({ nodeName: 'n1', tolerations: [{ key: 'dedicated', operator: 'Exists' }] });
  t.ok(fits(tolerant, tainted({ key: 'dedicated', value: 'x', effect: 'NoExecute' })), 'NoExecute tolerated');
  t.notOk(fits(bound, node({ name: 'n2' })), 'only the named node');
  t.ok(fits(bound, node()), 'the named node');
  // The kubelet still admits only pods whose nodeSelector and affinity match (GeneralPredicates).
  t.notOk(fits(placementOf({ nodeName: 'n1', nodeSelector: { disk: 'ssd' } }), node()), 'nodeSelector still applies');
  t.notOk(
    fits(placementOf({ nodeName: 'n1', affinity: affinity({ key: 'disk', operator: 'Exists' }) }), node()),
    'affinity too',
  );
  t.ok(fits(placementOf({ nodeName: '' }), node({ name: 'n2' })), "nodeName '' binds nothing");
});

t.test('PreferNoSchedule never excludes a node', async (t) => {
  t.ok(fits(placementOf({}), tainted({ key: 'a', effect: 'PreferNoSchedule' })));
  t.ok(fits(placementOf({ nodeName: 'n1' }), tainted({ key: 'a', effect: 'PreferNoSchedule' })));
});

t.test('spec.os', async (t) => {
  const windows = placementOf({ os: { name: 'windows' } });
  t.notOk(fits(windows, node({ os: 'linux' })), 'windows pod, linux node');
  t.ok(fits(windows, node({ os: 'windows' })), 'windows pod, windows node');
  t.ok(fits(windows, node({ os: '' })), 'a node whose os is unknown is kept');
  t.ok(fits(placementOf({}), node({ os: 'windows' })), 'no spec.os: any node');
  t.ok(fits(placementOf({ os: { name: '' } }), node({ os: 'windows' })), "os.name '' is no constraint");
});

t.test('Gt and Lt: integers only, as int64', async (t) => {
  const gt = (label: string, value: string) =>
    fits(
      placementOf({ affinity: affinity({ key: 'v', operator: 'Gt', values: [value] }) }),
      node({ labels: { v: label } }),
    );
  const lt = (label: string, value: string) =>
    fits(
      placementOf({ affinity: affinity({ key: 'v', operator: 'Lt', values: [value] }) }),
      node({ labels: { v: label } }),
    );
  t.ok(gt('3', '2'), '3 > 2');
  t.notOk(gt('2', '2'), '2 > 2');
  t.ok(lt('0010', '11'), 'leading zeros read as decimal (ParseInt)');
  t.notOk(gt('1.5', '1'), 'a label that is not an integer matches neither Gt…');
  t.notOk(lt('1.5', '2'), '…nor Lt');
  t.notOk(gt('abc', '1'), 'a word');
  t.notOk(gt('', '1'), 'an empty label');
  t.notOk(lt('1', '2.5'), 'a value that is not an integer: the term does not parse');
  t.notOk(gt('5', 'five'), 'a word as value');
  t.notOk(gt('9223372036854775808', '1'), 'a label beyond int64 does not parse');
  t.notOk(lt('1', '9223372036854775808'), 'a value beyond int64: the term does not parse');
  t.ok(gt('9007199254740993', '9007199254740992'), 'compared exactly beyond 2^53');
  t.ok(lt('9223372036854775806', '9223372036854775807'), 'up to the int64 maximum');
  t.notOk(
    fits(
      placementOf({ affinity: affinity({ key: 'v', operator: 'Gt', values: ['1', '2'] }) }),
      node({ labels: { v: '3' } }),
    ),
    'Gt needs exactly one value',
  );
  t.notOk(
    fits(placementOf({ affinity: affinity({ key: 'v', operator: 'Gt' }) }), node({ labels: { v: '3' } })),
    'or any',
  );
  t.notOk(fits(placementOf({ affinity: affinity({ key: 'v', operator: 'Lt', values: ['5'] }) }), node()), 'no label');

  const tol = (operator: string, value: string, taintValue: string) =>
    fits(
      placementOf({ tolerations: [{ key: 'sla', operator, value, effect: 'NoSchedule' }] }),
      tainted({ key: 'sla', value: taintValue, effect: 'NoSchedule' }),
    );
  t.ok(tol('Gt', '10', '11'), 'toleration Gt');
  t.notOk(tol('Gt', '10', '10.5'), 'toleration Gt, taint value not an integer');
  t.notOk(tol('Lt', 'ten', '1'), 'toleration Lt, toleration value not an integer');
  t.notOk(tol('Gte', '1', '2'), 'an unknown operator tolerates nothing');
});

t.test('a term that does not parse matches nothing, and the other terms still count', async (t) => {
  const terms = (...nodeSelectorTerms: unknown[]) => ({
    affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms } } },
  });
  const labelled = node({ labels: { zone: 'a' } });
  const bad = { matchExpressions: [{ key: 'bad key', operator: 'Exists' }] };
  const good = { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] };
  t.notOk(fits(placementOf(terms(bad)), labelled), 'an invalid key');
  t.ok(fits(placementOf(terms(bad, good)), labelled), 'a later valid term');
  t.notOk(
    fits(placementOf(terms({ matchExpressions: [{ key: 'zone', operator: 'Exists', values: ['a'] }] })), labelled),
    'Exists with values',
  );
  t.notOk(
    fits(placementOf(terms({ matchExpressions: [{ key: 'zone', operator: 'In', values: [] }] })), labelled),
    'In without values',
  );
  t.notOk(
    fits(placementOf(terms({ matchExpressions: [{ key: 'zone', operator: 'Equals', values: ['a'] }] })), labelled),
    'an unknown operator',
  );
  t.ok(
    fits(placementOf(terms({ matchExpressions: [{ key: 'example.com/zone', operator: 'DoesNotExist' }] })), labelled),
    'a prefixed key',
  );
  t.notOk(
    fits(placementOf(terms({ matchExpressions: [{ key: 'Example.com/zone', operator: 'DoesNotExist' }] })), labelled),
    'a prefix must be a lower-case DNS subdomain',
  );
  t.notOk(
    fits(placementOf(terms({ matchFields: [{ key: 'metadata.name', operator: 'Exists' }] })), labelled),
    'matchFields takes only In and NotIn',
  );
  t.ok(
    fits(placementOf(terms({ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['n2'] }] })), labelled),
    'NotIn',
  );
  t.ok(
    fits(placementOf({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: null } } }), node()),
    'a null required affinity is none',
  );
});

t.test("key: '' for a pod that may land anywhere, equal for placements that land alike", async (t) => {
  t.equal(placementOf({}).key, '', 'empty spec');
  t.equal(
    placementOf({ containers: [{ name: 'c', image: 'x' }], nodeSelector: {}, tolerations: [] }).key,
    '',
    'empty fields',
  );
  t.equal(placementOf({ affinity: { nodeAffinity: {} } }).key, '', 'affinity without required terms');
  t.equal(placementOf({ os: { name: '' } }).key, '', "os.name ''");
  t.not(placementOf({}, 'DaemonSet').key, '', 'a DaemonSet pod has the controller tolerations');

  const a = { nodeSelector: { disk: 'ssd' }, tolerations: [{ key: 'k', operator: 'Exists' }], os: { name: 'linux' } };
  const b = { containers: [{ name: 'other', image: 'y' }], ...structuredClone(a) };
  t.equal(placementOf(a).key, placementOf(b).key, 'containers do not count');
  t.not(placementOf(a).key, '', 'not plain');
  t.not(placementOf(a).key, placementOf({ ...a, nodeSelector: { disk: 'hdd' } }).key, 'a different selector');
  t.not(placementOf(a).key, placementOf(a, 'DaemonSet').key, 'DaemonSet tolerations count');
  const bad = (key: string) => ({ affinity: affinity({ key, operator: 'Exists' }) });
  t.equal(placementOf(bad('bad key')).key, placementOf(bad('worse key')).key, 'terms that match nothing land alike');
  t.not(placementOf(bad('bad key')).key, '', 'and are not plain');
});
