// reference-grammar.json: the distribution/reference regular expressions on their own.

import t from 'tap';
import { readVectors } from '../helpers/fixtures.ts';
import {
  anchoredDomainRegexp,
  anchoredIdentifierRegexp,
  anchoredNameRegexp,
  referenceRegexp,
} from '../../src/reference/grammar.ts';
import { show } from './rows.ts';

interface GrammarRow {
  id: string;
  regexp: string;
  input: string;
  match: boolean;
  submatches?: Record<string, string>;
}

const rows = readVectors<GrammarRow>('reference-grammar.json');

// which expression a row names, and the names of its capture groups
const EXPRESSIONS: Array<{ prefix: string; re: RegExp; groups: string[]; count: number }> = [
  { prefix: 'domainAndPort', re: anchoredDomainRegexp, groups: [], count: 30 },
  { prefix: 'anchoredNameRegexp', re: anchoredNameRegexp, groups: ['domain', 'path'], count: 63 },
  { prefix: 'referenceRegexp', re: referenceRegexp, groups: ['name', 'tag', 'digest'], count: 12 },
  { prefix: 'anchoredIdentifierRegexp', re: anchoredIdentifierRegexp, groups: [], count: 5 },
];

for (const { prefix, re, groups, count } of EXPRESSIONS) {
  t.test(prefix, async (t) => {
    const list = rows.filter((r) => r.regexp.startsWith(prefix));
    t.equal(list.length, count, `all ${prefix} rows present`);
    for (const row of list) {
      const m = re.exec(row.input);
      if (row.submatches === undefined) {
        t.equal(m !== null, row.match, `${row.id}: ${show(row.input)} ${row.match ? 'matches' : 'does not match'}`);
        continue;
      }
      // a group that did not take part is "" in Go and undefined here
      const got = m === null ? null : Object.fromEntries(groups.map((g, i) => [g, m[i + 1] ?? '']));
      t.same(got, row.match ? row.submatches : null, `${row.id}: ${show(row.input)} submatches`);
    }
  });
}

t.test('every grammar row belongs to an expression', async (t) => {
  t.equal(
    rows.length,
    EXPRESSIONS.reduce((n, e) => n + e.count, 0),
  );
});
