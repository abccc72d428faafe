// reference.json rows for the normalizing functions: ParseNamed, ParseNormalizedNamed,
// ParseAnyReference and ParseDockerRef.

import t from 'tap';
import { readVectors } from '../helpers/fixtures.ts';
import {
  type DigestReference,
  type Reference,
  familiarName,
  familiarString,
  isNamed,
  parse,
  parseAnyReference,
  parseDockerRef,
  parseNamed,
  parseNormalizedNamed,
  referenceString,
} from '../../src/reference/index.ts';
import { type Asserts, type ReferenceRow, actualError, attempt, expectedError, isError, pick, show } from './rows.ts';

const rows = readVectors<ReferenceRow>('reference.json');
const byFunction = (fn: string) => rows.filter((r) => r.source.function === fn);

const FIELDS: Array<keyof ReferenceRow> = [
  'resultKind',
  'string',
  'normalized',
  'familiar',
  'familiarString',
  'dockerRef',
  'name',
  'domain',
  'path',
  'tag',
  'digest',
];

/** What the implementation says for every field a row may state. */
function describe(ref: Reference | DigestReference, input: string, fn: string): Record<string, unknown> {
  const out: Record<string, unknown> = {
    resultKind: isNamed(ref) ? 'named' : 'digestOnly',
    string: referenceString(ref),
    normalized: referenceString(ref),
    familiarString: familiarString(ref),
    digest: ref.digest,
  };
  if (isNamed(ref)) {
    Object.assign(out, {
      familiar: familiarName(ref),
      name: ref.name,
      domain: ref.domain,
      path: ref.path,
      tag: ref.tag,
    });
    if (fn === 'ParseDockerRef') out.dockerRef = referenceString(parseDockerRef(input));
  }
  return out;
}

function checkRows(t: Asserts, list: ReferenceRow[], fn: (s: string) => Reference | DigestReference): void {
  for (const row of list) {
    const got = attempt(() => fn(row.input));
    if (!row.valid) {
      t.same(actualError(row, got), expectedError(row), `${row.id}: ${show(row.input)} fails`);
      continue;
    }
    if (isError(got)) {
      t.same(got, pick(row, FIELDS), `${row.id}: ${show(row.input)}`);
      continue;
    }
    const all = describe(got, row.input, row.source.function);
    const actual: Record<string, unknown> = {};
    for (const f of FIELDS) if (row[f] !== undefined) actual[f] = all[f];
    t.same(actual, pick(row, FIELDS), `${row.id}: ${show(row.input)}`);
  }
}

t.test('ParseNamed', async (t) => {
  const list = byFunction('ParseNamed');
  t.equal(list.length, 8, 'all ParseNamed rows present');
  checkRows(t, list, parseNamed);
});

t.test('ParseNormalizedNamed', async (t) => {
  const list = byFunction('ParseNormalizedNamed');
  t.equal(list.length, 107, 'all ParseNormalizedNamed rows present');
  checkRows(t, list, parseNormalizedNamed);
});

t.test('ParseAnyReference', async (t) => {
  const list = byFunction('ParseAnyReference');
  t.equal(list.length, 14, 'all ParseAnyReference rows present');
  checkRows(t, list, parseAnyReference);
  // upstream also checks that a named result equals Parse of its normalized string
  for (const row of list.filter((r) => r.resultKind === 'named' && r.normalized !== undefined)) {
    t.same(parseAnyReference(row.input), parse(row.normalized as string), `${row.id}: equals Parse(normalized)`);
  }
});

t.test('ParseDockerRef', async (t) => {
  const list = byFunction('ParseDockerRef');
  t.equal(list.length, 11, 'all ParseDockerRef rows present');
  checkRows(t, list, parseDockerRef);
});

t.test('normalization details beyond the vectors', async (t) => {
  // docs/protocol.md, Image references: a single component is a Docker Hub image, even "localhost:5000"
  t.equal(referenceString(parseNormalizedNamed('localhost:5000')), 'docker.io/library/localhost:5000');
  // registry-1.docker.io is not rewritten and gets no library/ prefix
  t.equal(parseNormalizedNamed('registry-1.docker.io/nginx').path, 'nginx');
  // an uppercase first component is a host, not a namespace
  t.equal(parseNormalizedNamed('MyReg/foo').domain, 'MyReg');
  // sha384 is linked in by the kubelet too
  const sha384 = `sha384:${'a'.repeat(96)}`;
  t.equal(parseNormalizedNamed(`foo@${sha384}`).digest, sha384);
  t.same(parseAnyReference(sha384), { digest: sha384 });
  // go-digest rules behind the grammar
  t.match(
    attempt(() => parse(`foo@sha256:${'A'.repeat(64)}`)),
    { kind: 'ErrDigestInvalidFormat', message: 'invalid checksum digest format' },
  );
  t.match(
    attempt(() => parse(`foo@sha256:${'a'.repeat(63)}`)),
    { kind: 'ErrDigestInvalidLength' },
  );
  t.match(
    attempt(() => parse(`foo@blake3:${'a'.repeat(64)}`)),
    { kind: 'ErrDigestUnsupported' },
  );
  t.match(
    attempt(() => parse(`foo@SHA256:${'a'.repeat(64)}`)),
    { kind: 'ErrDigestInvalidFormat' },
  );
  // ParseNormalizedNamed checks case before the grammar, so an uppercase algorithm reads as a case error
  t.match(
    attempt(() => parseNormalizedNamed(`foo@SHA256:${'a'.repeat(64)}`)),
    {
      kind: 'ErrNameContainsUppercase',
      message: 'invalid reference format: repository name (library/foo@SHA256) must be lowercase',
    },
  );
  // Go lowercases U+0130 to "i", so Parse calls this a case error rather than a format error
  t.match(
    attempt(() => parse('\u0130mage:tag')),
    { kind: 'ErrNameContainsUppercase' },
  );
  // whitespace is outside the grammar
  t.match(
    attempt(() => parseNormalizedNamed(' nginx')),
    { kind: 'ErrReferenceInvalidFormat', message: 'invalid reference format' },
  );
  t.match(
    attempt(() => parseNormalizedNamed('nginx\n')),
    { kind: 'ErrReferenceInvalidFormat' },
  );
  t.match(
    attempt(() => parseNormalizedNamed('')),
    { kind: 'ErrReferenceInvalidFormat' },
  );
  // familiar forms
  t.equal(
    familiarString(parseNormalizedNamed(`docker.io/library/redis:7@sha256:${'b'.repeat(64)}`)),
    `redis:7@sha256:${'b'.repeat(64)}`,
  );
});

t.test('the grammar stays linear on hostile input', async (t) => {
  const inputs = [
    `${'a'.repeat(100_000)}!`,
    `${'a-'.repeat(50_000)}!`,
    `${'a.'.repeat(50_000)}!`,
    `${'a/'.repeat(50_000)}:!`,
    `${'a_a.'.repeat(25_000)}/A`,
    `${'x'.repeat(1000)}.${'a-'.repeat(50_000)}/`,
    `a@sha256:${'f'.repeat(100_000)}!`,
    `a:${'b'.repeat(100_000)}`,
  ];
  // CPU time of this process, not wall time: other processes on a busy machine do not count. A linear
  // parse of these inputs takes milliseconds; catastrophic backtracking would take minutes or more,
  // so the bound is generous by two orders of magnitude.
  const start = process.cpuUsage();
  for (const s of inputs) attempt(() => parseNormalizedNamed(s));
  const used = process.cpuUsage(start);
  const ms = (used.user + used.system) / 1000;
  t.ok(ms < 5000, `parsed with ${Math.round(ms)} ms of CPU`);
});
