// `pullguard check` output for CI, through the real command against real registries: every format
// from one multi-file input, SARIF against the SARIF 2.1.0 schema, JUnit read back by an XML
// parser, GitHub workflow commands with their escaping, and the exit-code table.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import AjvModule from 'ajv-draft-04';
import formatsModule from 'ajv-formats';
import { XMLParser } from 'fast-xml-parser';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { runInProcess, runProcess } from '../helpers/cli.ts';
import { repoRoot } from '../helpers/fixtures.ts';
import { silentServer } from '../helpers/silent.ts';
import { annotation, escapeData, escapeProperty, renderGithub } from '../../src/cli/output/github.ts';
import { renderJson } from '../../src/cli/output/json.ts';
import { renderJunit } from '../../src/cli/output/junit.ts';
import { renderSarif } from '../../src/cli/output/sarif.ts';
import { renderText } from '../../src/cli/output/text.ts';
import { buildReport } from '../../src/cli/report.ts';
import { highestFirst } from '../../src/preflight/suggest.ts';
import type { Finding } from '../../src/findings.ts';
import { runCheck } from '../../src/cli/check.ts';

let reg: TestRegistry;
let dir: string;
let dead: string;

t.before(async () => {
  reg = await startRegistry({ auth: 'none' });
  await reg.pushImage('demo/app', '1.0', { platform: 'linux/amd64' });
  await reg.pushIndex('demo/app', 'multi', ['linux/amd64', 'linux/arm64/v8']);
  dead = `127.0.0.1:${await freePort()}`;
  dir = mkdtempSync(join(tmpdir(), 'pullguard-output-'));
});
t.teardown(async () => {
  await reg.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The real CLI process, in `cwd` so that file names in the output are relative as in CI. */
async function cli(
  args: string[],
  opts: { input?: string; cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...opts.env };
  if (!opts.env?.COLUMNS) delete env.COLUMNS;
  return runProcess(['check', ...args], { input: opts.input ?? '', cwd: opts.cwd ?? dir, env });
}

/** In process, for the many small cases. */
const inProcess = (
  args: string[],
  opts: { stdin?: string; env?: Record<string, string>; stderrIsTTY?: boolean } = {},
) => runInProcess(runCheck, args, opts);

const pod = (name: string, containers: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: shop\nspec:\n  containers:\n${containers}`;

/**
 * Two files: multi-document YAML (ok, fail) and a JSON List (risk, unverified, and the ok pod of
 * the YAML file again, so the same finding has two places).
 */
function writeInput(): {
  yaml: string;
  json: string;
  images: { ok: string; fail: string; risk: string; unverified: string };
} {
  const images = {
    ok: `${reg.host}/demo/app:multi`,
    fail: `${reg.host}/demo/app:9.9`,
    risk: `${reg.host}/demo/app:1.0`,
    unverified: `${dead}/demo/app:1.0`,
  };
  mkdirSync(join(dir, 'deploy'), { recursive: true });
  const yaml = [
    pod('web', `  - name: web\n    image: "${images.ok}"\n`),
    pod('api', `  - name: api\n    image: ${images.fail}\n`),
  ].join('---\n');
  writeFileSync(join(dir, 'deploy', 'a.yaml'), yaml);
  const list = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'worker', namespace: 'shop' },
        spec: { template: { spec: { containers: [{ name: 'worker', image: images.risk }] } } },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'legacy', namespace: 'shop' },
        spec: { containers: [{ name: 'legacy', image: images.unverified }] },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'shop' },
        spec: { containers: [{ name: 'web', image: images.ok }] },
      },
    ],
  };
  writeFileSync(join(dir, 'deploy', 'b.json'), JSON.stringify(list, null, 2));
  return { yaml: 'deploy/a.yaml', json: 'deploy/b.json', images };
}

/** 1-based line and column of the first occurrence of `needle` after `after` in a file. */
function positionOf(file: string, needle: string, after = ''): { line: number; column: number } {
  const text = readFileSync(join(dir, file), 'utf8');
  const offset = text.indexOf(needle, after ? text.indexOf(after) : 0);
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: before.at(-1)!.length + 1 };
}

t.test('must show: every format on one multi-file input with ok, risk, fail and unverified findings', async (t) => {
  const { yaml, json, images } = writeInput();
  // out/ does not exist yet: writing fails with exit 2 and a clear line.
  const r = await inProcess(['-f', join(dir, yaml), '--offline', '--output', `json=${join(dir, 'missing', 'x.json')}`]);
  t.equal(r.code, 2, 'a file that cannot be written is exit 2');
  t.match(r.stderr, /cannot write .*x\.json: its folder does not exist/);
  mkdirSync(join(dir, 'out'), { recursive: true });
  const all = await cli([
    '-f',
    yaml,
    '-f',
    json,
    '--insecure-registry',
    reg.host,
    '--platform',
    'linux/amd64,linux/arm64',
    '--timeout',
    '5000',
    '--output',
    'json=out/findings.json',
    '--output',
    'sarif=out/results.sarif',
    '--output',
    'junit=out/junit.xml',
    '--output',
    'github=out/github.txt',
    '--output',
    'text',
  ]);
  t.equal(all.code, 1, `exit 1: an image would fail\n${all.stderr}`);

  // JSON: one entry per use, each with its file, line and column.
  const out = JSON.parse(readFileSync(join(dir, 'out/findings.json'), 'utf8')) as {
    findings: {
      image: string;
      reason: string;
      outcome: string;
      source?: { file: string; line: number; column: number };
    }[];
    summary: Record<string, number>;
    exitCode: number;
  };
  const byImage = (image: string) => out.findings.filter((f) => f.image === image);
  t.same(
    out.findings.map((f) => [f.outcome, f.reason]),
    [
      ['verified', 'available'],
      ['failed', 'tag-not-found'],
      ['risky', 'platform-not-found'],
      ['unverified', 'registry-unreachable'],
      ['verified', 'available'],
    ],
  );
  t.same(out.summary, { uses: 5, verified: 2, failed: 1, risky: 1, unverified: 1 });
  t.equal(out.exitCode, 1);
  t.same(byImage(images.fail)[0]!.source, { file: yaml, ...positionOf(yaml, images.fail) }, 'YAML, second document');
  t.same(byImage(images.ok)[0]!.source, { file: yaml, ...positionOf(yaml, `"${images.ok}"`) }, 'the quoted scalar');
  t.same(byImage(images.risk)[0]!.source, { file: json, ...positionOf(json, `"${images.risk}"`) }, 'JSON List item');
  t.same(byImage(images.ok)[1]!.source, { file: json, ...positionOf(json, `"${images.ok}"`) });

  // SARIF: valid against the SARIF 2.1.0 schema, one result per use that is not ok, located.
  const sarif = JSON.parse(readFileSync(join(dir, 'out/results.sarif'), 'utf8'));
  const schema = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/sarif/sarif-schema-2.1.0.json'), 'utf8'));
  // CommonJS packages: their `exports.default` is the class (the draft-04 one: the schema is draft-04).
  const ajv = new AjvModule.default({ allErrors: true, strict: false });
  formatsModule.default(ajv);
  const validate = ajv.compile(schema);
  t.ok(validate(sarif), `valid SARIF 2.1.0: ${ajv.errorsText(validate.errors)}`);
  const run0 = sarif.runs[0];
  t.equal(run0.tool.driver.name, 'pullguard');
  const rule = run0.tool.driver.rules.find((r: { id: string }) => r.id === 'tag-not-found');
  t.match(rule.help.text, /tag that exists/, "a rule's help is the reason's fix");
  t.same(
    run0.results.map((r: { ruleId: string; level: string }) => [r.ruleId, r.level]),
    [
      ['tag-not-found', 'error'],
      ['platform-not-found', 'warning'],
      ['registry-unreachable', 'warning'],
    ],
  );
  for (const r of run0.results)
    t.equal(run0.tool.driver.rules[r.ruleIndex].id, r.ruleId, 'ruleIndex points at its rule');
  t.same(run0.results[0].locations[0].physicalLocation, {
    artifactLocation: { uri: 'deploy/a.yaml' },
    region: { startLine: positionOf(yaml, images.fail).line, startColumn: positionOf(yaml, images.fail).column },
  });

  // JUnit: parsed back by an XML parser; fail = failure, unverified = error, risk = skipped.
  const xml = readFileSync(join(dir, 'out/junit.xml'), 'utf8');
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    isArray: (n) => ['testsuite', 'testcase', 'property'].includes(n),
  });
  const doc = parser.parse(xml, true);
  const suites = doc.testsuites.testsuite as { name: string; tests: string; testcase: Record<string, unknown>[] }[];
  t.same(
    suites.map((s) => [s.name, s.tests]),
    [
      [yaml, '2'],
      [json, '3'],
    ],
  );
  t.same(
    [doc.testsuites.tests, doc.testsuites.failures, doc.testsuites.errors, doc.testsuites.skipped],
    ['5', '1', '1', '1'],
  );
  const cases = suites.flatMap((s) => s.testcase);
  const kindOf = (c: Record<string, unknown>) =>
    c.failure ? 'failure' : c.error ? 'error' : c.skipped !== undefined ? 'skipped' : 'passed';
  t.same(cases.map(kindOf), ['passed', 'failure', 'skipped', 'error', 'passed']);
  t.match(cases[1]!.name, `Pod shop/api, container "api": ${images.fail}`);
  t.equal(cases[1]!.line, String(positionOf(yaml, images.fail).line));
  t.match((cases[1]!.failure as Record<string, string>)['#text'], /fix: /);

  // GitHub: an annotation per use that is not ok, at its file, line and column.
  const gh = readFileSync(join(dir, 'out/github.txt'), 'utf8').trimEnd().split('\n');
  t.equal(gh.length, 3);
  const at = positionOf(yaml, images.fail);
  t.match(
    gh[0],
    new RegExp(`^::error file=deploy/a\\.yaml,line=${at.line},col=${at.column},title=pullguard tag-not-found%3A `),
  );
  t.match(gh[0], /%0Afix: /, 'the fix on its own line');
  t.match(gh[1], /^::warning file=deploy\/b\.json,/);
  t.match(gh[2], /^::warning .*registry-unreachable/);

  // Text on stdout at the same time: identical findings grouped with both places.
  t.match(all.stdout, /OUTCOME\s+REASON\s+IMAGE\s+WHERE/);
  const okRows = all.stdout.split('\n').filter((l) => l.includes(images.ok) && l.startsWith('verified'));
  t.equal(okRows.length, 1, 'one row for the image used twice');
  t.match(all.stdout, `${yaml}:${positionOf(yaml, `"${images.ok}"`).line}:`);
  t.match(all.stdout, `${json}:${positionOf(json, `"${images.ok}"`).line}:`);
  t.match(all.stdout, '5 image uses: 2 verified, 1 failed, 1 risky, 1 unverified');
});

t.test('must show: GitHub commands escaped as the runner documents it', async (t) => {
  t.equal(escapeData('100% done\r\nnext: line'), '100%25 done%0D%0Anext: line');
  t.equal(escapeProperty('a:b,c%\n'), 'a%3Ab%2Cc%25%0A');
  const f: Finding = {
    image: 'reg:5000/app:1',
    reference: 'reg:5000/app:1',
    container: 'web',
    field: 'spec.containers[0].image',
    object: { kind: 'Pod', namespace: 'shop', name: 'web' },
    verdict: 'fail',
    reason: 'tag-not-found',
    message: 'quota 100% used: see\nthe log',
    hint: 'retry',
    evidence: [],
    source: { file: 'dir,x/a:b.yaml', line: 3, column: 12 },
  };
  t.equal(
    annotation(f),
    '::error file=dir%2Cx/a%3Ab.yaml,line=3,col=12,title=pullguard tag-not-found%3A reg%3A5000/app%3A1::' +
      'Pod shop/web, container "web": quota 100%25 used: see%0Athe log%0Afix: retry',
  );
});

t.test('must show: the exit-code table', async (t) => {
  const { images } = writeInput();
  // The three the issue names, through the real command.
  const empty = await cli(['-f', '-'], { input: '\n' });
  t.equal(empty.code, 2, 'empty input is exit 2');
  t.match(empty.stderr, /no Kubernetes object in -.*pipefail.*--allow-empty/);
  const unreachable = await cli([images.unverified, '--timeout', '5s']);
  t.equal(unreachable.code, 3, 'an unreachable registry is exit 3');
  t.match(unreachable.stdout, '1 image use: 0 verified, 0 failed, 0 risky, 1 unverified');
  const accepted = await cli([images.unverified, '--timeout', '5s', '--allow-unverified']);
  t.equal(accepted.code, 0, '--allow-unverified turns 3 into 0');
  writeFileSync(
    join(dir, 'bad.yaml'),
    `${pod('num', '  - name: web\n    image: 42\n  - name: side\n    image: "nginx:1.25"\n')}---\n${pod('none', '  - name: noimage\n    ports: [{containerPort: 80}]\n')}`,
  );
  const bad = await cli(['-f', 'bad.yaml']);
  t.equal(bad.code, 2, 'image: 42 is exit 2');
  const num = positionOf('bad.yaml', '42');
  t.match(
    bad.stderr,
    `bad.yaml:${num.line}:${num.column}: Pod shop/num, container "web": spec.containers[0].image: image must be a string, not a number (42)`,
  );
  const none = positionOf('bad.yaml', 'name: noimage');
  t.match(
    bad.stderr,
    `bad.yaml:${none.line}:${none.column}: Pod shop/none, container "noimage": spec.containers[0].image: image is required`,
  );
  t.equal(bad.stdout, '', 'nothing is checked');

  // The rest of the table, in process.
  const comments = await inProcess(['-f', '-'], { stdin: '# helm template failed\n---\n' });
  t.equal(comments.code, 2, 'only comments and separators: still no object');
  const allowed = await inProcess(['-f', '-', '--allow-empty'], { stdin: '' });
  t.equal(allowed.code, 0, '--allow-empty accepts it');
  t.match(allowed.stdout, '0 image uses');
  const strict = await inProcess([images.unverified, '--timeout', '5s', '--strict']);
  t.equal(strict.code, 1, '--strict: a risk fails');
  const strictAllowed = await inProcess([images.unverified, '--timeout', '5s', '--strict', '--allow-unverified']);
  t.equal(strictAllowed.code, 0, '--strict --allow-unverified: unverified is accepted');
  const platforms = ['--insecure-registry', reg.host, '--platform', 'linux/amd64,linux/arm64'];
  t.equal((await inProcess([images.risk, ...platforms])).code, 0, 'a verified image with a risk: 0');
  t.equal((await inProcess([images.risk, ...platforms, '--strict'])).code, 1, 'with --strict: 1');
  const offline = await inProcess([images.ok, '--offline']);
  t.equal(offline.code, 3, '--offline verifies nothing: 3');
  t.equal((await inProcess([images.ok, '--offline', '--allow-unverified'])).code, 0);
});

t.test('text: the table fits COLUMNS, wraps at word boundaries, and is not wrapped when piped', async (t) => {
  const { yaml, json } = writeInput();
  const args = [
    '-f',
    join(dir, yaml),
    '-f',
    join(dir, json),
    '--insecure-registry',
    reg.host,
    '--platform',
    'linux/amd64,linux/arm64',
    '--timeout',
    '5s',
  ];
  const message = JSON.parse((await inProcess([...args, '-o', 'json'])).stdout).findings[1].message as string;
  const words = (s: string) => s.split(/\s+/).filter(Boolean).join(' ');
  for (const width of [60, 80, 160]) {
    const r = await inProcess(args, { env: { COLUMNS: String(width) } });
    const lines = r.stdout.trimEnd().split('\n');
    t.ok(
      lines.every((l) => l.length <= width),
      `no line longer than ${width}`,
    );
    const start = lines.findIndex((l) => l.includes('tag-not-found'));
    const shown = lines.slice(start + 1).filter((l) => /^ {4}\S/.test(l) && !/^ {4}(fix|at) /.test(l));
    t.match(words(shown.join(' ')), words(message), `${width}: the message, broken only between words`);
  }
  const piped = await inProcess(args);
  t.ok(
    piped.stdout.split('\n').some((l) => l === `    ${message}`),
    'piped without COLUMNS: the message stays on one line',
  );
});

t.test('--quiet prints only what is not ok; --version', async (t) => {
  const { images } = writeInput();
  const quiet = await inProcess([images.ok, images.fail, '--insecure-registry', reg.host, '--quiet']);
  t.equal(quiet.code, 1);
  t.notMatch(quiet.stdout, images.ok);
  t.match(quiet.stdout, images.fail);
  t.equal(quiet.stderr, '', 'no notes either');
  const silent = await inProcess([images.ok, '--insecure-registry', reg.host, '--quiet']);
  t.same([silent.code, silent.stdout], [0, ''], 'all ok: nothing at all');
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
  const v = await cli(['--version']);
  t.same([v.code, v.stdout], [0, `pullguard ${pkg.version}\n`]);
});

t.test('--output: bad values are usage errors', async (t) => {
  for (const [value, re] of [
    [['-o', 'xml'], /--output must be text, json, sarif, junit or github/],
    [['-o', 'sarif='], /needs a file name/],
    [['-o', 'text', '-o', 'json'], /only one --output can go to stdout/],
    [['-o', 'github', '-o', 'json', '-o', 'text'], /only one --output can go to stdout/],
  ] as const) {
    const r = await inProcess(['nginx', ...value]);
    t.equal(r.code, 2, value.join(' '));
    t.match(r.stderr, re);
  }
});

t.test('progress on stderr when it is a terminal and the check takes more than a second', async (t) => {
  const { images } = writeInput();
  // A registry that accepts connections and never answers: the check lasts until its deadline.
  const silent = await silentServer();
  t.teardown(silent.stop);
  const host = silent.host;
  const slow = [
    `${host}/demo/app:1.0`,
    images.ok,
    '--insecure-registry',
    reg.host,
    '--insecure-registry',
    host,
    '--timeout',
    '3s',
  ];
  const tty = await inProcess(slow, { stderrIsTTY: true });
  t.match(tty.stderr, /\rchecked \d\/2 images/, 'the count, redrawn in place');
  t.match(tty.stderr, /\r\u001b\[K$/, 'and cleared at the end');
  const piped = await inProcess(slow);
  t.notMatch(piped.stderr, /checked/, 'not when stderr is not a terminal');
});

t.test(
  'messages for people: a missing tag names the tags that exist; TLS to plain HTTP names --insecure-registry',
  async (t) => {
    const missing = await inProcess([`${reg.host}/demo/app:nope`, '--insecure-registry', reg.host, '-o', 'json']);
    t.equal(missing.code, 1);
    const f = JSON.parse(missing.stdout).findings[0];
    t.equal(f.reason, 'tag-not-found');
    t.match(f.message, 'tag "nope" does not exist in');
    t.match(f.message, 'It has 2 tags: "1.0", "multi".', 'how many, and which');
    const tls = await inProcess([`${reg.host}/demo/app:1.0`, '-o', 'json', '--timeout', '5s']);
    t.equal(tls.code, 3, 'unreachable: not verified');
    const u = JSON.parse(tls.stdout).findings[0];
    t.equal(u.reason, 'registry-unreachable');
    t.match(u.message, 'the registry is unreachable over TLS: it answered in plain HTTP, not TLS');
    t.match(u.hint, `if ${reg.host} serves plain HTTP, pass --insecure-registry ${reg.host}`);
  },
);

t.test('highest versions first', async (t) => {
  t.same(highestFirst(['1.9', 'latest', '1.10', 'v2.0', 'multi', '1.10.1', '1.9']), [
    'v2.0',
    '1.10.1',
    '1.10',
    '1.9',
    'latest',
    'multi',
  ]);
});

t.test('stdin is the file -: positions, JUnit and SARIF without a file location', async (t) => {
  const input = `apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: "Bad&<Name>:1"\n`;
  const json = await inProcess(['-f', '-', '--offline', '-o', 'json'], { stdin: input });
  t.equal(json.code, 1);
  t.same(JSON.parse(json.stdout).findings[0].source, { file: '-', line: 7, column: 12 });
  const junit = await inProcess(['-f', '-', '--offline', '-o', 'junit'], { stdin: input });
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(junit.stdout, true);
  t.equal(doc.testsuites.testsuite.name, 'stdin');
  t.equal(doc.testsuites.testsuite.testcase.name, 'Pod p, container "a": Bad&<Name>:1', 'markup escaped and read back');
  const sarif = JSON.parse((await inProcess(['-f', '-', '--offline', '-o', 'sarif'], { stdin: input })).stdout);
  t.notOk(sarif.runs[0].results[0].locations[0].physicalLocation, 'no file to point at');
  t.match(sarif.runs[0].results[0].locations[0].logicalLocations[0].fullyQualifiedName, 'spec.containers[0].image');
});

t.test('names from a manifest cannot put control characters on the terminal', async (t) => {
  const { objectText, placeText } = await import('../../src/cli/report.ts');
  const where = objectText({
    object: { kind: 'Deployment', namespace: 'shop', name: 'web\u001b[2J' },
    container: 'app\nfake: line',
    field: 'spec.template.spec.containers[0].image',
  });
  t.notMatch(where, /[\u0000-\u001f\u007f-\u009f]/, where);
  t.match(where, /^Deployment shop\/web \[2J, container "app fake: line"$/);
  const place = placeText({ source: { file: 'a\u0007.yaml', line: 3, column: 14 } } as never);
  t.equal(place, 'a .yaml:3:14');
});

t.test('one word for one thing: each row says its outcome in the words the summary counts', async (t) => {
  const { yaml, json, images } = writeInput();
  const args = ['-f', join(dir, yaml), '-f', join(dir, json), '--insecure-registry', reg.host];
  const more = ['--platform', 'linux/amd64,linux/arm64', '--timeout', '5s'];
  const text = (await inProcess([...args, ...more])).stdout;
  const rows = text.split('\n').filter((l) => /^\S/.test(l) && !l.startsWith('OUTCOME') && !/image uses?:/.test(l));
  const word = (image: string) => rows.find((l) => l.includes(image))?.split(/\s+/)[0];
  t.same(
    [word(images.ok), word(images.fail), word(images.risk), word(images.unverified)],
    ['verified', 'failed', 'risky', 'unverified'],
    'an unreachable registry is "unverified" in its row, as in the summary (not "risk")',
  );
  t.match(text, '5 image uses: 2 verified, 1 failed, 1 risky, 1 unverified');
  t.match(text, /^OUTCOME\s+REASON/m, 'the column is named for what it holds');
  const findings = JSON.parse((await inProcess([...args, ...more, '-o', 'json'])).stdout).findings;
  t.same(
    findings.map((f: { verdict: string }) => f.verdict),
    ['ok', 'fail', 'risk', 'risk', 'ok'],
    "JSON's verdict keeps its values",
  );
});

t.test('messages: "must be lowercase" once; without a docker config, the fix names the flags', async (t) => {
  const upper = await inProcess(['Nginx:1.0', '--offline', '-o', 'json']);
  const f = JSON.parse(upper.stdout).findings[0] as Finding;
  t.equal(f.reason, 'invalid-reference');
  t.equal(f.message.split('must be lowercase').length - 1, 1, f.message);
  t.match(
    f.message,
    'repository name (library/Nginx) must be lowercase; the first uppercase letter is "N" at position 1',
  );

  const user = { username: 'ci', password: 'ci-pa55-word' };
  const locked = await startRegistry({ auth: 'htpasswd', users: [user] });
  t.teardown(() => locked.stop());
  await locked.pushImage('team/app', '1.0');
  const image = `${locked.host}/team/app:1.0`;
  const none = await inProcess([image, '--registry-ca', locked.caFile!, '-o', 'json']);
  const denied = JSON.parse(none.stdout).findings[0] as Finding;
  t.equal(denied.reason, 'access-denied');
  t.match(denied.message, `no credentials for ${locked.host} in the command line (no --docker-config given`);
  t.equal(
    denied.hint,
    `log in to ${locked.host} (docker login) or give --docker-config FILE with credentials for it; ` +
      "or give --kubeconfig to check with the pod's own imagePullSecrets",
  );
  t.notMatch(denied.hint, 'to the pod or its ServiceAccount', "not the webhook's fix");
});

/**
 * What the GitHub Actions runner takes for a workflow command in a line (actions/runner,
 * ActionCommand.TryParseV2 and TryParse): "::name …::data" after leading whitespace, or "##[name …]"
 * anywhere. Any name counts here (the runner only acts on registered ones: stricter).
 */
function runnerCommand(line: string): { name: string; props: string; data: string } | undefined {
  const trimmed = line.replace(/^[\s\u0085]+/u, '');
  if (trimmed.startsWith('::')) {
    const end = trimmed.indexOf('::', 2);
    if (end >= 0) {
      const info = trimmed.slice(2, end);
      const space = info.indexOf(' ');
      return {
        name: space < 0 ? info : info.slice(0, space),
        props: space < 0 ? '' : info.slice(space + 1),
        data: trimmed.slice(end + 2),
      };
    }
  }
  const at = line.indexOf('##[');
  const close = at < 0 ? -1 : line.indexOf(']', at);
  if (close >= 0) return { name: line.slice(at + 3, close).split(' ')[0]!, props: '', data: line.slice(close + 1) };
  return undefined;
}

/** The runner's unescaping of a command's data and of its property values. */
const unescapeData = (s: string) => s.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');
const unescapeProperty = (s: string) => unescapeData(s.replace(/%3A/g, ':').replace(/%2C/g, ','));

const HOSTILE_IMAGES = [
  'registry.example.com/shop/app:1 ::error::PWNED',
  '::warning title=x::PWNED',
  'registry.example.com/a ##[error]PWNED',
  '\u3000::error::PWNED after a wide space',
  `${'x'.repeat(37)}::error::PWNED`,
  'ok/image:1 ::add-mask::secret ::stop-commands::t0k3n',
];

t.test('no line of text output passes for a workflow command, at any width (built output functions)', async (t) => {
  const findings: Finding[] = HOSTILE_IMAGES.map((image, i) => ({
    image,
    reference: '',
    container: `c${i} ::error::C`,
    field: `spec.containers[${i}].image`,
    object: { kind: 'Pod', namespace: 'shop', name: '::error::name' },
    verdict: 'fail',
    reason: 'invalid-reference',
    message: `image "${image}" is invalid ::error::M ##[warning]M`,
    hint: 'write it ::error::H',
    evidence: ['::error::E'],
    source: { file: `deploy/::error::f${i}.yaml`, line: 3, column: 12 },
  }));
  const report = buildReport(findings, { strict: false, allowUnverified: false });
  let rendered = 0;
  for (const width of [undefined, ...Array.from({ length: 141 }, (_, i) => 20 + i)]) {
    for (const quiet of [false, true]) {
      const out = renderText(report, { color: false, width, quiet });
      rendered++;
      const bad = out.split('\n').filter((l) => runnerCommand(l));
      if (bad.length) t.fail(`width ${width}: ${bad.length} lines read as commands: ${JSON.stringify(bad[0])}`);
    }
  }
  t.equal(rendered, 284, 'every width from 20 to 160, and unwrapped');
  t.match(
    renderText(report, { color: false, width: 60 }),
    /^ {4}\\::error::M ##\\\[warning\]M$/m,
    'escaped, and shown',
  );

  for (const [format, out] of [
    ['json', renderJson(report, '0.1.0')],
    ['sarif', renderSarif(report, '0.1.0')],
    ['junit', renderJunit(report)],
  ] as const) {
    const bad = out.split('\n').filter((l) => runnerCommand(l));
    t.same(bad, [], `${format}: no line reads as a command`);
  }
  const json = JSON.parse(renderJson(report, '0.1.0'));
  t.same(
    json.findings.map((f: { image: string }) => f.image),
    HOSTILE_IMAGES,
    'JSON reads back the images unchanged',
  );
  const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', htmlEntities: true });
  const doc = xml.parse(renderJunit(report), true);
  t.match(doc.testsuites.testsuite[2].testcase.name, HOSTILE_IMAGES[2]!, 'JUnit too');

  // github: one command per finding, ours, with data and properties that unescape to what was meant.
  const lines = renderGithub(report).trimEnd().split('\n');
  t.equal(lines.length, findings.length);
  lines.forEach((line, i) => {
    const c = runnerCommand(line);
    t.equal(c?.name, 'error', `line ${i}: an error annotation`);
    const props = Object.fromEntries(
      c!.props.split(',').map((p) => {
        const [k, v] = p.split(/=(.*)/s) as [string, string];
        return [k, unescapeProperty(v)];
      }),
    );
    t.same(props, {
      file: findings[i]!.source!.file,
      line: '3',
      col: '12',
      title: `pullguard invalid-reference: ${findings[i]!.image}`,
    });
    t.equal(
      unescapeData(c!.data),
      `Pod shop/::error::name, container "c${i} ::error::C": ${findings[i]!.message}\nfix: write it ::error::H`,
    );
  });
});

t.test('through the CLI at COLUMNS=100 and in GitHub Actions: only the annotations are commands', async (t) => {
  const folder = join(dir, '::error::deploy');
  mkdirSync(folder, { recursive: true });
  const containers = HOSTILE_IMAGES.map((image, i) => `  - name: c${i}\n    image: ${JSON.stringify(image)}\n`).join(
    '',
  );
  writeFileSync(join(folder, '::warning::pods.yaml'), `${pod('web', containers)}---\n${pod('api', containers)}`);
  const commandLines = (out: string) => out.split('\n').filter((l) => runnerCommand(l));
  for (const env of [{ COLUMNS: '100' }, { COLUMNS: '60' }, { GITHUB_ACTIONS: 'true' }] as Record<string, string>[]) {
    const text = await cli(['-f', '::error::deploy', '--offline'], { env });
    t.equal(text.code, 1, text.stderr);
    t.same(commandLines(text.stdout), [], `text, ${JSON.stringify(env)}: no line reads as a command`);
    t.same(commandLines(text.stderr), [], 'nor on stderr');
    for (const format of ['json', 'sarif', 'junit']) {
      const r = await cli(['-f', '::error::deploy', '--offline', '-o', format], { env });
      t.same(commandLines(r.stdout), [], `${format}: none`);
    }
  }
  // text and github together on stdout, as in a workflow step: the annotations and nothing else.
  const both = await cli(['-f', '::error::deploy', '--offline', '-o', 'text', '-o', 'github'], {
    env: { COLUMNS: '100', GITHUB_ACTIONS: 'true' },
  });
  const commands = commandLines(both.stdout);
  t.equal(commands.length, HOSTILE_IMAGES.length * 2, 'one annotation per image use');
  t.ok(
    commands.every((l) =>
      /^::error file=%3A%3Aerror%3A%3Adeploy\/%3A%3Awarning%3A%3Apods\.yaml,line=\d+,col=\d+,title=/.test(l),
    ),
    'each of them ours, at its file',
  );
});
