// Every row of test/fixtures/vectors/platforms.json (containerd/platforms test tables). Host-dependent rows
// are resolved for linux/amd64, which is the parser's default host.

import t from 'tap';
import { readVectors } from '../helpers/fixtures.ts';
import {
  any,
  format,
  formatAll,
  fromOCI,
  newMatcher,
  only,
  onlyOS,
  onlyStrict,
  ordered,
  parsePlatform,
  PlatformError,
  type MatchComparer,
  type Platform,
} from '../../src/platform/index.ts';

interface Row {
  id: string;
  kind: string;
  input?: string;
  expected?: unknown;
  formatFunction?: 'Format' | 'FormatAll';
  formatted?: string;
  matcherAccepts?: unknown[];
  platform?: unknown;
  comparer?: string;
  comparers?: string[];
  matches?: string[];
  doesNotMatch?: string[];
  candidates?: string[];
  expectedOrder?: string[];
  host?: unknown;
  candidate?: unknown;
  match?: boolean;
}

const rows = readVectors<Row>('platforms.json');
const byKind = (kind: string): Row[] => rows.filter((r) => r.kind === kind);
const LINUX_AMD64: Platform = { os: 'linux', architecture: 'amd64' };

const comparers: Record<string, (p: Platform) => MatchComparer> = {
  Only: only,
  OnlyStrict: onlyStrict,
  OnlyOS: onlyOS,
  Ordered: (p) => ordered(p),
  Any: (p) => any(p),
};

function comparerFor(name: string | undefined): (p: Platform) => MatchComparer {
  const c = name === undefined ? undefined : comparers[name];
  if (!c) throw new Error(`no comparer ${String(name)}`);
  return c;
}

t.test('vector counts', async (t) => {
  const expected: Record<string, number> = {
    parse: 26,
    parseInvalid: 6,
    formatAll: 10,
    match: 29,
    order: 9,
    windowsMatch: 9,
  };
  for (const [kind, n] of Object.entries(expected)) t.equal(byKind(kind).length, n, `${kind} rows`);
  t.equal(rows.length, 89, 'all rows have a kind we run');
  const pairs = byKind('match').reduce((n, r) => n + (r.matches?.length ?? 0) + (r.doesNotMatch?.length ?? 0), 0);
  t.equal(pairs, 298, 'match pairs');
});

t.test('parse', async (t) => {
  for (const r of byKind('parse')) {
    const expected = fromOCI(r.expected);
    const got = parsePlatform(r.input ?? '', LINUX_AMD64);
    t.strictSame(got, expected, `${r.id}: Parse(${r.input})`);
    // Default host parameter is linux/amd64 too.
    t.strictSame(parsePlatform(r.input ?? ''), expected, `${r.id}: Parse(${r.input}) with the default host`);

    const m = newMatcher(expected);
    t.ok(m.match(expected), `${r.id}: NewMatcher(expected) matches expected`);
    for (const a of r.matcherAccepts ?? []) {
      t.ok(m.match(fromOCI(a)), `${r.id}: NewMatcher(expected) matches ${JSON.stringify(a)}`);
    }

    const fmt = r.formatFunction === 'FormatAll' ? formatAll : format;
    const formatted = fmt(expected);
    t.equal(formatted, r.formatted, `${r.id}: ${r.formatFunction}(expected)`);
    t.equal(fmt(parsePlatform(formatted, LINUX_AMD64)), formatted, `${r.id}: ${formatted} round-trips`);
  }
});

t.test('parseInvalid', async (t) => {
  for (const r of byKind('parseInvalid')) {
    t.throws(
      () => parsePlatform(r.input ?? '', LINUX_AMD64),
      PlatformError,
      `${r.id}: Parse(${JSON.stringify(r.input)}) fails`,
    );
  }
});

t.test('formatAll', async (t) => {
  for (const r of byKind('formatAll')) {
    const p = fromOCI(r.platform);
    const formatted = formatAll(p);
    t.equal(formatted, r.formatted, `${r.id}: FormatAll`);
    // Parsing back gives the version and the features as FormatAll wrote them: sorted, no empties.
    const back = parsePlatform(formatted, LINUX_AMD64);
    const features = [...new Set((p.osFeatures ?? []).filter((f) => f !== ''))].sort();
    t.strictSame(
      { osVersion: back.osVersion, osFeatures: back.osFeatures ?? [] },
      { osVersion: p.osVersion, osFeatures: features },
      `${r.id}: Parse(${formatted}) round-trips os.version and os.features`,
    );
  }
});

t.test('match', async (t) => {
  for (const r of byKind('match')) {
    const mc = comparerFor(r.comparer)(parsePlatform(r.platform as string, LINUX_AMD64));
    for (const c of r.matches ?? []) {
      t.ok(mc.match(parsePlatform(c, LINUX_AMD64)), `${r.id}: ${r.comparer}(${String(r.platform)}) matches ${c}`);
    }
    for (const c of r.doesNotMatch ?? []) {
      t.notOk(
        mc.match(parsePlatform(c, LINUX_AMD64)),
        `${r.id}: ${r.comparer}(${String(r.platform)}) does not match ${c}`,
      );
    }
  }
});

t.test('order', async (t) => {
  for (const r of byKind('order')) {
    const p = parsePlatform(r.platform as string, LINUX_AMD64);
    for (const name of r.comparers ?? []) {
      const mc = comparerFor(name)(p);
      const candidates = (r.candidates ?? []).map((c) => parsePlatform(c, LINUX_AMD64));
      // Array.prototype.sort is stable; where Less leaves a tie, upstream's order is the input order.
      const sorted = [...candidates].sort((a, b) => (mc.less(a, b) ? -1 : mc.less(b, a) ? 1 : 0));
      t.strictSame(sorted.map(formatAll), r.expectedOrder, `${r.id}: sort by ${name}(${String(r.platform)}).Less`);

      // The expected order must itself be consistent with Less: nothing later is strictly better.
      const exp = (r.expectedOrder ?? []).map((c) => parsePlatform(c, LINUX_AMD64));
      const inversions: string[] = [];
      exp.forEach((a, i) =>
        exp.slice(i + 1).forEach((b) => {
          if (mc.less(b, a)) inversions.push(`${formatAll(b)} < ${formatAll(a)}`);
        }),
      );
      t.strictSame(inversions, [], `${r.id}: expected order agrees with ${name}.Less`);
    }
  }
});

t.test('windowsMatch', async (t) => {
  for (const r of byKind('windowsMatch')) {
    const host = fromOCI(r.host);
    const candidate = fromOCI(r.candidate);
    t.equal(
      newMatcher(host).match(candidate),
      r.match,
      `${r.id}: NewMatcher(${formatAll(host)}).Match(${formatAll(candidate)})`,
    );
  }
});
