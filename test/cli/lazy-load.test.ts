// What each command loads (issue 14, fast start): --help and --version none of the heavy
// dependencies, check --offline neither a registry nor a cluster client, check without a cluster
// no Kubernetes client (and no zod without a configuration file), serve its web server. Seen from
// inside the real process through a module resolve hook, so the verdict does not depend on how fast
// the machine is.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/fixtures.ts';

const HEAVY = ['@kubernetes/client-node', 'fastify', 'prom-client', 'pino', 'undici', 'zod'];
const dir = mkdtempSync(join(tmpdir(), 'pullguard-lazy-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const hook = join(dir, 'hook.mjs');
writeFileSync(
  hook,
  `import { registerHooks } from 'node:module';
const heavy = new Set(${JSON.stringify(HEAVY)});
registerHooks({
  resolve(specifier, context, next) {
    if (heavy.has(specifier)) process.stderr.write('LOADED ' + specifier + '\\n');
    return next(specifier, context);
  },
});
`,
);

/** The heavy packages `pullguard ARGS` resolved, in a clean environment (no cluster of the machine). */
function loaded(args: string[]): { packages: string[]; status: number | null; stderr: string } {
  const r = spawnSync(
    process.execPath,
    ['--import', pathToFileURL(hook).href, join(repoRoot, 'src', 'cli', 'main.ts'), ...args],
    { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', NO_COLOR: '1' }, timeout: 120_000 },
  );
  const packages = [...new Set([...r.stderr.matchAll(/^LOADED (\S+)$/gm)].map((m) => m[1]!))].sort();
  return { packages, status: r.status, stderr: r.stderr };
}

t.test('--help and --version load none of the heavy dependencies', async (t) => {
  for (const args of [['--help'], ['--version'], ['check', '--help']]) {
    const r = loaded(args);
    t.equal(r.status, 0, `pullguard ${args.join(' ')}`);
    t.same(r.packages, [], `pullguard ${args.join(' ')}: nothing of ${HEAVY.join(', ')}`);
  }
});

t.test('check --offline: no registry client, no cluster client, no server', async (t) => {
  // --offline verifies nothing (exit 3); --allow-unverified accepts that
  const r = loaded(['check', 'nginx:1.25', '--offline', '--allow-unverified']);
  t.equal(r.status, 0, r.stderr);
  t.same(r.packages, []);
});

t.test('check without a cluster: the registry client only', async (t) => {
  // a registry that refuses at once: unverified (exit 3), accepted with --allow-unverified
  const r = loaded(['check', '127.0.0.1:1/app:1.0', '--timeout', '5s', '--allow-unverified']);
  t.equal(r.status, 0, r.stderr);
  t.same(r.packages, ['undici'], 'undici, and not the Kubernetes client, fastify, prom-client or zod');
});

t.test('the hook sees them when they are needed', async (t) => {
  const withCluster = loaded(['check', 'nginx:1.25', '--kubeconfig', join(dir, 'missing-kubeconfig')]);
  t.equal(withCluster.status, 2, 'a kubeconfig that cannot be loaded: exit 2');
  t.ok(withCluster.packages.includes('@kubernetes/client-node'), 'a kubeconfig loads the Kubernetes client');
  const config = join(dir, 'pullguard.yaml');
  writeFileSync(config, 'deadline: 5s\n');
  const withFile = loaded(['check', 'nginx:1.25', '--offline', '--allow-unverified', '--config', config]);
  t.equal(withFile.status, 0, withFile.stderr);
  t.same(withFile.packages, ['zod'], 'a configuration file is validated with the schema (zod)');
  const serve = loaded(['serve', '--help']);
  t.ok(serve.packages.includes('fastify'), 'serve loads fastify');
});
