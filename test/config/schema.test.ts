// The one configuration schema: defaults, layers (file < environment < flags), and errors that name
// every wrong field.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, validateConfig } from '../../src/config/schema.ts';
import { environmentOverrides, mergeLayers, parseDuration } from '../../src/config/layers.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullguard-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('defaults', async (t) => {
  const c = validateConfig({});
  t.equal(c.mode, 'enforce');
  t.equal(c.deadline, 8000);
  t.same(c.cache, { maxEntries: 10_000, positiveTtl: 300_000, digestTtl: 3_600_000, negativeTtl: 10_000 });
  t.equal(c.server.port, 8443);
  t.ok(c.credentials.providerImages.includes('*.dkr.ecr.*.amazonaws.com'));
  // the defaults are one shared table (src/config/layers.ts): a configuration changed in place leaves it alone
  c.registry.insecure.push('changed.test');
  c.credentials.providerImages.length = 0;
  (c.actions as Record<string, string>).timeout = 'ignore';
  const again = validateConfig({});
  t.same(again.registry.insecure, []);
  t.ok(again.credentials.providerImages.length > 0);
  t.same(again.actions, {});
});

t.test('durations', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('8s'), 8000);
  t.equal(parseDuration('5m'), 300_000);
  t.equal(parseDuration('1h'), 3_600_000);
  t.throws(() => parseDuration('soon'));
  t.equal(validateConfig({ cache: { negativeTtl: 2500 } }).cache.negativeTtl, 2500, 'plain milliseconds');
  // bare milliseconds everywhere: --timeout 5000, PULLGUARD_DEADLINE=5000, "5000" in the file
  t.equal(parseDuration('5000'), 5000);
  t.equal(validateConfig({ cache: { negativeTtl: '2500' } }).cache.negativeTtl, 2500, 'a string of milliseconds');
  t.equal(loadConfig({ env: { PULLGUARD_DEADLINE: '5000' } }).deadline, 5000);
  t.throws(() => parseDuration('5 s'));
  t.throws(() => parseDuration('-5'));
});

t.test('every wrong field is named with its path', async (t) => {
  try {
    validateConfig(
      {
        mode: 'strict',
        registry: { concurrency: 0, insecure: ['bad host!'] },
        cache: { positiveTtl: 'forever' },
        bogus: true,
        registryy: {},
      },
      'pullguard.yaml',
    );
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof ConfigError);
    const e = err as ConfigError;
    t.match(e.message, /^invalid configuration in pullguard\.yaml: /);
    for (const path of [
      'mode:',
      'registry.concurrency:',
      'registry.insecure.0:',
      'cache.positiveTtl:',
      '(top level): Unrecognized keys',
    ]) {
      t.ok(
        e.issues.some((i) => i.startsWith(path)),
        path,
      );
    }
  }
});

t.test('layers: file, then PULLGUARD_* environment, then flags', async (t) => {
  const file = join(dir, 'config.yaml');
  writeFileSync(file, 'mode: audit\ndeadline: 5s\nregistry:\n  insecure: [a.example:5000]\n  concurrency: 4\n');
  const fromFile = loadConfig({ file });
  t.equal(fromFile.mode, 'audit');
  t.equal(fromFile.deadline, 5000);
  const withEnv = loadConfig({
    file,
    env: { PULLGUARD_MODE: 'warn', PULLGUARD_SERVER_PORT: '9443', PULLGUARD_DEADLINE: '3s' },
  });
  t.same(
    [withEnv.mode, withEnv.server.port, withEnv.deadline, withEnv.registry.concurrency],
    ['warn', 9443, 3000, 4],
    'environment over file, untouched keys kept',
  );
  const withFlags = loadConfig({
    file,
    env: { PULLGUARD_MODE: 'warn' },
    flags: { mode: 'enforce', registry: { insecure: ['b.example'] } },
  });
  t.equal(withFlags.mode, 'enforce', 'flags over environment');
  t.same(withFlags.registry.insecure, ['b.example'], 'arrays are replaced, not merged');
  t.equal(withFlags.registry.concurrency, 4);
  t.same(environmentOverrides({}), {});
  t.same(mergeLayers({ a: { b: 1, c: 2 } }, { a: { c: 3 } }, undefined), { a: { b: 1, c: 3 } });
});

t.test('a file that is not YAML, or missing, is a configuration error', async (t) => {
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'mode: [unclosed\n');
  t.throws(() => loadConfig({ file: bad }), { message: /invalid configuration in .*bad\.yaml: Flow sequence/ });
  t.throws(() => loadConfig({ file: join(dir, 'missing.yaml') }), { message: /cannot read/ });
});

t.test('JSON works as well as YAML', async (t) => {
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ mode: 'warn', actions: { 'platform-not-found': 'warn' } }));
  t.same(loadConfig({ file }).actions, { 'platform-not-found': 'warn' });
});

t.test('registry endpoints must be http(s) URLs', async (t) => {
  t.same(
    validateConfig({ registry: { endpoints: { 'docker.io': 'https://mirror.example:5000' } } }).registry.endpoints,
    { 'docker.io': 'https://mirror.example:5000' },
  );
  t.throws(() => validateConfig({ registry: { endpoints: { 'docker.io': 'ftp://mirror' } } }), {
    message: /registry\.endpoints\.docker\.io/,
  });
});

t.test('a bad value from flags or the environment says where it came from', async (t) => {
  t.throws(() => loadConfig({ env: { PULLGUARD_DEADLINE: '50ms' } }), {
    message: /^invalid configuration in flags and PULLGUARD_\* variables: deadline/,
  });
});

t.test("README.md's configuration table is the schema's (npm run docs:config writes it)", async (t) => {
  const { BEGIN, configTable, END, README } = await import('../../scripts/config-table.ts');
  const readme = readFileSync(README, 'utf8');
  const from = readme.indexOf(BEGIN);
  const to = readme.indexOf(END);
  t.ok(from >= 0 && to > from, 'README.md has the markers');
  t.equal(readme.slice(from + BEGIN.length, to).trim(), configTable(), 'run `npm run docs:config`');
  const table = configTable();
  t.match(table, '| `server.bodyLimit` | `bytes` | 8 MiB |', "bodyLimit's default as the code has it");
  t.match(table, '| `cache.positiveTtl` | `duration` | `5m` |', 'durations as the file writes them');
  t.match(table, '| `watch.leaseNamespace` | `string` | – |', 'a setting without a default');
  // every setting with a default has a row (the groups' keys, one level down)
  const keys = Object.entries(validateConfig({})).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length
      ? Object.keys(v).map((inner) => `${k}.${inner}`)
      : [k],
  );
  for (const key of keys) t.match(table, `| \`${key}\` |`, key);
});

t.test("registry.registriesConf makes the nodes CRI-O's, from a configuration file as from the flag", async (t) => {
  t.equal(validateConfig({}).nodes.runtime, 'containerd');
  t.equal(validateConfig({ registry: { registriesConf: '/etc/containers/registries.conf' } }).nodes.runtime, 'cri-o');
  t.equal(
    validateConfig({ registry: { registriesConfDir: '/etc/containers/registries.conf.d' } }).nodes.runtime,
    'cri-o',
  );
  t.equal(validateConfig({ nodes: { runtime: 'cri-o' } }).nodes.runtime, 'cri-o');
});
