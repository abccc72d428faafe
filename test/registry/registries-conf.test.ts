// registries.conf as containers/image reads it: upstream's own tables and testdata
// (system_registries_v2_test.go), short names, and bad files stopping start-up with file, line and key.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  pullSources,
  RegistriesConf,
  RegistriesConfRoutes,
  refMatchingPrefix,
  refMatchingSubdomainPrefix,
} from '../../src/registry/registries-conf.ts';
import { readVectors, vectorsDir } from '../helpers/fixtures.ts';

interface Row {
  id: string;
  kind: string;
  [k: string]: unknown;
}
const data = join(vectorsDir, 'registries-conf');
const load = (conf: unknown, dir?: unknown) =>
  RegistriesConf.load(join(data, conf as string), dir ? join(data, dir as string) : undefined);

for (const row of readVectors<Row>('registries-conf.json')) {
  t.test(row.id, async (t) => {
    switch (row.kind) {
      case 'refMatchingPrefix':
        t.equal(refMatchingPrefix(row.ref as string, row.prefix as string), row.expected);
        break;
      case 'refMatchingSubdomainPrefix':
        t.equal(refMatchingSubdomainPrefix(row.ref as string, row.prefix as string), row.expected);
        break;
      case 'count':
        t.equal(load(row.conf, row.dir).registries.length, row.expected);
        break;
      case 'findRegistry': {
        const reg = load(row.conf, row.dir).find(row.ref as string);
        if (row.expected === null) t.equal(reg, undefined);
        else t.match(reg, row.expected as object);
        break;
      }
      case 'pullSources': {
        const conf = load(row.conf);
        for (const [suffix, locations, insecure] of [
          [row.digest, row.digestLocations, row.digestInsecure],
          [row.tag, row.tagLocations, row.tagInsecure],
        ] as [string, string[], boolean[]][]) {
          const ref = `${row.name as string}${suffix}`;
          const reg = conf.find(row.name as string)!;
          const got = pullSources(reg, ref, suffix.startsWith('@'));
          t.same(
            got.map((s) => s.endpoint.location),
            locations,
            ref,
          );
          t.same(
            got.map((s) => s.reference),
            locations.map((l) => `${l}/image${suffix}`),
          );
          t.same(
            got.map((s) => s.endpoint.insecure),
            insecure,
          );
        }
        break;
      }
      case 'invalid':
        t.throws(() => load(row.conf), {
          code: 'setup',
          message: new RegExp(
            `${row.conf as string}.*${((row.pullguardError ?? row.error) as string).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
          ),
        });
        break;
      case 'search': {
        const conf = load(row.conf, row.dir);
        t.same(conf.search, row.search);
        if (row.origin) t.equal(conf.searchOrigin, join(data, row.origin as string));
        if (row.count !== undefined) t.equal(conf.registries.length, row.count);
        if (row.locations)
          t.same(
            conf.registries.map((r) => r.location),
            row.locations,
          );
        for (const ref of (row.blocked as string[] | undefined) ?? []) t.equal(conf.find(ref)?.blocked, true, ref);
        for (const ref of (row.insecure as string[] | undefined) ?? []) t.equal(conf.find(ref)?.insecure, true, ref);
        if (row.shortNameMode) t.equal(conf.shortNameMode, row.shortNameMode);
        break;
      }
      default:
        t.fail(`unknown kind ${row.kind}`);
    }
  });
}

t.test('drop-ins merge aliases; an empty value removes one', async (t) => {
  const conf = load('base-for-registries.d.conf', 'registries.conf.d');
  t.equal(conf.aliases.get('config1'), 'config1.com/image');
  t.equal(conf.aliases.get('barz'), 'barz.com/config2', 'the later file wins');
  t.equal(conf.aliases.has('example'), false);
});

const parse = (text: string) => RegistriesConf.parse([{ file: 'registries.conf', text }]);

t.test('short names: an alias, one search registry, several by mode, none', async (t) => {
  const conf = parse(
    'unqualified-search-registries = ["quay.io", "docker.io"]\nshort-name-mode = "permissive"\n[aliases]\n"pg/app" = "registry.test/team/app"\n',
  );
  t.match(conf.resolveShortName('pg/app:1.0'), { candidates: ['registry.test/team/app:1.0'], why: /alias/ });
  t.match(conf.resolveShortName('nginx:1.25'), { candidates: ['quay.io/nginx:1.25', 'docker.io/library/nginx:1.25'] });
  const enforcing = parse('unqualified-search-registries = ["quay.io", "docker.io"]\n');
  t.match(enforcing.resolveShortName('nginx'), {
    error: /short-name resolution enforced but cannot prompt without a TTY/,
  });
  const one = parse('unqualified-search-registries = ["docker.io"]\n');
  t.match(one.resolveShortName(`nginx@sha256:${'a'.repeat(64)}`), {
    candidates: [`docker.io/library/nginx@sha256:${'a'.repeat(64)}`],
  });
  t.match(parse('').resolveShortName('nginx'), { error: /no unqualified-search registries are defined/ });
});

t.test('routes: a rewritten location, the mirrors for a tag or a digest, a blocked source', async (t) => {
  const routes = new RegistriesConfRoutes(
    parse(`[[registry]]
prefix = "docker.io/library"
location = "mirror.test/hub"
[[registry.mirror]]
location = "cache.test:5000/hub"
pull-from-mirror = "digest-only"
insecure = true
[[registry]]
location = "blocked.test"
blocked = true
`),
  );
  const tag = routes.route('docker.io', 'library/nginx', false);
  t.match(tag.endpoints, [{ host: 'mirror.test', repository: 'hub/nginx', upstream: true }]);
  const digest = routes.route('docker.io', 'library/nginx', true);
  t.match(digest.endpoints, [
    { host: 'cache.test:5000', repository: 'hub/nginx', upstream: false, insecure: true },
    { host: 'mirror.test', repository: 'hub/nginx' },
  ]);
  t.match(routes.route('blocked.test', 'x/y', false), { endpoints: [], blocked: /registry blocked\.test is blocked/ });
  t.match(routes.route('other.test', 'x/y', false).endpoints, [{ host: 'other.test', upstream: true }]);
  t.match(routes.route('docker.io', 'team/app', false).endpoints, [{ host: 'registry-1.docker.io' }]);
});

t.test('a file that does not parse, a wrong type and an unknown key: file, line and key', async (t) => {
  t.throws(() => parse('[[registry]]\nlocation = "a.test"\nmirror-by-digest-only = yes\n'), {
    code: 'setup',
    message: /^registries\.conf:3: .*\(key mirror-by-digest-only, line 3\)/,
  });
  t.throws(() => parse('[[registry]]\nlocation = "a.test"\ninsecure = "true"\n'), {
    message: /^registries\.conf:3: key registry\[0\]\.insecure: must be true or false/,
  });
  const conf = parse('[[registry]]\nlocation = "a.test"\nmirrors-by-digest-only = true\n');
  t.match(conf.warnings, [
    /^registries\.conf:3: key registry\[0\]\.mirrors-by-digest-only: not a containers-registries\.conf/,
  ]);
  t.throws(() => parse('[[registry]]\nlocation = "https://a.test"\n'), {
    message:
      /registries\.conf:2: key registry\[0\]\.location: invalid location 'https:\/\/a\.test': URI schemes are not supported/,
  });
});

t.test('an unreadable or missing drop-in directory is a clear error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-regconf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => RegistriesConf.load(undefined, join(dir, 'nope')), {
    code: 'setup',
    message: /registries\.conf\.d .*nope: .*--registries-conf-dir/,
  });
  mkdirSync(join(dir, 'd'));
  writeFileSync(join(dir, 'd', 'a.conf'), 'unqualified-search-registries = ["a.test"]\n');
  writeFileSync(join(dir, 'd', 'b.ignore'), 'unqualified-search-registries = ["b.test"]\n');
  t.same(RegistriesConf.load(undefined, join(dir, 'd')).search, ['a.test'], 'only *.conf files');
});
