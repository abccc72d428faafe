// reference-extra.json: WithTag/WithDigest composition and FamiliarMatch globbing.

import t from 'tap';
import { readVectors } from '../helpers/fixtures.ts';
import {
  familiarMatch,
  parseAnyReference,
  parseNormalizedNamed,
  referenceString,
  withDigest,
  withName,
  withTag,
} from '../../src/reference/index.ts';
import { attempt, isError } from './rows.ts';

interface ExtraRow {
  id: string;
  kind: 'compose' | 'composeInvalid' | 'familiarMatch' | 'familiarMatchError';
  source: { test: string; function: string };
  name?: string;
  tag?: string;
  digest?: string;
  expectedString?: string;
  reference?: string;
  pattern?: string;
  match?: boolean;
}

const rows = readVectors<ExtraRow>('reference-extra.json');
const ofKind = (kind: ExtraRow['kind']) => rows.filter((r) => r.kind === kind);

t.test('compose (WithTag / WithDigest)', async (t) => {
  const list = ofKind('compose');
  t.equal(list.length, 9, 'all compose rows present');
  for (const row of list) {
    let ref = withName(row.name ?? '');
    // TestWithTag adds the digest first, TestWithDigest the tag first; each builder keeps the other part
    if (row.source.test === 'TestWithTag') {
      if (row.digest !== undefined) ref = withDigest(ref, row.digest);
      ref = withTag(ref, row.tag ?? '');
    } else {
      if (row.tag !== undefined) ref = withTag(ref, row.tag);
      ref = withDigest(ref, row.digest ?? '');
    }
    t.equal(referenceString(ref), row.expectedString, `${row.id}: ${row.expectedString}`);
  }
});

t.test('composeInvalid', async (t) => {
  const list = ofKind('composeInvalid');
  t.equal(list.length, 2, 'all composeInvalid rows present');
  for (const row of list) {
    const base = parseNormalizedNamed(row.name ?? '');
    const got = attempt(() => (row.tag !== undefined ? withTag(base, row.tag) : withDigest(base, row.digest ?? '')));
    t.match(
      got,
      { error: true, kind: row.tag !== undefined ? 'ErrTagInvalidFormat' : 'ErrDigestInvalidFormat' },
      `${row.id}: ${row.tag !== undefined ? `tag ${row.tag}` : `digest ${row.digest}`} is rejected`,
    );
  }
});

t.test('FamiliarMatch', async (t) => {
  const list = ofKind('familiarMatch');
  t.equal(list.length, 9, 'all familiarMatch rows present');
  for (const row of list) {
    const got = familiarMatch(row.pattern ?? '', parseAnyReference(row.reference ?? ''));
    t.equal(got, row.match, `${row.id}: ${row.pattern} ${row.match ? 'matches' : 'does not match'} ${row.reference}`);
  }
});

t.test('FamiliarMatch bad pattern', async (t) => {
  const list = ofKind('familiarMatchError');
  t.equal(list.length, 1, 'all familiarMatchError rows present');
  for (const row of list) {
    const got = attempt(() => familiarMatch(row.pattern ?? '', parseAnyReference(row.reference ?? '')));
    t.ok(isError(got) && got.kind === 'ErrBadPattern', `${row.id}: ${row.pattern} is a bad pattern`);
  }
});

t.test('path.Match details beyond the vectors', async (t) => {
  const hub = (s: string) => parseAnyReference(s);
  t.ok(familiarMatch('redis', hub('docker.io/library/redis:7')), 'name matches when the string does not');
  t.ok(familiarMatch('redis:*', hub('redis:7')));
  t.notOk(familiarMatch('*', hub('foo/bar')), '* does not cross /');
  t.ok(familiarMatch('foo/?ar', hub('foo/bar')));
  t.notOk(familiarMatch('foo?bar', hub('foo/bar')), '? does not match /');
  t.ok(familiarMatch('foo[/]bar', hub('foo/bar')), 'a class may match /');
  t.ok(familiarMatch('[^x]edis', hub('redis')));
  t.ok(familiarMatch('r\\edis', hub('redis')), 'escaped literal');
  t.ok(familiarMatch('redi[\\s]', hub('redis')), 'escaped character in a class');
  t.ok(familiarMatch('redi[a-z]', hub('redis')), 'range in a class');
  t.ok(familiarMatch('*dis', hub('redis')));
  t.ok(familiarMatch('r**s', hub('redis')), 'stars collapse');
  t.ok(familiarMatch('sha256:*', hub(`sha256:${'a'.repeat(64)}`)), 'digest-only references match on the digest');
  // Go rejects a malformed pattern even where the match has already failed
  for (const bad of ['x[', 'redis\\', '[]', '[a-]', '[^]', 'nomatch*[z']) {
    t.match(
      attempt(() => familiarMatch(bad, hub('redis'))),
      { kind: 'ErrBadPattern' },
      `${JSON.stringify(bad)} is a bad pattern`,
    );
  }
});
