// `pullguard check` as CI runs it: the real command against real registries, its table, its JSON
// and its exit codes.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { runInProcess, runProcess } from '../helpers/cli.ts';
import { runCheck } from '../../src/cli/check.ts';
import { deleteBlob } from '../helpers/registry-states.ts';

const alice = { username: 'alice', password: 'alice-s3cret!' };
let anon: TestRegistry;
let priv: TestRegistry;
let dir: string;
let digest: string;

t.before(async () => {
  [anon, priv] = await Promise.all([
    startRegistry({ auth: 'none', proxy: true }),
    startRegistry({ auth: 'htpasswd', users: [alice] }),
  ]);
  digest = (await anon.pushImage('demo/app', '1.0', { platform: 'linux/amd64' })).digest;
  await anon.pushTags('demo/app', ['1.1', '1.2'], { platform: 'linux/amd64' });
  await anon.pushIndex('demo/app', 'multi', ['linux/amd64', 'linux/arm64/v8']);
  await priv.pushImage('team/secret', '1.0');
  anon.resetCounters();
  dir = mkdtempSync(join(tmpdir(), 'pullguard-cli-'));
  writeFileSync(
    join(dir, 'docker-config.json'),
    JSON.stringify({
      auths: { [priv.host]: { auth: Buffer.from(`${alice.username}:${alice.password}`).toString('base64') } },
    }),
  );
  writeFileSync(join(dir, 'ca.pem'), priv.caPem!);
});
t.teardown(async () => {
  await Promise.all([anon.stop(), priv.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** The real CLI process. */
const cli = (args: string[], input?: string) => runProcess(['check', ...args], { input });

/** In process, for the many small cases. */
const inProcess = (args: string[], opts: { stdin?: string; isTTY?: boolean } = {}) =>
  runInProcess(runCheck, args, opts);

const reg = () => ['--insecure-registry', anon.host];

t.test('must show: one verdict and reason per case, from the real command', async (t) => {
  const images = {
    existing: `${anon.host}/demo/app:1.0`,
    missingTag: `${anon.host}/demo/app:1.3`,
    missingRepo: `${anon.host}/demo/nope:1.0`,
    privateNoCreds: `${priv.host}/team/secret:1.0`,
    digest: `${anon.host}/demo/app@${digest}`,
    indexWithoutPlatform: `${anon.host}/demo/app:multi`,
    malformed: `${anon.host}/demo/App:1.0`,
  };
  const r = await cli([
    ...Object.values(images),
    ...reg(),
    '--registry-ca',
    join(dir, 'ca.pem'),
    '--platform',
    'linux/s390x',
    '-o',
    'json',
  ]);
  t.equal(r.code, 1, 'exit 1: some image would fail');
  const out = JSON.parse(r.stdout) as {
    findings: {
      image: string;
      verdict: string;
      reason: string;
      suggestions?: string[];
      digest?: string;
      message: string;
      hint: string;
    }[];
    summary: Record<string, number>;
  };
  const by = (image: string) => out.findings.find((f) => f.image === image)!;
  // Single-arch images are also checked against --platform; linux/s390x matches nothing here.
  t.same(
    [by(images.existing).verdict, by(images.existing).reason],
    ['fail', 'platform-not-found'],
    'a single amd64 image on s390x nodes',
  );
  t.same([by(images.missingTag).reason, by(images.missingTag).suggestions], ['tag-not-found', ['1.0', '1.1', '1.2']]);
  t.equal(by(images.missingRepo).reason, 'repository-not-found');
  t.equal(by(images.privateNoCreds).reason, 'access-denied');
  t.equal(by(images.indexWithoutPlatform).reason, 'platform-not-found');
  t.match(by(images.indexWithoutPlatform).message, 'offers linux/amd64, linux/arm64/v8');
  t.equal(by(images.malformed).reason, 'invalid-reference');
  t.equal(by(images.digest).reason, 'platform-not-found');
  t.same(out.summary, { uses: 7, verified: 0, failed: 7, risky: 0, unverified: 0 });
  for (const f of out.findings) t.notMatch(f.message + f.hint, /[\u0000-\u001f]/, 'one line');
});

t.test('must show: available images, with and without credentials and platforms', async (t) => {
  const r = await cli([
    `${anon.host}/demo/app:1.0`,
    `${anon.host}/demo/app@${digest}`,
    `${anon.host}/demo/app:multi`,
    `${priv.host}/team/secret:1.0`,
    ...reg(),
    '--registry-ca',
    join(dir, 'ca.pem'),
    '--docker-config',
    join(dir, 'docker-config.json'),
    '--platform',
    'linux/amd64',
    '-o',
    'json',
  ]);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { findings: { reason: string; digest?: string }[] };
  t.same(
    out.findings.map((f) => f.reason),
    ['available', 'available', 'available', 'available'],
  );
  t.equal(out.findings[1]!.digest, digest);
  const arm = await cli([`${anon.host}/demo/app:multi`, ...reg(), '--platform', 'linux/arm64', '-o', 'json']);
  t.equal(arm.code, 0, 'the index has linux/arm64');
});

t.test('must show: a hanging registry is answered by the deadline as timeout', async (t) => {
  const hanging = /\/manifests\/1\.2$/;
  anon.proxy!.fault({ kind: 'hang' }, { path: hanging });
  t.teardown(() => anon.proxy!.clearRules());
  // Measured from the request the registry never answers, so what comes before it (seconds on a
  // busy machine) does not count: without the deadline the command would wait forever; with it, it
  // ends about one deadline later. The margin is generous and scales with the deadline. When the
  // deadline passed before that request was even sent, this run says nothing: again with a longer one.
  for (const deadline of [1000, 4000, 16000]) {
    anon.proxy!.resetLog();
    const r = await cli([`${anon.host}/demo/app:1.2`, ...reg(), '--timeout', `${deadline}ms`, '-o', 'json']);
    const exited = Date.now();
    t.equal(r.code, 3, 'not a failure, but not verified either');
    t.equal(JSON.parse(r.stdout).findings[0].reason, 'timeout');
    const asked = anon.proxy!.requests({ path: hanging })[0]?.at;
    if (!asked) {
      t.comment(`the ${deadline} ms deadline passed before the manifest was asked for; again with a longer one`);
      continue;
    }
    t.ok(
      exited - asked < deadline * 10,
      `answered ${exited - asked} ms after the hanging request (deadline ${deadline} ms)`,
    );
    break;
  }
  t.ok(anon.proxy!.requests({ path: hanging }).length, 'the registry was asked');
  const strict = await cli([`${anon.host}/demo/app:1.2`, ...reg(), '--timeout', '1s', '--strict', '-o', 'json']);
  t.equal(strict.code, 1, '--strict turns risks into failures');
  t.equal(JSON.parse(strict.stdout).findings[0].verdict, 'fail');
});

t.test('50 copies of one new image make one request per thing fetched', async (t) => {
  const docs = Array.from(
    { length: 50 },
    (_, i) =>
      `apiVersion: v1\nkind: Pod\nmetadata: {name: p${i}, namespace: shop}\nspec:\n  containers: [{name: app, image: "${anon.host}/demo/app:1.1"}]\n`,
  ).join('---\n');
  anon.resetCounters();
  const r = await cli(['-f', '-', ...reg(), '-o', 'json'], docs);
  t.equal(r.code, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).findings.length, 50);
  t.equal(anon.proxy!.count({ method: 'HEAD', path: /\/manifests\// }), 1, 'one HEAD of the tag for 50 uses');
  t.equal(anon.proxy!.count(), 4, 'and one GET of the manifest and config and one HEAD of the layer');
});

t.test('manifests: every kind, multi-document YAML, JSON, List, folders, stdin', async (t) => {
  const m = join(dir, 'manifests');
  mkdirSync(join(m, 'nested'), { recursive: true });
  const img = `${anon.host}/demo/app:1.0`;
  writeFileSync(
    join(m, 'workloads.yaml'),
    [
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    spec:\n      initContainers: [{name: init, image: "${img}"}]\n      containers: [{name: web, image: "${anon.host}/demo/app:9.9"}]\n`,
      `apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{name: job, image: "${img}"}]\n`,
      `apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n`,
      '',
    ].join('---\n'),
  );
  writeFileSync(
    join(m, 'nested', 'list.json'),
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'apps/v1',
          kind: 'StatefulSet',
          metadata: { name: 'db' },
          spec: {
            template: {
              spec: {
                containers: [{ name: 'db', image: img }],
                volumes: [{ name: 'data', image: { reference: img } }],
              },
            },
          },
        },
      ],
    }),
  );
  writeFileSync(join(m, 'notes.txt'), 'not a manifest');
  const r = await inProcess(['-f', m, ...reg(), '-o', 'json']);
  t.equal(r.code, 1, r.stderr);
  const findings = JSON.parse(r.stdout).findings as {
    object: { kind: string; name: string };
    container: string;
    field: string;
    reason: string;
  }[];
  // Files in sorted path order (nested/list.json before workloads.yaml), objects in file order.
  t.same(
    findings.map((f) => [f.object.kind, f.container, f.reason]),
    [
      ['StatefulSet', 'db', 'available'],
      ['StatefulSet', 'volume data', 'available'],
      ['Deployment', 'init', 'available'],
      ['Deployment', 'web', 'tag-not-found'],
      ['CronJob', 'job', 'available'],
    ],
  );
  t.equal(findings[4]!.field, 'spec.jobTemplate.spec.template.spec.containers[0].image');
});

t.test('text output: a table with the cause and the fix, colour only on a terminal', async (t) => {
  const plain = await inProcess([`${anon.host}/demo/app:1.3`, ...reg()]);
  t.equal(plain.code, 1);
  t.match(plain.stdout, /OUTCOME\s+REASON\s+IMAGE\s+WHERE/);
  t.match(plain.stdout, /failed\s+tag-not-found/);
  t.match(plain.stdout, 'fix: use an existing tag');
  t.match(plain.stdout, '1 image use: 0 verified, 1 failed, 0 risky, 0 unverified');
  t.notMatch(plain.stdout, /\u001b\[/, 'no colour when not a terminal');
  const tty = await inProcess([`${anon.host}/demo/app:1.3`, ...reg()], { isTTY: true });
  t.match(tty.stdout, /\u001b\[31m/, 'red on a terminal');
});

t.test('--offline: every check that needs no registry, and not-checked (never available) for the rest', async (t) => {
  anon.resetCounters();
  const pod = `apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: local, image: "${anon.host}/demo/app:1.0", imagePullPolicy: Never}\n  - {name: pinned, image: "${anon.host}/demo/app@${digest}"}\n`;
  const r = await inProcess(
    [
      `${anon.host}/demo/app:1.3`,
      'Bad/Name',
      'localhost/tool:1',
      '-f',
      '-',
      '--offline',
      '--platform',
      'linux/arm64',
      '-o',
      'json',
    ],
    { stdin: pod },
  );
  t.equal(r.code, 1, 'the invalid reference fails');
  const findings = JSON.parse(r.stdout).findings as { reason: string; verdict: string; message: string }[];
  t.same(
    findings.map((f) => [f.verdict, f.reason]),
    [
      ['risk', 'not-checked'],
      ['fail', 'invalid-reference'],
      ['risk', 'unverifiable'],
      ['risk', 'unverifiable'],
      ['risk', 'not-checked'],
    ],
  );
  t.match(findings[0]!.message, 'with --offline the registry was not asked');
  t.match(findings[3]!.message, 'imagePullPolicy Never', 'pull policy Never is still reported');
  t.match(
    findings[4]!.message,
    'whether it has a build for linux/arm64 is not known either (the digest pins the image, not its platforms)',
  );
  t.equal(anon.proxy!.count(), 0, 'no request');
  const valid = await inProcess([`${anon.host}/demo/app:1.3`, '--offline']);
  t.equal(valid.code, 3, 'nothing verified: 3');
  t.notMatch(valid.stdout, /available/);
});

t.test('pods that name pull secrets pullguard cannot read get a warning, not a failure', async (t) => {
  const pod = `apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  imagePullSecrets: [{name: regcred}]\n  containers: [{name: app, image: "${priv.host}/team/secret:1.0"}]\n`;
  const r = await inProcess(['-f', '-', '--registry-ca', join(dir, 'ca.pem'), '-o', 'json'], { stdin: pod });
  t.equal(r.code, 3, 'not verified');
  const f = JSON.parse(r.stdout).findings[0];
  t.equal(f.reason, 'unverifiable');
  t.match(f.message, 'imagePullSecrets (regcred) could not be read');
});

t.test('bad usage and unreadable input: exit 2 with the file and the line', async (t) => {
  writeFileSync(join(dir, 'broken.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n');
  const broken = await cli(['-f', join(dir, 'broken.yaml')]);
  t.equal(broken.code, 2);
  t.match(broken.stderr, `${join(dir, 'broken.yaml')}:`);
  t.match(broken.stderr, /broken\.yaml:\d+/, 'with the line');
  const cases: [string[], RegExp][] = [
    [[], /name at least one IMAGE/],
    [['-f', join(dir, 'missing.yaml')], /missing\.yaml: no such file/],
    [['x', '--output', 'xml'], /--output must be text, json, sarif, junit or github/],
    [['x', '--platform', 'linux/arm/v99/extra'], /platform/],
    [['x', '--timeout', 'soon'], /--timeout/],
    [['x', '--docker-config', join(dir, 'nope.json')], /cannot read docker config/],
    [['x', '--bogus'], /Unknown option/],
    [['x', '--config', join(dir, 'broken.yaml')], /invalid configuration/],
  ];
  for (const [args, re] of cases) {
    const r = await inProcess(args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, re);
  }
  const help = await inProcess(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, 'Usage: pullguard check');
});

t.test('a layer missing from the repository fails the check; --no-verify-layers does not look at layers', async (t) => {
  const img = await anon.pushImage('demo/broken', '1.0', { seed: 'cli-broken-layer' });
  await deleteBlob(anon, 'demo/broken', img.layerDigest);
  const image = `${anon.host}/demo/broken:1.0`;
  const r = await inProcess([...reg(), '-o', 'json', image]);
  t.equal(r.code, 1, r.stderr);
  const [f] = JSON.parse(r.stdout).findings;
  t.equal(f.reason, 'blob-missing');
  t.match(f.message, img.layerDigest);
  const off = await inProcess([...reg(), '--no-verify-layers', '-o', 'json', image]);
  t.equal(off.code, 0, off.stderr);
  t.equal(JSON.parse(off.stdout).findings[0].reason, 'available');
  const help = await inProcess(['--help']);
  t.match(help.stdout, '--no-verify-layers');
});
