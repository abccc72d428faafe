// A docker credential helper or a kubelet credential provider plugin that fails after printing what
// it had, credentials included (its answer on stdout, or on stderr by mistake, a token in its error
// text): none of it may reach a finding, and so none of the reports made of findings. Each case is
// the real command with every output format at once, written to files.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { runProcess } from '../helpers/cli.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

const FORMATS = ['text', 'json', 'sarif', 'junit', 'github'] as const;
const bob = { username: 'bob', password: 'Bob-Registry-pw-31' };
let priv: TestRegistry;
let dir: string;
let image: string;

t.before(async () => {
  priv = await startRegistry({ auth: 'htpasswd', users: [bob] });
  await priv.pushImage('team/app', '1.0');
  image = `${priv.host}/team/app:1.0`;
  dir = mkdtempSync(join(tmpdir(), 'pullguard-helper-output-'));
  writeFileSync(join(dir, 'ca.pem'), priv.caPem!);
});
t.teardown(async () => {
  await priv.stop();
  rmSync(dir, { recursive: true, force: true });
});

function script(file: string, body: string): void {
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
}

/** `pullguard check IMAGE` with every format written to a file; what each file and stream holds. */
async function checkAllFormats(name: string, args: string[], env: Record<string, string>) {
  const out = join(dir, `out-${name}`);
  mkdirSync(out);
  const keep = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) =>
        !/^(HOME|DOCKER_CONFIG|REGISTRY_AUTH_FILE|XDG_RUNTIME_DIR|XDG_CONFIG_HOME|KUBECONFIG|GITHUB_.*)$/.test(k),
    ),
  );
  const r = await runProcess(
    [
      'check',
      image,
      ...args,
      '--registry-ca',
      join(dir, 'ca.pem'),
      '--timeout',
      '30s',
      ...FORMATS.flatMap((f) => ['--output', `${f}=${join(out, f)}`]),
    ],
    { env: { ...keep, NO_COLOR: '1', ...env } },
  );
  const files = Object.fromEntries(FORMATS.map((f) => [f, readFileSync(join(out, f), 'utf8')])) as Record<
    (typeof FORMATS)[number],
    string
  >;
  return { ...r, files, finding: JSON.parse(files.json).findings[0] as Record<string, any> };
}

type Tap = { notOk(v: unknown, message: string): void };

function nowhere(
  t: Tap,
  r: { stdout: string; stderr: string; files: Record<string, string> },
  secrets: string[],
): void {
  for (const s of secrets) {
    for (const [format, text] of Object.entries(r.files)) t.notOk(text.includes(s), `${format}: no ${s}`);
    t.notOk(r.stdout.includes(s), `stdout: no ${s}`);
    t.notOk(r.stderr.includes(s), `stderr: no ${s}`);
  }
}

/** A home with a docker config naming the helper for the registry, and the helper on PATH. */
function helperHome(name: string, body: string): Record<string, string> {
  const home = join(dir, `home-${name}`);
  mkdirSync(join(home, '.docker'), { recursive: true });
  mkdirSync(join(home, 'bin'));
  writeFileSync(join(home, '.docker', 'config.json'), JSON.stringify({ credHelpers: { [priv.host]: name } }));
  script(join(home, 'bin', `docker-credential-${name}`), body);
  return { HOME: home, PATH: `${join(home, 'bin')}${delimiter}${process.env.PATH}` };
}

t.test('a helper that prints its answer on stdout, then exits 1: the secret is in no output', async (t) => {
  const secret = 'S3CRET-helper-stdout-4417';
  const env = helperHome('pgleak', `read server; printf '{"Username":"bob","Secret":"${secret}"}'; exit 1`);
  const r = await checkAllFormats('stdout', [], env);
  t.match(r.finding.message, /docker-credential-pgleak .*exited with status 1/, r.files.json);
  t.ok(r.files.github.includes('::'), 'the github format wrote its workflow commands');
  nowhere(t, r, [secret]);
});

t.test('a helper that prints JSON with a secret on stderr: not shown; plain stderr is, redacted', async (t) => {
  const secret = 'S3CRET-helper-stderr-9052';
  const json = helperHome(
    'pgjsonerr',
    `read server; printf '{"ServerURL":"%s","Username":"bob","Secret":"${secret}"}' "$server" >&2; exit 1`,
  );
  const token = 'tok3n-Helper-Refresh-8831';
  const plain = helperHome('pgtokenerr', `read server; echo "refresh failed: token=${token}" >&2; exit 4`);
  const [a, b] = await Promise.all([
    checkAllFormats('stderr-json', [], json),
    checkAllFormats('stderr-plain', [], plain),
  ]);
  t.match(a.finding.message, /docker-credential-pgjsonerr .*exited with status 1/, a.files.json);
  nowhere(t, a, [secret, 'ServerURL']);
  t.match(b.finding.message, /docker-credential-pgtokenerr .*exited with status 4: refresh failed: token=\[redacted\]/);
  nowhere(t, b, [token]);
});

t.test('a provider plugin failing with a token on stdout and stderr: the token is in no output', async (t) => {
  const bin = join(dir, 'plugins');
  mkdirSync(bin);
  const password = 'Plugin-Password-6620';
  const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub2RlIn0.c2lnbmF0dXJlLXBsdWdpbg';
  const bearer = 'ya29.Plugin-Bearer-Token-5501';
  // Its whole answer on stdout, then a failure whose text carries the token it got.
  script(
    join(bin, 'leaky-provider'),
    `cat > /dev/null
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","auth":{"%s":{"username":"bob","password":"${password}"}}}' "$REGISTRY"
echo "exchanging ${jwt}: got Bearer ${bearer}, registry refused it" >&2
exit 1`,
  );
  // Its answer, printed to stderr by mistake.
  script(
    join(bin, 'stderr-provider'),
    `cat > /dev/null
printf '{"kind":"CredentialProviderResponse","auth":{"%s":{"username":"bob","password":"${password}"}}}' "$REGISTRY" >&2
exit 1`,
  );
  const config = (name: string) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      [
        'apiVersion: kubelet.config.k8s.io/v1',
        'kind: CredentialProviderConfig',
        'providers:',
        `  - name: ${name}`,
        `    matchImages: ["${priv.host}"]`,
        '    defaultCacheDuration: 1m',
        '    apiVersion: credentialprovider.kubelet.k8s.io/v1',
        `    env: [{name: REGISTRY, value: "${priv.host}"}]`,
        '',
      ].join('\n'),
    );
    return ['--image-credential-provider-config', file, '--image-credential-provider-bin-dir', bin];
  };
  const home = { HOME: join(dir, 'nohome') };
  const [leaky, stderr] = await Promise.all([
    checkAllFormats('plugin-leaky', config('leaky-provider'), home),
    checkAllFormats('plugin-stderr', config('stderr-provider'), home),
  ]);
  t.same([leaky.finding.verdict, leaky.finding.reason], ['risk', 'unverifiable'], leaky.files.json);
  t.match(leaky.finding.message, /"leaky-provider" exited with status 1: exchanging \[redacted\]/);
  nowhere(t, leaky, [password, jwt, bearer]);
  t.match(stderr.finding.message, /"stderr-provider" exited with status 1/, stderr.files.json);
  nowhere(t, stderr, [password, 'CredentialProviderResponse']);
});
