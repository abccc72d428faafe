// Every row of test/fixtures/vectors/placement.json (Kubernetes test tables for node affinity,
// nodeSelector and taints/tolerations) through placementOf + fits. See the README there for
// the sources and the upstream rows left out.

import t from 'tap';
import { readVectors } from '../helpers/fixtures.ts';
import { fits, placementOf, type Taint } from '../../src/placement/placement.ts';

interface Row {
  id: string;
  source: { repo: string; commit: string; file: string; test: string; function: string; case: string };
  pod: Record<string, unknown>;
  node: { name: string; labels: Record<string, string>; taints: Taint[] };
  fits: boolean;
}

const rows = readVectors<Row>('placement.json');

t.test('vector counts', async (t) => {
  const expected: Record<string, number> = {
    TestNodeAffinity: 28,
    TestNodeSelectorMatch: 3,
    TestPodMatchesNodeSelectorAndAffinityTerms: 27,
    TestMatchNodeSelectorTerms: 9,
    TestTaintTolerationFilter: 14,
    TestTaintTolerationFilterWithFeatureGate: 2,
    TestFindMatchingUntoleratedTaint: 10,
    TestTolerationToleratesTaint: 14,
  };
  for (const [test, n] of Object.entries(expected)) {
    t.equal(rows.filter((r) => r.source.test === test).length, n, `${test} rows`);
  }
  t.equal(rows.length, 107, 'every row comes from a test counted above');
  t.equal(new Set(rows.map((r) => r.id)).size, rows.length, 'ids are unique');
  for (const r of rows)
    t.ok(r.source.repo && r.source.commit && r.source.file && r.source.case, `${r.id} names its source`);
});

t.test('fits', async (t) => {
  for (const r of rows) {
    const node = { name: r.node.name, os: '', labels: r.node.labels, taints: r.node.taints };
    t.equal(fits(placementOf(r.pod), node), r.fits, `${r.id} (${r.source.case}): fits ${r.fits}`);
  }
});
