// The npm package as users get it: `npm pack`, then `npm install -g` of the tarball into a
// temporary prefix and `npx` of it, with no network (the package bundles its dependencies). The
// installed `pullguard` and `kubectl-pullguard` run checks; an older Node.js (a real one, the
// node-old dev dependency) gets one line naming the version it needs.
import t from 'tap';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { k8sTool } from '../helpers/k8s-tools.ts';
import { repoRoot } from '../helpers/fixtures.ts';
import { scratch } from '../manifests/lib.ts';

type Obj = Record<string, any>;

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Obj;
const nodeDir = dirname(process.execPath);
const oldNode = join(repoRoot, 'test', 'fixtures', 'node-old', 'node_modules', 'node', 'bin', 'node');
const dir = scratch(t, 'pullguard-package-');
const prefix = join(dir, 'prefix');

/** The environment of a user's shell: this Node.js first on PATH, no npm script variables. */
function env(path: string[]): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return { ...clean, PATH: [...path, process.env.PATH ?? ''].join(delimiter), NO_COLOR: '1' };
}

function run(cmd: string, args: string[], opts: SpawnSyncOptions & { path?: string[] } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    cwd: dir,
    env: env(opts.path ?? [nodeDir]),
    maxBuffer: 16 * 1024 * 1024,
    ...opts,
  });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

// npm pack runs prepack (the bundle build) in the repository; the tarball lands in the scratch folder.
const packed = run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: repoRoot });
const packInfo = (packed.status === 0 ? (JSON.parse(packed.stdout) as Obj[])[0] : undefined) as Obj | undefined;
const tarball = join(dir, packInfo?.filename ?? 'missing.tgz');

t.test('npm pack yields the bundle, the bin and nothing of the sources', async (t) => {
  t.equal(packed.status, 0, `npm pack: ${packed.stderr}`);
  t.equal(packInfo?.filename, `pullguard-${pkg.version}.tgz`);
  const files = ((packInfo?.files ?? []) as Obj[]).map((f) => f.path as string);
  for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/pullguard.js', 'dist/cli/main.js'])
    t.ok(files.includes(f), `${f} is in the package`);
  t.same(
    files.filter((f) => /^(src|test|bench|node_modules|charts|manifests)\//.test(f)),
    [],
    'no sources, tests or manifests',
  );
  t.notOk(pkg.private, 'not private');
  t.same(
    pkg.dependencies ?? {},
    {},
    'no runtime dependencies: the bundle carries them (add new ones as devDependencies)',
  );
  t.same(pkg.bin, { pullguard: 'bin/pullguard.js', 'kubectl-pullguard': 'bin/pullguard.js' });
});

t.test('the LICENSE file is the license package.json names', async (t) => {
  t.equal(pkg.license, 'Apache-2.0');
  const text = readFileSync(join(repoRoot, 'LICENSE'), 'utf8');
  t.match(text, /^\s+Apache License\n\s+Version 2\.0, January 2004\n/, 'the Apache License 2.0');
  t.match(text, /END OF TERMS AND CONDITIONS/, 'in full');
});

t.test('npm install -g of the tarball into a temporary prefix, offline', async (t) => {
  const installed = run('npm', [
    'install',
    '--global',
    '--prefix',
    prefix,
    '--offline',
    '--no-audit',
    '--no-fund',
    '--cache',
    join(dir, 'npm-cache'),
    tarball,
  ]);
  t.equal(installed.status, 0, `npm install -g: ${installed.stderr}`);
  const bin = join(prefix, 'bin');

  const version = run('pullguard', ['--version'], { path: [bin, nodeDir] });
  t.equal(version.status, 0, version.stderr);
  t.equal(version.stdout, `pullguard ${pkg.version}\n`, 'pullguard --version');

  // --offline verifies nothing (exit 3, not-checked); --allow-unverified accepts that.
  const ok = run('pullguard', ['check', 'nginx:1.25', '--offline', '--allow-unverified'], { path: [bin, nodeDir] });
  t.equal(ok.status, 0, `pullguard check nginx:1.25 --offline --allow-unverified: ${ok.stderr}`);
  t.match(ok.stdout, /unverified\s+not-checked\s+nginx:1\.25/);

  const manifest =
    'apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n    - {name: web, image: "Nginx:1.25"}\n';
  const bad = run('pullguard', ['check', '-f', '-', '--offline', '--output', 'json'], {
    path: [bin, nodeDir],
    input: manifest,
  });
  t.equal(bad.status, 1, 'an unparseable reference from stdin: exit 1');
  const finding = (JSON.parse(bad.stdout) as Obj).findings[0];
  t.match(finding, { container: 'web', image: 'Nginx:1.25', verdict: 'fail', reason: 'invalid-reference' });

  const plugin = run('kubectl-pullguard', ['--version'], { path: [bin, nodeDir] });
  t.equal(plugin.stdout, `pullguard ${pkg.version}\n`, 'kubectl-pullguard --version');
  const viaKubectl = run(k8sTool('kubectl'), ['pullguard', 'check', 'nginx:1.25', '--offline', '--allow-unverified'], {
    path: [bin, nodeDir],
  });
  t.equal(viaKubectl.status, 0, `kubectl pullguard check: ${viaKubectl.stderr}`);
  t.match(viaKubectl.stdout, /nginx:1\.25/, 'kubectl finds the plugin on PATH and runs it');

  // A real Node.js older than the range: the same installed command, one line, exit 2.
  const old = run(oldNode, ['--version']);
  t.match(old.stdout, /^v20\./, `the old Node.js is ${old.stdout.trim()}`);
  const minimum = /^>=(\d+\.\d+\.\d+)$/.exec(pkg.engines.node)?.[1];
  const tooOld = run('pullguard', ['check', 'nginx:1.25', '--offline'], { path: [bin, dirname(oldNode)] });
  t.equal(tooOld.status, 2, 'exit 2');
  t.equal(tooOld.stderr, `pullguard needs Node.js >= ${minimum}; this is ${old.stdout.trim().slice(1)}\n`);
  t.equal(tooOld.stdout, '', 'nothing else');
});

t.test('npx runs the tarball, offline', async (t) => {
  const r = run('npx', [
    '--offline',
    '--yes',
    '--cache',
    join(dir, 'npx-cache'),
    '--package',
    tarball,
    '--',
    'pullguard',
    '--version',
  ]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, `pullguard ${pkg.version}\n`);
});

t.test('engines and the bin agree on the minimum Node.js', async (t) => {
  const bin = readFileSync(join(repoRoot, 'bin', 'pullguard.js'), 'utf8');
  const minimum = /const MINIMUM = \[(\d+), (\d+), (\d+)\]/.exec(bin)?.slice(1).join('.');
  t.equal(pkg.engines.node, `>=${minimum}`, `package.json engines.node is >=${minimum}`);
  t.match(bin, /^#!\/usr\/bin\/env node\n/, 'a node shebang');
});
