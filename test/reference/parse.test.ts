// reference.json rows for the non-normalizing functions: Parse, Field.UnmarshalText (Parse) and WithName.

import t from 'tap';
import { readVectors } from '../helpers/fixtures.ts';
import { type Reference, parse, referenceString, withName } from '../../src/reference/index.ts';
import { type Asserts, type ReferenceRow, actualError, attempt, expectedError, isError, pick, show } from './rows.ts';

const rows = readVectors<ReferenceRow>('reference.json');
const byFunction = (fn: string) => rows.filter((r) => r.source.function === fn);

const FIELDS: Array<keyof ReferenceRow> = ['string', 'name', 'domain', 'path', 'tag', 'digest'];

function project(row: ReferenceRow, ref: Reference): Record<string, unknown> {
  const all: Record<string, unknown> = { string: referenceString(ref), ...ref };
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) if (row[f] !== undefined) out[f] = all[f];
  return out;
}

function checkRows(t: Asserts, list: ReferenceRow[], fn: (s: string) => Reference): void {
  for (const row of list) {
    const got = attempt(() => fn(row.input));
    if (row.id === 'TestReferenceParse/14') {
      // Upstream's test binary does not link crypto/sha512, hence ErrDigestUnsupported there.
      // The kubelet links it (pkg/util/parsers imports crypto/sha512), so we accept sha512,
      // as distribution/reference v0.6.0's own test did (vectors README, caveats).
      t.same(
        got,
        { domain: '', path: 'validname', name: 'validname', tag: null, digest: row.input.slice('validname@'.length) },
        `${row.id}: sha512 digest accepted (kubelet links crypto/sha512), not ${row.errorKind}`,
      );
      continue;
    }
    if (row.valid) {
      t.same(isError(got) ? got : project(row, got), pick(row, FIELDS), `${row.id}: ${show(row.input)}`);
    } else {
      t.same(actualError(row, got), expectedError(row), `${row.id}: ${show(row.input)} fails`);
    }
  }
}

t.test('Parse', async (t) => {
  const list = byFunction('Parse');
  t.equal(list.length, 48, 'all Parse rows present');
  checkRows(t, list, parse);
});

t.test('Field.UnmarshalText (Parse)', async (t) => {
  const list = byFunction('Field.UnmarshalText (Parse)');
  t.equal(list.length, 4, 'all UnmarshalText rows present');
  checkRows(t, list, parse);
  // the round trip: marshalling the parsed field gives back the input
  for (const row of list.filter((r) => r.valid)) {
    t.equal(referenceString(parse(row.input)), row.input, `${row.id}: round trip`);
  }
});

t.test('WithName', async (t) => {
  const list = byFunction('WithName');
  t.equal(list.length, 13, 'all WithName rows present');
  checkRows(t, list, withName);
});
