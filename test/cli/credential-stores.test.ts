// `pullguard check` with the credentials people already have: docker's and podman's files, and
// docker credential helpers, found without --docker-config.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { runCheck } from '../../src/cli/check.ts';
import { defaultStorePaths } from '../../src/credentials/stores.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { runInProcess, runProcess } from '../helpers/cli.ts';

const erin = { username: 'erin', password: 'Erin-Store-pw-77' };
let priv: TestRegistry;
let dir: string;
let image: string;
const b64 = (u: { username: string; password: string }) =>
  Buffer.from(`${u.username}:${u.password}`).toString('base64');

t.before(async () => {
  priv = await startRegistry({ auth: 'htpasswd', users: [erin] });
  await priv.pushImage('team/secret', '1.0');
  image = `${priv.host}/team/secret:1.0`;
  dir = mkdtempSync(join(tmpdir(), 'pullguard-stores-'));
  writeFileSync(join(dir, 'ca.pem'), priv.caPem!);
});
t.teardown(async () => {
  await priv.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A home directory with the given ~/.docker/config.json, and a bin dir for helpers. */
function home(name: string, dockerConfig: unknown): { HOME: string; bin: string } {
  const h = join(dir, name);
  mkdirSync(join(h, '.docker'), { recursive: true });
  mkdirSync(join(h, 'bin'), { recursive: true });
  writeFileSync(join(h, '.docker', 'config.json'), JSON.stringify(dockerConfig));
  return { HOME: h, bin: join(h, 'bin') };
}

function helper(bin: string, name: string, script: string): void {
  const file = join(bin, `docker-credential-${name}`);
  writeFileSync(file, `#!/bin/sh\n${script}\n`);
  chmodSync(file, 0o755);
}

const inProcess = (args: string[], env: Record<string, string>) => runInProcess(runCheck, args, { env });

async function check(args: string[], env: Record<string, string>) {
  // Nothing of the machine's own stores: only what the test sets.
  const keep = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(HOME|DOCKER_CONFIG|REGISTRY_AUTH_FILE|XDG_RUNTIME_DIR|XDG_CONFIG_HOME|KUBECONFIG)$/.test(k),
    ),
  );
  const out = await runProcess(['check', ...args, '--registry-ca', join(dir, 'ca.pem'), '-o', 'json'], {
    env: { ...keep, NO_COLOR: '1', ...env },
  });
  const findings = (JSON.parse(out.stdout) as { findings: Record<string, any>[] }).findings;
  return { ...out, f: findings[0]! };
}

const noSecret = (t: { notOk: (v: unknown, m: string) => void }, text: string) => {
  t.notOk(text.includes(erin.password), 'the password is not in the output');
  t.notOk(text.includes(b64(erin)), 'nor its base64');
};

t.test('must show: only ~/.docker/config.json, no --docker-config: the private image is ok', async (t) => {
  const h = home('docker-only', { auths: { [priv.host]: { auth: b64(erin) } } });
  const r = await check([image], { HOME: h.HOME });
  t.same([r.f.verdict, r.f.reason], ['ok', 'available'], r.stdout + r.stderr);
  t.match(r.f.evidence.join('\n'), `[file ${join(h.HOME, '.docker', 'config.json')}]`, 'the evidence names the source');
  noSecret(t, r.stdout + r.stderr);

  const none = await inProcess([image, '--registry-ca', join(dir, 'ca.pem'), '-o', 'json'], {
    HOME: join(dir, 'nowhere'),
  });
  t.equal(JSON.parse(none.stdout).findings[0].reason, 'access-denied', 'and without it, denied');
});

t.test('must show: only a credHelpers entry whose helper is a script on PATH: ok', async (t) => {
  const h = home('helper-only', { credHelpers: { [priv.host]: 'pgtest' } });
  helper(
    h.bin,
    'pgtest',
    `[ "$1" = get ] || exit 2
read server
[ "$server" = "${priv.host}" ] || { echo "credentials not found in native keychain"; exit 1; }
printf '{"ServerURL":"%s","Username":"${erin.username}","Secret":"${erin.password}"}' "$server"`,
  );
  const r = await check([image], { HOME: h.HOME, PATH: `${h.bin}${delimiter}${process.env.PATH}` });
  t.same([r.f.verdict, r.f.reason], ['ok', 'available'], r.stdout + r.stderr);
  t.match(r.f.evidence.join('\n'), '[docker-credential-pgtest]');
  noSecret(t, r.stdout + r.stderr);
});

t.test('a missing, failing or hanging helper is a risk that names it, never a crash', async (t) => {
  const h = home('bad-helpers', {});
  // Its error on stderr: what it prints on stdout is never shown (it may be credentials).
  helper(h.bin, 'pgfail', 'echo "the keychain is locked" >&2; exit 3');
  helper(h.bin, 'pghang', 'sleep 600');
  helper(h.bin, 'pgjunk', `echo "not json ${erin.password}"`);
  const PATH = `${h.bin}${delimiter}${process.env.PATH}`;
  const cases: [string, RegExp][] = [
    ['pgmissing', /docker-credential-pgmissing .*is not installed/],
    ['pgfail', /docker-credential-pgfail .*exited with status 3: the keychain is locked/],
    ['pghang', /docker-credential-pghang .*did not answer within 10000 ms/],
    ['pgjunk', /docker-credential-pgjunk .*answered something that is not JSON/],
  ];
  // In process (each real process costs seconds on a loaded machine), all at once, each with its
  // own configuration file; --timeout 20s: helpers get half of it.
  const results = await Promise.all(
    cases.map(async ([name]) => {
      const h2 = home(`bad-${name}`, { credsStore: name });
      return inProcess([image, '--timeout', '20s', '--registry-ca', join(dir, 'ca.pem'), '-o', 'json'], {
        HOME: h2.HOME,
        PATH,
      });
    }),
  );
  cases.forEach(([name, said], i) => {
    const r = results[i]!;
    const f = JSON.parse(r.stdout).findings[0];
    t.same([f.verdict, f.reason], ['risk', 'unverifiable'], name);
    t.match(f.message, said, name);
    t.equal(r.code, 3, `${name}: exit 3, unverified, not failed`);
    noSecret(t, r.stdout + r.stderr);
  });
});

t.test('--docker-config replaces the default stores', async (t) => {
  const h = home('explicit', { auths: { [priv.host]: { auth: b64(erin) } } });
  writeFileSync(join(dir, 'empty.json'), JSON.stringify({ auths: {} }));
  const r = await inProcess(
    [image, '--docker-config', join(dir, 'empty.json'), '--registry-ca', join(dir, 'ca.pem'), '-o', 'json'],
    { HOME: h.HOME },
  );
  t.equal(JSON.parse(r.stdout).findings[0].reason, 'access-denied');
});

t.test(
  'the lookup order: REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, then DOCKER_CONFIG or ~/.docker',
  async (t) => {
    t.same(
      defaultStorePaths({
        HOME: '/h',
        REGISTRY_AUTH_FILE: '/a/auth.json',
        XDG_RUNTIME_DIR: '/run/user/1',
        DOCKER_CONFIG: '/d',
      }),
      ['/a/auth.json', '/run/user/1/containers/auth.json', '/h/.config/containers/auth.json', '/d/config.json'],
    );
    t.same(defaultStorePaths({ HOME: '/h', XDG_CONFIG_HOME: '/c' }), [
      '/c/containers/auth.json',
      '/h/.docker/config.json',
    ]);
  },
);
