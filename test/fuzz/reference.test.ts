// Property tests of the reference parser: it never throws, what it accepts round-trips, and its
// answers are the kubelet's (every upstream vector is also run in test/reference).
import t from 'tap';
import fc from 'fast-check';
import { parseImage } from '../../src/reference/index.ts';
import { readVectors } from '../helpers/fixtures.ts';

const component = fc.stringMatching(/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+){0,2}$/);
const domain = fc.oneof(
  fc.constant(''),
  fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?\.[a-z]{2,5}(?::[0-9]{2,5})?$/),
  fc.constant('localhost:5000'),
);
const tag = fc.stringMatching(/^[\w][\w.-]{0,20}$/);
const digest = fc.stringMatching(/^[a-f0-9]{64}$/).map((h) => `sha256:${h}`);
const wellFormed = fc
  .tuple(domain, fc.array(component, { minLength: 1, maxLength: 3 }), fc.option(tag), fc.option(digest))
  .map(([d, parts, tg, dg]) => `${d ? `${d}/` : ''}${parts.join('/')}${tg ? `:${tg}` : ''}${dg ? `@${dg}` : ''}`);

t.test('never throws, and every error is one line without control characters', async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), wellFormed),
      (input) => {
        const r = parseImage(input);
        if (!r.ok) return !/[\u0000-\u001f\u007f]/.test(r.error);
        return !/\s/.test(r.ref.pullRef);
      },
    ),
    { numRuns: 3000 },
  );
});

t.test('well-formed references parse, and the normalized form parses to itself', async (t) => {
  fc.assert(
    fc.property(wellFormed, (input) => {
      const r = parseImage(input);
      if (!r.ok) return input.split('/').at(-1)!.split('@')[0]!.length > 255; // only the length limit may refuse
      const again = parseImage(r.ref.normalized);
      return again.ok && again.ref.normalized === r.ref.normalized && again.ref.pullRef === r.ref.pullRef;
    }),
    { numRuns: 2000 },
  );
});

t.test('a digest always wins over a tag, and a bare name gets :latest', async (t) => {
  fc.assert(
    fc.property(wellFormed, (input) => {
      const r = parseImage(input);
      if (!r.ok) return true;
      if (r.ref.digest) return r.ref.pullRef.endsWith(`@${r.ref.digest}`) && !r.ref.pullRef.includes(`:${r.ref.tag}@`);
      return r.ref.pullRef === `${r.ref.name}:${r.ref.tag ?? 'latest'}`;
    }),
    { numRuns: 2000 },
  );
});

t.test('agrees with the vectors on validity, also with noise around valid inputs', async (t) => {
  const rows = readVectors<{ input: string; valid: boolean; source: { function: string } }>('reference.json').filter(
    (r) => r.source.function === 'ParseNormalizedNamed',
  );
  t.ok(rows.length > 50);
  for (const row of rows) t.equal(parseImage(row.input).ok, row.valid, row.input.slice(0, 60));
  fc.assert(
    fc.property(
      fc.constantFrom(...rows.filter((r) => r.valid).map((r) => r.input)),
      fc.constantFrom(' ', '\n', '\t', '\u0000'),
      (input, noise) => !parseImage(noise + input).ok && !parseImage(input + noise).ok,
    ),
  );
});
