// The dependency-direction check that `npm run lint` runs (.ci/layers.ts): which imports it refuses,
// that it reads imports the way the compiler does, and that the repository keeps its own layers.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { check, type Edge, readImports, type Rules, srcEntries } from '../../.ci/layers.ts';
import { rules as repoRules } from '../../.ci/layers.rules.ts';
import { repoRoot } from '../helpers/fixtures.ts';

const rules: Rules = {
  layers: [['reference', 'findings.ts'], ['registry', 'credentials'], ['cli']],
  exceptions: [],
};
const entries = ['cli', 'credentials', 'findings.ts', 'reference', 'registry'];
const edge = (from: string, to: string): Edge => ({ from: `src/${from}`, to: `src/${to}` });
const rulesOf = (problems: { rule: string }[]) => problems.map((p) => p.rule);

t.test('downward and same-layer imports are fine', async (t) => {
  const edges = [
    edge('cli/main.ts', 'registry/client.ts'),
    edge('registry/client.ts', 'findings.ts'),
    edge('registry/client.ts', 'credentials/keyring.ts'),
    edge('reference/parse.ts', 'findings.ts'),
  ];
  t.same(check(edges, entries, rules), []);
});

t.test('an upward import is refused, naming both files and layers', async (t) => {
  const problems = check([edge('reference/parse.ts', 'registry/client.ts')], entries, rules);
  t.same(rulesOf(problems), ['upward-import']);
  t.match(problems[0]!.message, 'src/reference/parse.ts imports src/registry/client.ts');
  t.match(problems[0]!.message, 'reference/ (layer 0) must not depend on registry/ (layer 1)');
  t.same(rulesOf(check([edge('findings.ts', 'cli/main.ts')], entries, rules)), ['upward-import']);
});

t.test('cycles are refused: between files, and between folders of one layer', async (t) => {
  const files = check([edge('registry/a.ts', 'registry/b.ts'), edge('registry/b.ts', 'registry/a.ts')], entries, rules);
  t.same(rulesOf(files), ['cycle']);
  t.match(files[0]!.message, 'src/registry/a.ts ⇄ src/registry/b.ts');
  const folders = check(
    [edge('registry/a.ts', 'credentials/k.ts'), edge('credentials/x.ts', 'registry/b.ts')],
    entries,
    rules,
  );
  t.same(rulesOf(folders), ['folder-cycle']);
  t.match(folders[0]!.message, 'src/credentials ⇄ src/registry');
  t.match(folders[0]!.message, 'src/credentials/x.ts → src/registry/b.ts');
});

t.test('a folder or file under src/ without a layer is refused', async (t) => {
  const problems = check([], [...entries, 'watch', 'errors.ts'], rules);
  t.same(rulesOf(problems), ['unplaced-module', 'unplaced-module']);
  t.match(problems[0]!.message, 'src/watch/ has no layer');
  t.match(problems[1]!.message, 'src/errors.ts has no layer');
});

t.test('a named exception allows one import, and goes stale once the import is fixed', async (t) => {
  const up = edge('reference/parse.ts', 'registry/client.ts');
  const withException: Rules = { ...rules, exceptions: [{ ...up, why: 'issue 1' }] };
  t.same(check([up], entries, withException), [], 'the excepted import passes');
  t.same(
    rulesOf(check([up, edge('reference/other.ts', 'registry/client.ts')], entries, withException)),
    ['upward-import'],
    'only that import: another file is still refused',
  );
  const gone = check([], entries, withException);
  t.same(rulesOf(gone), ['stale-exception'], 'an exception that matches no import fails the check');
  t.match(gone[0]!.message, 'matches no import any more');
  const harmless: Rules = { ...rules, exceptions: [{ ...edge('cli/a.ts', 'registry/b.ts'), why: 'issue 1' }] };
  t.same(
    rulesOf(check([edge('cli/a.ts', 'registry/b.ts')], entries, harmless)),
    ['stale-exception'],
    'an exception for an import that breaks no rule fails the check too',
  );
  const cycle: Rules = { ...rules, exceptions: [{ ...edge('registry/b.ts', 'registry/a.ts'), why: 'issue 1' }] };
  t.same(
    check([edge('registry/a.ts', 'registry/b.ts'), edge('registry/b.ts', 'registry/a.ts')], entries, cycle),
    [],
    'an exception may break a cycle',
  );
});

t.test(
  'imports are read by the compiler: type-only, re-exports and dynamic ones count; comments and strings do not',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pullguard-layers-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    };
    write(
      'tsconfig.json',
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          allowImportingTsExtensions: true,
          verbatimModuleSyntax: true,
          noEmit: true,
          types: [],
        },
        include: ['src'],
      }),
    );
    write('package.json', '{"type":"module"}');
    for (const name of ['typeonly', 'reexport', 'dynamic', 'typeexpr', 'commented', 'quoted', 'plain'])
      write(`src/b/${name}.ts`, `export type T = 1;\nexport const v = 1;\n`);
    write(
      'src/a/x.ts',
      [
        "import type { T } from '../b/typeonly.ts';",
        'export type { T as U } from "../b/reexport.ts";',
        "import { v } from '../b/plain.ts';",
        "// import { v as w } from '../b/commented.ts';",
        'const s = "import { v } from \'../b/quoted.ts\'";',
        "export type E = import('../b/typeexpr.ts').T;",
        "export const load = () => import('../b/dynamic.ts');",
        'export const all: [T, typeof v, string] = [1, v, s];',
        '',
      ].join('\n'),
    );
    const edges = await readImports(dir, 'tsconfig.json');
    t.same(
      edges.map((e) => `${e.from} → ${e.to}`).sort(),
      ['dynamic', 'plain', 'reexport', 'typeexpr', 'typeonly'].map((n) => `src/a/x.ts → src/b/${n}.ts`),
    );
    t.same(srcEntries(dir), ['a', 'b']);
  },
);

t.test('the repository keeps its layers (docs/design.md)', async (t) => {
  const edges = await readImports(repoRoot, join('.ci', 'tsconfig.layers.json'));
  t.ok(edges.length > 50, 'imports were read');
  t.same(check(edges, srcEntries(repoRoot), repoRules), []);
  for (const x of repoRules.exceptions) t.match(x.why, /^issue \d+: /, `${x.from} → ${x.to} names its issue`);
});

t.test('the API calls, the use case and its faces are layers of their own (issue 26)', async (t) => {
  const entries = repoRules.layers.flat();
  const refused = (from: string, to: string) => rulesOf(check([edge(from, to)], entries, repoRules));
  t.same(refused('podcheck/podcheck.ts', 'admission/handler.ts'), ['upward-import'], 'the use case knows no face');
  t.same(refused('podcheck/podcheck.ts', 'watch/watch.ts'), ['upward-import']);
  t.same(refused('cluster/reader.ts', 'podcheck/credentials.ts'), ['upward-import'], 'the API calls know no use case');
  t.same(refused('cluster/pods.ts', 'diagnose/evidence.ts'), ['upward-import']);
  t.same(refused('watch/watch.ts', 'podcheck/podcheck.ts'), [], 'a face builds on the use case');
  t.same(refused('podcheck/credentials.ts', 'cluster/reader.ts'), [], 'the use case reads the cluster');
  t.same(refused('watch/watch.ts', 'diagnose/pods.ts'), [], 'faces share a layer');
});
