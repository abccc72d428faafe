// pullguard beside a real podman given the same registries.conf (podman and CRI-O read it with the
// same library, containers/image): every image is pulled by podman and checked by
// `pullguard check --registries-conf`, and the two must agree. The images' hosts (*.test) resolve
// nowhere: only the registries.conf leads to the loopback registries.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCheck } from '../../src/cli/check.ts';
import { runInProcess } from '../helpers/cli.ts';
import { startPodman, type PodmanPull } from '../helpers/podman.ts';
import { startRegistry } from '../helpers/registry.ts';

const podman = await startPodman();
t.teardown(() => podman.stop());
const [mirror, upstream] = await Promise.all([startRegistry(), startRegistry()]);
t.teardown(() => Promise.all([mirror.stop(), upstream.stop()]));

await upstream.pushImage('demo/app', '1.0');
await upstream.pushImage('moved/app', '1.0');
await mirror.pushImage('only/mirror', '1.0');
const mirrorOnly = await mirror.pushImage('digest/only', '1.0');
await mirror.pushImage('pgdemo/app', '1.0');

const dir = mkdtempSync(join(tmpdir(), 'pg-regconf-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const main = join(dir, 'registries.conf');
writeFileSync(
  main,
  `unqualified-search-registries = ["${mirror.host}"]
short-name-mode = "enforcing"

[[registry]]
location = "${mirror.host}"
insecure = true

[[registry]]
location = "${upstream.host}"
insecure = true

# a CRI-O mirror: asked first, the location last
[[registry]]
prefix = "up.pgbar.test"
location = "${upstream.host}"
insecure = true
[[registry.mirror]]
location = "${mirror.host}"
insecure = true

# prefix rewrite; the longer prefix wins over rw.pgbar.test
[[registry]]
prefix = "rw.pgbar.test"
location = "${mirror.host}/nothing-here"
insecure = true
[[registry]]
prefix = "rw.pgbar.test/team"
location = "${upstream.host}/moved"
insecure = true

# blocked applies to the registry a source's own reference falls under
[[registry]]
location = "blocked.pgbar.test"
blocked = true

# the mirror is used for digests only
[[registry]]
prefix = "dig.pgbar.test"
location = "${upstream.host}"
insecure = true
mirror-by-digest-only = true
[[registry.mirror]]
location = "${mirror.host}"
insecure = true
`,
);
// two search registries in enforcing mode: a short name is ambiguous
const ambiguous = join(dir, 'ambiguous.conf');
writeFileSync(
  ambiguous,
  `unqualified-search-registries = ["${mirror.host}", "${upstream.host}"]
short-name-mode = "enforcing"
[[registry]]
location = "${mirror.host}"
insecure = true
[[registry]]
location = "${upstream.host}"
insecure = true
`,
);

interface Case {
  form: string;
  image: string;
  conf: string;
  runtime: PodmanPull['class'];
  reason: string;
  says?: RegExp;
}

const cases: Case[] = [
  {
    form: 'CRI-O mirror',
    image: 'up.pgbar.test/only/mirror:1.0',
    conf: main,
    runtime: 'ok',
    reason: 'available',
    says: /served by mirror/,
  },
  {
    form: 'CRI-O mirror miss, location serves',
    image: 'up.pgbar.test/demo/app:1.0',
    conf: main,
    runtime: 'ok',
    reason: 'available',
    says: /served by upstream .*did not have it/,
  },
  {
    form: 'prefix rewrite (longest prefix wins)',
    image: 'rw.pgbar.test/team/app:1.0',
    conf: main,
    runtime: 'ok',
    reason: 'available',
  },
  {
    form: 'blocked',
    image: 'blocked.pgbar.test/demo/app:1.0',
    conf: main,
    runtime: 'blocked',
    reason: 'blocked',
    says: /registry blocked\.pgbar\.test is blocked in/,
  },
  {
    form: 'digest-only mirror, by tag',
    image: 'dig.pgbar.test/digest/only:1.0',
    conf: main,
    runtime: 'not-found',
    reason: 'repository-not-found',
  },
  {
    form: 'digest-only mirror, by digest',
    image: `dig.pgbar.test/digest/only@${mirrorOnly.digest}`,
    conf: main,
    runtime: 'ok',
    reason: 'available',
    says: /served by mirror/,
  },
  {
    form: 'short name on CRI-O (one search registry)',
    image: 'pgdemo/app:1.0',
    conf: main,
    runtime: 'ok',
    reason: 'available',
    says: /on CRI-O nodes "pgdemo\/app:1\.0" means/,
  },
  {
    form: 'short name on CRI-O, ambiguous in enforcing mode',
    image: 'pgdemo/app:1.0',
    conf: ambiguous,
    runtime: 'short-name',
    reason: 'blocked',
    says: /short-name resolution enforced/,
  },
];

const table: string[] = [`| form | image | pullguard | podman ${podman.version} |`, '| --- | --- | --- | --- |'];
for (const c of cases) {
  t.test(c.form, async (t) => {
    const pulled = await podman.pull(c.image, c.conf);
    t.equal(pulled.class, c.runtime, `podman: ${pulled.error ?? 'pulled'}`);
    const ran = await runInProcess(runCheck, ['--registries-conf', c.conf, '-o', 'json', '--timeout', '30s', c.image]);
    const [f] = (JSON.parse(ran.stdout) as { findings: { reason: string; message: string }[] }).findings;
    t.equal(f?.reason, c.reason, f?.message ?? ran.stderr);
    if (c.says) t.match(f?.message, c.says);
    t.equal(f?.reason === 'available', pulled.pulled, 'pullguard and podman agree');
    table.push(
      `| ${c.form} | \`${c.image.replace(/@sha256:(.{8}).*/, '@sha256:$1…')}\` | ${f?.reason}: ${f?.message.replace(/\|/g, '\\|')} | ${pulled.pulled ? 'pulled' : pulled.error} |`,
    );
  });
}
t.teardown(() => {
  if (process.env.PULLGUARD_TABLE) writeFileSync(process.env.PULLGUARD_TABLE, `${table.join('\n')}\n`);
});
