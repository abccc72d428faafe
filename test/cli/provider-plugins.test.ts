// Images whose credentials come from the nodes' kubelet credential provider plugins: checked with
// the plugins themselves (small executables written here), by `pullguard check` and the webhook.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCheck } from '../../src/cli/check.ts';
import { runInProcess, runProcess } from '../helpers/cli.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { PLUGIN_CONCURRENCY } from '../../src/credentials/providers.ts';
import { podReview, serve } from '../server/lib.ts';
import { gateLog } from '../helpers/plugin-gate.ts';

const grace = { username: 'grace', password: 'Grace-Plugin-pw-19' };
let token: TestRegistry;
let dir: string;
let bin: string;

t.before(async () => {
  token = await startRegistry({ auth: 'token', users: [grace] });
  await token.pushImage('team/app', '1.0');
  dir = mkdtempSync(join(tmpdir(), 'pullguard-plugins-'));
  bin = join(dir, 'bin');
  mkdirSync(bin);
  const plugin = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  // What a cloud plugin does: read the request, answer with credentials for the registry.
  plugin(
    'test-registry-credential-provider',
    `cat > /dev/null
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"10m","auth":{"%s":{"username":"%s","password":"%s"}}}' "$REGISTRY" "$1" "$PLUGIN_PASSWORD"`,
  );
  plugin('failing-provider', 'cat > /dev/null; echo "error getting credentials: no instance role" >&2; exit 1');
  plugin('hanging-provider', 'sleep 600');
  plugin('malformed-provider', 'cat > /dev/null; echo "{\\"apiVersion\\": oops"');
  for (const name of [
    'test-registry-credential-provider',
    'failing-provider',
    'hanging-provider',
    'malformed-provider',
    'missing-provider',
  ])
    writeFileSync(
      join(dir, `${name}.yaml`),
      [
        'apiVersion: kubelet.config.k8s.io/v1',
        'kind: CredentialProviderConfig',
        'providers:',
        `  - name: ${name}`,
        '    matchImages:',
        `      - "${token.host}"`,
        '    defaultCacheDuration: 12h',
        '    apiVersion: credentialprovider.kubelet.k8s.io/v1',
        `    args: [${grace.username}]`,
        '    env:',
        `      - {name: REGISTRY, value: "${token.host}"}`,
        `      - {name: PLUGIN_PASSWORD, value: "${grace.password}"}`,
        '',
      ].join('\n'),
    );
});
t.teardown(async () => {
  await token.stop();
  rmSync(dir, { recursive: true, force: true });
});

const flags = (provider: string) => [
  '--insecure-registry',
  token.host,
  '--image-credential-provider-config',
  join(dir, `${provider}.yaml`),
  '--image-credential-provider-bin-dir',
  bin,
  '-o',
  'json',
];

async function check(images: string[], provider: string, extra: string[] = []) {
  const r = await runInProcess(runCheck, [...images, ...flags(provider), ...extra], {
    env: { PATH: process.env.PATH ?? '' },
  });
  return { ...r, findings: (r.stdout ? JSON.parse(r.stdout).findings : []) as Record<string, any>[] };
}

const noSecret = (t: { notOk: (v: unknown, m: string) => void }, text: string) =>
  t.notOk(text.includes(grace.password), 'the plugin’s password is not in the output');

t.test('must show: a provider-managed image is ok through the plugin, a missing tag tag-not-found', async (t) => {
  // The real command once, as a node's operator would run it.
  const r = await runProcess(
    [
      'check',
      `${token.host}/team/app:1.0`,
      `${token.host}/team/app:9.9`,
      ...flags('test-registry-credential-provider'),
    ],
    { env: { PATH: process.env.PATH ?? '', NO_COLOR: '1' } },
  );
  const findings = JSON.parse(r.stdout).findings as Record<string, any>[];
  t.same(
    findings.map((f) => [f.verdict, f.reason]),
    [
      ['ok', 'available'],
      ['fail', 'tag-not-found'],
    ],
    r.stdout,
  );
  t.match(findings[0]!.evidence.join('\n'), '[credential provider test-registry-credential-provider]');
  noSecret(t, r.stdout + r.stderr);

  const none = await check([`${token.host}/team/app:1.0`], 'test-registry-credential-provider', [
    '--image-credential-provider-config',
    join(dir, 'missing.yaml'),
  ]);
  t.equal(none.code, 2, 'a config that cannot be read is bad usage');
  t.match(none.stderr, /credential provider config .*missing\.yaml: cannot read/);
});

t.test('must show: with the plugin failing, hanging, malformed or missing: unverifiable, never denied', async (t) => {
  const cases: [string, RegExp][] = [
    ['failing-provider', /"failing-provider" exited with status 1: error getting credentials: no instance role/],
    ['hanging-provider', /"hanging-provider" did not answer within 10000 ms/],
    ['malformed-provider', /"malformed-provider" answered something that is not JSON/],
    ['missing-provider', /"missing-provider" is not installed/],
  ];
  // --timeout 20s: plugins get half of it; all at once, in this process.
  const results = await Promise.all(
    cases.map(([name]) => check([`${token.host}/team/app:1.0`], name, ['--timeout', '20s'])),
  );
  cases.forEach(([name, said], i) => {
    const r = results[i]!;
    const f = r.findings[0]!;
    t.same([f.verdict, f.reason], ['risk', 'unverifiable'], name);
    t.match(f.message, said, name);
    t.equal(r.code, 3, `${name}: exit 3, unverified, not failed`);
  });
});

t.test('serve: the webhook uses the plugins after the pod’s secrets; a failing plugin only warns', async (t) => {
  const server = await serve(null, {
    mode: 'enforce',
    registry: { insecure: [token.host] },
    credentials: {
      providerConfig: join(dir, 'test-registry-credential-provider.yaml'),
      providerBinDir: bin,
    },
  });
  const failing = await serve(null, {
    mode: 'enforce',
    registry: { insecure: [token.host] },
    credentials: { providerConfig: join(dir, 'failing-provider.yaml'), providerBinDir: bin },
  });
  try {
    const regs = { plain: token, secure: token, appDigest: '' };
    const ok = await server.review(podReview(regs, [{ name: 'app', image: `${token.host}/team/app:1.0` }]));
    t.equal(ok.allowed, true);
    t.notOk(ok.warnings?.length, JSON.stringify(ok.warnings));
    const missing = await server.review(podReview(regs, [{ name: 'app', image: `${token.host}/team/app:9.9` }]));
    t.equal(missing.allowed, false, 'a missing tag is denied: the plugin’s credentials got in');
    t.match(missing.status?.message ?? '', 'tag');
    const unknown = await failing.review(podReview(regs, [{ name: 'app', image: `${token.host}/team/app:1.0` }]));
    t.equal(unknown.allowed, true, 'a failing plugin never denies');
    t.match(unknown.warnings?.join('\n') ?? '', /failing-provider/);
    t.notOk(server.log.text().includes(grace.password), 'no secret in the log');
    t.notOk((await server.get('/metrics')).text.includes(grace.password), 'nor in the metrics');
  } finally {
    await Promise.all([server.close(), failing.close()]);
  }
});

/**
 * A plugin that logs its start and end and waits in between for the test to let it go (a file named
 * after its PID), answering with the cacheKeyType its config names; its config, and its log read as
 * runs and the most runs ever in flight.
 */
function gatedPlugin(name: string, keyType: 'Registry' | 'Image') {
  const log = gateLog(join(dir, `gate-${name}`));
  const gate = log.dir;
  writeFileSync(
    join(bin, 'gate-provider'),
    `#!/bin/sh
cat > /dev/null
echo "start $$" >> "$GATE/log"
while [ ! -e "$GATE/go-$$" ]; do sleep 0.1; done
echo "end $$" >> "$GATE/log"
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"%s","cacheDuration":"10m","auth":{"%s":{"username":"%s","password":"%s"}}}' "$1" "$REGISTRY" "$USER_NAME" "$PLUGIN_PASSWORD"
`,
  );
  chmodSync(join(bin, 'gate-provider'), 0o755);
  const config = join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    [
      'apiVersion: kubelet.config.k8s.io/v1',
      'kind: CredentialProviderConfig',
      'providers:',
      '  - name: gate-provider',
      `    matchImages: ["${token.host}"]`,
      '    defaultCacheDuration: 12h',
      '    apiVersion: credentialprovider.kubelet.k8s.io/v1',
      `    args: [${keyType}]`,
      '    env:',
      `      - {name: GATE, value: "${gate}"}`,
      `      - {name: REGISTRY, value: "${token.host}"}`,
      `      - {name: USER_NAME, value: "${grace.username}"}`,
      `      - {name: PLUGIN_PASSWORD, value: "${grace.password}"}`,
      '',
    ].join('\n'),
  );
  return {
    config,
    runs: () => log.started().length,
    maxInFlight: log.maxInFlight,
    releaseUntil: <T>(done: Promise<T>) => log.releaseUntil(done, 'the command to finish'),
  };
}

t.test('must show: 60 images, one plugin: at most 2 of its processes at once; with Registry, one run', async (t) => {
  const images = Array.from({ length: 60 }, (_, i) => `${token.host}/team/app${i ? `-${i}` : ''}:1.0`);
  for (const keyType of ['Registry', 'Image'] as const) {
    const plugin = gatedPlugin(`cli-${keyType}`, keyType);
    // --timeout 120s: the plugin gets 60 s, a net for a busy machine, not a pace.
    const r = await plugin.releaseUntil(
      runProcess(
        [
          'check',
          ...images,
          '--insecure-registry',
          token.host,
          '--image-credential-provider-config',
          plugin.config,
          '--image-credential-provider-bin-dir',
          bin,
          '--timeout',
          '120s',
          '-o',
          'json',
        ],
        { env: { PATH: process.env.PATH ?? '', NO_COLOR: '1' } },
      ),
    );
    const findings = JSON.parse(r.stdout).findings as Record<string, any>[];
    t.equal(findings.length, 60);
    t.same(
      findings.filter((f) => f.reason === 'unverifiable').map((f) => f.message),
      [],
      `${keyType}: every image was checked with the plugin's credentials`,
    );
    t.equal(findings[0]!.reason, 'available', `${keyType}: the one image that exists is ok`);
    t.ok(
      plugin.maxInFlight() <= PLUGIN_CONCURRENCY,
      `${keyType}: at most ${PLUGIN_CONCURRENCY} in flight (saw ${plugin.maxInFlight()})`,
    );
    t.equal(plugin.runs(), keyType === 'Registry' ? 1 : 60, `${keyType}: runs for 60 images (saw ${plugin.runs()})`);
    noSecret(t, r.stdout + r.stderr);
  }
});

t.test('must show: a review of a pod with 100 containers of one registry: one plugin run', async (t) => {
  const plugin = gatedPlugin('webhook', 'Registry');
  const server = await serve(null, {
    mode: 'enforce',
    deadline: 25_000,
    registry: { insecure: [token.host] },
    credentials: { providerConfig: plugin.config, providerBinDir: bin },
  });
  t.teardown(() => server.close());
  const regs = { plain: token, secure: token, appDigest: '' };
  const containers = Array.from({ length: 100 }, (_, i) => ({
    name: `c${i}`,
    image: `${token.host}/team/app-${i}:1.0`,
  }));
  const answer = await plugin.releaseUntil(server.review(podReview(regs, containers)));
  t.equal(answer.allowed, false, 'denied: 99 of the images do not exist, which the plugin’s credentials showed');
  t.notMatch(answer.status?.message ?? '', /unverifiable|credential provider plugin/);
  t.equal(plugin.runs(), 1, `one run for the 100 images of one registry (saw ${plugin.runs()})`);
  t.ok(plugin.maxInFlight() <= 1, `one process at a time (saw ${plugin.maxInFlight()})`);
});
