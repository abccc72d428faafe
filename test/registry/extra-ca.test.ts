// --registry-ca adds to the trust Node.js already has instead of replacing it: a registry signed by a
// CA that reaches Node's default store (here through NODE_EXTRA_CA_CERTS, read at process start, so
// the real command runs in a child) is still trusted next to one signed by the CA given.
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createPki } from '../helpers/pki.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { repoRoot } from '../helpers/fixtures.ts';

const run = promisify(execFile);
let given: TestRegistry;
let extra: TestRegistry;
let extraCaFile: string;

t.before(async () => {
  const pki = await createPki();
  extraCaFile = pki.caFile;
  [given, extra] = await Promise.all([
    startRegistry({ auth: 'none', tls: true }),
    startRegistry({ auth: 'none', tls: true, pki }),
  ]);
  await Promise.all([given.pushImage('ca/given', '1.0'), extra.pushImage('ca/extra', '1.0')]);
});
t.teardown(async () => {
  await Promise.all([given.stop(), extra.stop()]);
});

async function check(
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; findings: { image: string; verdict: string; reason: string; message: string }[] }> {
  const args = [
    join(repoRoot, 'src/cli/main.ts'),
    'check',
    `${given.host}/ca/given:1.0`,
    `${extra.host}/ca/extra:1.0`,
    '--registry-ca',
    given.caFile!,
    '-o',
    'json',
  ];
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(NODE_EXTRA_CA_CERTS|KUBECONFIG)$/.test(k)),
  );
  try {
    const { stdout } = await run(process.execPath, args, { cwd: repoRoot, env: { ...clean, NO_COLOR: '1', ...env } });
    return { code: 0, findings: JSON.parse(stdout).findings };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, findings: JSON.parse(e.stdout).findings };
  }
}

t.test('a registry CA given and a CA in Node.js default trust are both trusted', async (t) => {
  const r = await check({ NODE_EXTRA_CA_CERTS: extraCaFile });
  t.equal(r.code, 0, 'exit 0');
  t.same(
    r.findings.map((f) => f.reason),
    ['available', 'available'],
  );
});

t.test('without it, the registry signed by the other CA is not trusted (the test depends on it)', async (t) => {
  const r = await check({});
  const of = (repo: string) => r.findings.find((f) => f.image.includes(`/${repo}:`));
  t.equal(of('ca/given')?.verdict, 'ok');
  t.not(of('ca/extra')?.verdict, 'ok');
  t.match(of('ca/extra')?.message, 'unreachable over TLS: its certificate is signed by an untrusted CA');
});
