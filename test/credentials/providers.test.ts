// Kubelet credential provider plugins: real executables written by the test, run the way the
// kubelet runs them; matchImages against upstream's cases (test/fixtures/kubelet-matchimages.json).
import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CredentialProviders,
  parseGoDuration,
  parseProviderConfig,
  readProviderConfig,
  type ProviderEntry,
} from '../../src/credentials/providers.ts';
import { repoRoot } from '../helpers/fixtures.ts';

const fixture = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/kubelet-matchimages.json'), 'utf8')) as {
  cases: { matchImage: string; image: string; match: boolean }[];
};
const bin = mkdtempSync(join(tmpdir(), 'pullguard-plugins-'));
t.teardown(() => rmSync(bin, { recursive: true, force: true }));

/** A plugin that answers with the given response (cacheKeyType/cacheDuration from its args) and counts its runs. */
function plugin(name: string, body: string): void {
  writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
  chmodSync(join(bin, name), 0o755);
}
plugin(
  'echo-provider',
  `request=$(cat)
echo "$request" >> "${bin}/$PLUGIN_LOG"
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"%s","cacheDuration":"%s","auth":{"*.example.com":{"username":"u","password":"p-%s"}}}' "$1" "$2" "$3"`,
);

function entry(over: Partial<ProviderEntry>): ProviderEntry {
  return {
    name: 'echo-provider',
    matchImages: ['*.example.com'],
    defaultCacheDurationMs: 60_000,
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
    args: [],
    env: [],
    needsServiceAccountToken: false,
    ...over,
  };
}

t.test('matchImages: every upstream case', async (t) => {
  t.ok(fixture.cases.length >= 20);
  for (const c of fixture.cases) {
    const providers = new CredentialProviders([entry({ matchImages: [c.matchImage] })], {
      binDir: bin,
      timeoutMs: 5000,
      env: {},
    });
    t.equal(providers.matches(c.image), c.match, `${c.matchImage} ~ ${c.image}`);
  }
  const scheme = new CredentialProviders([entry({ matchImages: ['https://registry.example.com'] })], {
    binDir: bin,
    timeoutMs: 5000,
    env: {},
  });
  t.notOk(scheme.matches('registry.example.com/app'), 'a pattern with a scheme matches nothing');
});

t.test('the request on stdin, args and env from the config; cacheKeyType and cacheDuration', async (t) => {
  const runsFor = async (cacheKeyType: string, cacheDuration: string, images: string[]) => {
    const log = `log-${cacheKeyType}-${cacheDuration}`;
    const providers = new CredentialProviders(
      [entry({ args: [cacheKeyType, cacheDuration, 'secret'], env: [{ name: 'PLUGIN_LOG', value: log }] })],
      { binDir: bin, timeoutMs: 10_000, env: { PATH: process.env.PATH } },
    );
    const results = [];
    for (const image of images) results.push(await providers.lookup(image));
    return {
      results,
      requests: readFileSync(join(bin, log), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    };
  };
  const images = ['a.example.com/team/app', 'a.example.com/team/other', 'b.example.com/x', 'a.example.com/team/app'];

  const registry = await runsFor('Registry', '5m', images);
  t.same(
    registry.requests,
    [
      {
        kind: 'CredentialProviderRequest',
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        image: 'a.example.com/team/app',
      },
      {
        kind: 'CredentialProviderRequest',
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        image: 'b.example.com/x',
      },
    ],
    'Registry: one run per registry',
  );
  t.same(
    registry.results.map((r) => r.credentials.map((c) => [c.username, c.password, c.source])),
    images.map(() => [['u', 'p-secret', 'credential provider echo-provider']]),
  );
  t.equal((await runsFor('Image', '5m', images)).requests.length, 3, 'Image: one run per image');
  t.equal((await runsFor('Global', '5m', images)).requests.length, 1, 'Global: one run for everything');
  t.equal((await runsFor('Registry', '0s', images)).requests.length, 4, 'cacheDuration 0: no caching');
});

t.test('one run for many concurrent lookups of the same image', async (t) => {
  const providers = new CredentialProviders(
    [entry({ args: ['Image', '0s', 'x'], env: [{ name: 'PLUGIN_LOG', value: 'log-flight' }] })],
    { binDir: bin, timeoutMs: 10_000, env: { PATH: process.env.PATH } },
  );
  const all = await Promise.all(Array.from({ length: 5 }, () => providers.lookup('a.example.com/app')));
  t.ok(all.every((r) => r.credentials.length === 1));
  t.equal(readFileSync(join(bin, 'log-flight'), 'utf8').trim().split('\n').length, 1);
});

t.test('failing, hanging, missing and malformed plugins are reported by name, never thrown', async (t) => {
  plugin('fails', 'echo "no IAM role for this node" >&2; exit 1');
  plugin('hangs', 'sleep 600');
  plugin('junk', 'echo "{not json"');
  plugin(
    'wrong-kind',
    `printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Nope","cacheKeyType":"Image"}'`,
  );
  plugin(
    'bad-key-type',
    `printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Pod"}'`,
  );
  const cases: [string, RegExp][] = [
    ['fails', /"fails" exited with status 1: no IAM role for this node/],
    ['hangs', /"hangs" did not answer within 1500 ms/],
    ['junk', /"junk" answered something that is not JSON/],
    ['wrong-kind', /"wrong-kind" answered kind "Nope", not CredentialProviderResponse/],
    ['bad-key-type', /"bad-key-type" answered an invalid cacheKeyType "Pod"/],
    ['missing', /"missing" is not installed/],
  ];
  for (const [name, said] of cases) {
    const providers = new CredentialProviders([entry({ name })], { binDir: bin, timeoutMs: 1500, env: {} });
    const r = await providers.lookup('a.example.com/app');
    t.same(r.credentials, [], name);
    t.equal(r.managed, true);
    t.match(r.failures.join('\n'), said, name);
  }
  const sa = new CredentialProviders([entry({ needsServiceAccountToken: true })], {
    binDir: bin,
    timeoutMs: 1500,
    env: {},
  });
  t.match((await sa.lookup('a.example.com/app')).failures[0], /service account token/);
});

t.test('the CredentialProviderConfig is validated as the kubelet validates it', async (t) => {
  const good = {
    apiVersion: 'kubelet.config.k8s.io/v1',
    kind: 'CredentialProviderConfig',
    providers: [
      {
        name: 'ecr-credential-provider',
        matchImages: ['*.dkr.ecr.*.amazonaws.com'],
        defaultCacheDuration: '12h',
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        args: ['get-credentials'],
        env: [{ name: 'AWS_PROFILE', value: 'node' }],
      },
    ],
  };
  const problems: string[] = [];
  const [p] = parseProviderConfig(good, problems);
  t.same(problems, []);
  t.same(p, {
    name: 'ecr-credential-provider',
    matchImages: ['*.dkr.ecr.*.amazonaws.com'],
    defaultCacheDurationMs: 12 * 3_600_000,
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
    args: ['get-credentials'],
    env: [{ name: 'AWS_PROFILE', value: 'node' }],
    needsServiceAccountToken: false,
  });
  const bad: string[] = [];
  parseProviderConfig(
    {
      apiVersion: 'kubelet.config.k8s.io/v9',
      kind: 'CredentialProviderConfig',
      providers: [
        { name: '../x', matchImages: [], apiVersion: 'v1' },
        {
          name: 'a',
          matchImages: ['a.io'],
          defaultCacheDuration: '1m',
          apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        },
        {
          name: 'a',
          matchImages: ['a.io'],
          defaultCacheDuration: 'soon',
          apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        },
      ],
    },
    bad,
  );
  t.match(bad.join('\n'), /apiVersion must be one of/);
  t.match(bad.join('\n'), /providers\[0\]\.name "\.\.\/x" must be a file name/);
  t.match(bad.join('\n'), /providers\[0\]\.matchImages: at least one/);
  t.match(bad.join('\n'), /providers\[0\]\.defaultCacheDuration is required/);
  t.match(bad.join('\n'), /providers\[2\]\.name "a" is duplicated/);
  t.match(bad.join('\n'), /providers\[2\]\.defaultCacheDuration "soon" is not a duration/);
  writeFileSync(join(bin, 'config.yaml'), 'kind: [');
  t.throws(() => readProviderConfig(join(bin, 'config.yaml')), /not YAML or JSON/);
  t.same(
    ['1h30m', '300ms', '1.5s', '0', '0s', '2h45m0.5s'].map(parseGoDuration),
    [5_400_000, 300, 1500, 0, 0, 9_900_500],
  );
  t.equal(parseGoDuration('5'), undefined);
});
