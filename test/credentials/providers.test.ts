// Kubelet credential provider plugins: real executables written by the test, run the way the
// kubelet runs them; matchImages against upstream's cases (test/fixtures/kubelet-matchimages.json).
import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CredentialProviders,
  PLUGIN_CONCURRENCY,
  parseGoDuration,
  parseProviderConfig,
  readProviderConfig,
  type ProviderEntry,
} from '../../src/credentials/providers.ts';
import { repoRoot } from '../helpers/fixtures.ts';
import { waitFor } from '../helpers/wait.ts';
import { gateLog } from '../helpers/plugin-gate.ts';

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

// A plugin that logs its start and end and, in between, waits for the test to let it go (a file
// named after its PID, or one for all); its answer's cacheKeyType and cacheDuration are its args.
plugin(
  'gate-provider',
  `cat > /dev/null
echo "start $$" >> "$GATE/log"
while [ ! -e "$GATE/go-$$" ] && [ ! -e "$GATE/go-all" ]; do sleep 0.1; done
echo "end $$" >> "$GATE/log"
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"%s","cacheDuration":"%s","auth":{"*.example.com":{"username":"u","password":"p"}}}' "$1" "$2"`,
);

/** A gate for gate-provider: its log read as runs and the most ever in flight, and a way to let runs go. */
function gate(name: string) {
  return gateLog(join(bin, `gate-${name}`));
}

function gated(name: string, keyType: string, duration: string, timeoutMs = 60_000) {
  const g = gate(name);
  const providers = new CredentialProviders(
    [entry({ name: 'gate-provider', args: [keyType, duration], env: [{ name: 'GATE', value: g.dir }] })],
    { binDir: bin, timeoutMs, env: { PATH: process.env.PATH } },
  );
  return { g, providers, runs: () => providers.runs.get('gate-provider') ?? 0 };
}

t.test('at most PLUGIN_CONCURRENCY runs of a provider at once, one until its first answer', async (t) => {
  const { g, providers, runs } = gated('cap', 'Image', '5m');
  const images = Array.from({ length: 30 }, (_, i) => `a.example.com/team/app-${i}`);
  const all = Promise.all(images.map((image) => providers.lookup(image)));
  await waitFor(() => g.started().length > 0, { what: 'the first run to start', timeoutMs: 600_000 });
  t.equal(runs(), 1, 'while no answer is known, one run: its answer may serve them all');
  const results = await g.releaseUntil(all, 'the lookups to finish');
  t.ok(
    results.every((r) => r.credentials.length === 1 && !r.failures.length),
    'every image got its answer',
  );
  t.equal(runs(), 30, 'cacheKeyType Image: one run per image');
  t.equal(g.started().length, 30);
  t.ok(g.maxInFlight() <= PLUGIN_CONCURRENCY, `at most ${PLUGIN_CONCURRENCY} in flight (saw ${g.maxInFlight()})`);
});

t.test('runs are shared by the cache key the last answer declared, cached or not', async (t) => {
  // cacheDuration 0: nothing is cached, yet concurrent lookups of one registry share one run.
  const { g, providers, runs } = gated('registry-nocache', 'Registry', '0s');
  g.releaseAll();
  t.equal((await providers.lookup('a.example.com/first')).credentials.length, 1);
  const many = await Promise.all(Array.from({ length: 40 }, (_, i) => providers.lookup(`a.example.com/team/app-${i}`)));
  t.ok(many.every((r) => r.credentials.length === 1));
  t.equal(runs(), 2, 'the first answer said Registry: the 40 lookups of that registry share one run');

  // With a cache, the first answer serves everything queued behind it.
  const cached = gated('registry-cached', 'Registry', '5m');
  const images = Array.from({ length: 60 }, (_, i) => `a.example.com/team/app-${i}`);
  const all = Promise.all(images.map((image) => cached.providers.lookup(image)));
  await waitFor(() => cached.g.started().length > 0, { what: 'the first run to start', timeoutMs: 600_000 });
  const results = await cached.g.releaseUntil(all, 'the lookups to finish');
  t.ok(results.every((r) => r.credentials.length === 1));
  t.equal(cached.runs(), 1, '60 images of one registry: one run');

  const global = gated('global', 'Global', '5m');
  const spread = ['a.example.com/x', 'b.example.com/y', 'c.example.com/z', 'a.example.com/w'];
  const everywhere = await global.g.releaseUntil(
    Promise.all(spread.map((i) => global.providers.lookup(i))),
    'the lookups to finish',
  );
  t.ok(everywhere.every((r) => r.credentials.length === 1));
  t.equal(global.runs(), 1, 'Global: one run for every registry');
});

t.test('a queued run whose deadline passes gives up without starting a process', async (t) => {
  const { g, providers, runs } = gated('deadline', 'Image', '5m', 3000);
  // A first answer (so that two may run at once), then two runs that hang and five queued behind them.
  const warm = providers.lookup('a.example.com/warm');
  await waitFor(() => g.started().length === 1, { what: 'the first run', timeoutMs: 600_000 });
  g.release(g.started()[0]!);
  t.equal((await warm).credentials.length, 1);
  const hung = ['a.example.com/h1', 'a.example.com/h2'].map((i) => providers.lookup(i));
  const queued = Array.from({ length: 5 }, (_, i) => providers.lookup(`a.example.com/q${i}`));
  const [h, q] = await Promise.all([Promise.all(hung), Promise.all(queued)]);
  for (const r of h) t.match(r.failures.join('\n'), /"gate-provider" did not answer within 3000 ms/);
  for (const r of q) t.match(r.failures.join('\n'), /"gate-provider" was not run within 3000 ms: its earlier runs/);
  t.equal(runs(), 3, 'the first, and the two that hung: none of the queued ones started');
  t.equal(g.started().length, 3);
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
  const sa = new CredentialProviders(
    [
      entry({
        tokenAttributes: {
          serviceAccountTokenAudience: 'registry.example.com',
          requireServiceAccount: true,
          requiredServiceAccountAnnotationKeys: [],
          optionalServiceAccountAnnotationKeys: [],
          cacheType: 'ServiceAccount',
        },
      }),
    ],
    { binDir: bin, timeoutMs: 1500, env: {} },
  );
  const without = await sa.lookup('a.example.com/app');
  t.equal(without.managed, true, 'without the cluster: its images stay unverifiable');
  t.match(without.failures[0], /ServiceAccount token \(tokenAttributes, audience "registry.example.com"\)/);
  t.match(without.failures[0], '--request-service-account-tokens');
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
  // tokenAttributes (KEP-4412), as kubelet pkg/credentialprovider/plugin/config.go validates them
  const provider = (tokenAttributes: unknown, apiVersion = 'credentialprovider.kubelet.k8s.io/v1') => {
    const problems: string[] = [];
    const [p] = parseProviderConfig(
      {
        apiVersion: 'kubelet.config.k8s.io/v1',
        kind: 'CredentialProviderConfig',
        providers: [{ name: 'p', matchImages: ['a.io'], defaultCacheDuration: '1m', apiVersion, tokenAttributes }],
      },
      problems,
    );
    return { p, problems: problems.join('\n') };
  };
  const ok = provider({
    serviceAccountTokenAudience: 'a.io',
    requireServiceAccount: true,
    requiredServiceAccountAnnotationKeys: ['a.io/role'],
    optionalServiceAccountAnnotationKeys: ['a.io/region'],
    cacheType: 'Token',
  });
  t.equal(ok.problems, '');
  t.same(ok.p!.tokenAttributes, {
    serviceAccountTokenAudience: 'a.io',
    requireServiceAccount: true,
    requiredServiceAccountAnnotationKeys: ['a.io/role'],
    optionalServiceAccountAnnotationKeys: ['a.io/region'],
    cacheType: 'Token',
  });
  const cases: [unknown, RegExp, string?][] = [
    [{ requireServiceAccount: true, cacheType: 'Token' }, /serviceAccountTokenAudience is required/],
    [{ serviceAccountTokenAudience: 'a', cacheType: 'Token' }, /requireServiceAccount is required/],
    [{ serviceAccountTokenAudience: 'a', requireServiceAccount: true }, /cacheType must be Token or ServiceAccount/],
    [
      {
        serviceAccountTokenAudience: 'a',
        requireServiceAccount: false,
        cacheType: 'Token',
        requiredServiceAccountAnnotationKeys: ['k'],
      },
      /requireServiceAccount cannot be false/,
    ],
    [
      {
        serviceAccountTokenAudience: 'a',
        requireServiceAccount: true,
        cacheType: 'Token',
        requiredServiceAccountAnnotationKeys: ['k', 'k', 'bad key!'],
        optionalServiceAccountAnnotationKeys: ['k'],
      },
      /"k" is duplicated[\s\S]*"bad key!" is not a valid annotation key|"bad key!" is not a valid annotation key[\s\S]*duplicated/,
    ],
    [
      {
        serviceAccountTokenAudience: 'a',
        requireServiceAccount: true,
        cacheType: 'Token',
        requiredServiceAccountAnnotationKeys: ['k'],
        optionalServiceAccountAnnotationKeys: ['k'],
      },
      /cannot be both required and optional \(k\)/,
    ],
    [
      { serviceAccountTokenAudience: 'a', requireServiceAccount: true, cacheType: 'Token' },
      /tokenAttributes is only supported for apiVersion credentialprovider\.kubelet\.k8s\.io\/v1/,
      'credentialprovider.kubelet.k8s.io/v1beta1',
    ],
  ];
  for (const [attrs, said, apiVersion] of cases) t.match(provider(attrs, apiVersion).problems, said, String(said));
  writeFileSync(join(bin, 'config.yaml'), 'kind: [');
  t.throws(() => readProviderConfig(join(bin, 'config.yaml')), /not YAML or JSON/);
  t.same(
    ['1h30m', '300ms', '1.5s', '0', '0s', '2h45m0.5s'].map(parseGoDuration),
    [5_400_000, 300, 1500, 0, 0, 9_900_500],
  );
  t.equal(parseGoDuration('5'), undefined);
});
