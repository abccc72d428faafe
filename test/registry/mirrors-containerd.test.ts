// pullguard beside a real containerd given the same hosts directory: every image is pulled by
// containerd (`ctr images pull --hosts-dir`) and checked by `pullguard check --hosts-dir`, and the
// two must agree. The images' hosts (*.test, docker.io) resolve nowhere here: only the hosts
// directory leads to the loopback registries.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCheck } from '../../src/cli/check.ts';
import { runInProcess } from '../helpers/cli.ts';
import { startContainerd, type PullClass } from '../helpers/containerd.ts';
import { startRegistry } from '../helpers/registry.ts';

const ctrd = await startContainerd();
t.teardown(() => ctrd.stop());
const [mirror, upstream] = await Promise.all([startRegistry(), startRegistry()]);
t.teardown(() => Promise.all([mirror.stop(), upstream.stop()]));

await mirror.pushImage('demo/app', '1.0');
await upstream.pushImage('demo/app', '1.0');
await upstream.pushImage('only/upstream', '1');
await mirror.pushImage('dockerhub/library/app', '1.0');
const mirrorOnly = await mirror.pushImage('only/mirror', '1');

const dir = mkdtempSync(join(tmpdir(), 'pg-hostsdir-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const write = (host: string, text: string) => {
  mkdirSync(join(dir, host));
  writeFileSync(join(dir, host, 'hosts.toml'), text);
};
write('up.pgbar.test', `server = "${upstream.url}"\n\n[host."${mirror.url}"]\n  capabilities = ["pull", "resolve"]\n`);
write(
  'docker.io',
  `[host."${mirror.url}/v2/dockerhub"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n`,
);
write('pull.pgbar.test', `server = "${upstream.url}"\n\n[host."${mirror.url}"]\n  capabilities = ["pull"]\n`);

interface Case {
  form: string;
  image: string;
  /** what containerd must do */
  runtime: PullClass;
  /** pullguard's reason */
  reason: string;
  /** the finding's message must say this (which host serves it) */
  says?: RegExp;
}

const cases: Case[] = [
  {
    form: 'mirror hit',
    image: 'up.pgbar.test/demo/app:1.0',
    runtime: 'ok',
    reason: 'available',
    says: /served by mirror/,
  },
  {
    form: 'mirror miss with fallback',
    image: 'up.pgbar.test/only/upstream:1',
    runtime: 'ok',
    reason: 'available',
    says: /served by upstream .* did not have it/,
  },
  { form: 'both miss', image: 'up.pgbar.test/demo/app:nope', runtime: 'not-found', reason: 'tag-not-found' },
  {
    form: 'override_path (docker.io, no internet)',
    image: 'app:1.0',
    runtime: 'ok',
    reason: 'available',
    says: /mirror/,
  },
  {
    form: 'capabilities: tag on a pull-only mirror',
    image: 'pull.pgbar.test/only/mirror:1',
    runtime: 'not-found',
    reason: 'repository-not-found',
  },
  {
    form: 'capabilities: digest on a pull-only mirror',
    image: `pull.pgbar.test/only/mirror@${mirrorOnly.digest}`,
    runtime: 'ok',
    reason: 'available',
    says: /served by mirror/,
  },
];

/** The reference containerd is handed: the kubelet's normalized form (docker.io/library/ for short names). */
function qualified(image: string): string {
  return image.includes('/') && image.split('/')[0]!.includes('.') ? image : `docker.io/library/${image}`;
}

const table: string[] = ['| form | image | pullguard | containerd 1.6 |', '| --- | --- | --- | --- |'];
for (const c of cases) {
  t.test(c.form, async (t) => {
    const pulled = await ctrd.pull(qualified(c.image), { hostsDir: dir });
    t.equal(pulled.class, c.runtime, `containerd: ${pulled.error ?? 'pulled'}`);
    const ran = await runInProcess(runCheck, ['--hosts-dir', dir, '-o', 'json', '--timeout', '30s', c.image]);
    const [f] = (JSON.parse(ran.stdout) as { findings: { reason: string; message: string }[] }).findings;
    t.equal(f?.reason, c.reason, f?.message ?? ran.stderr);
    if (c.says) t.match(f?.message, c.says);
    // agreement: pullguard says available exactly when containerd pulls
    t.equal(f?.reason === 'available', pulled.pulled, 'pullguard and containerd agree');
    table.push(
      `| ${c.form} | \`${c.image.replace(/@sha256:(.{8}).*/, '@sha256:$1…')}\` | ${f?.reason}: ${f?.message.replace(/\|/g, '\\|')} | ${pulled.pulled ? 'pulled' : pulled.error} |`,
    );
  });
}
t.teardown(() => {
  if (process.env.PULLGUARD_TABLE) writeFileSync(process.env.PULLGUARD_TABLE, `${table.join('\n')}\n`);
});
