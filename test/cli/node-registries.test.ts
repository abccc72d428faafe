// The nodes' registry files on the command line: a file that does not parse, a directory that
// cannot be read and a configuration that mixes registry.endpoints with them are one line each,
// exit 2, no stack trace; unknown keys are warnings on stderr and the check goes on.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCheck } from '../../src/cli/check.ts';
import { runDiagnose } from '../../src/cli/diagnose.ts';
import { runInProcess } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'pg-node-registries-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (path: string, text: string) => {
  mkdirSync(join(dir, path, '..'), { recursive: true });
  writeFileSync(join(dir, path), text);
  return join(dir, path);
};

function oneLine(t: Tap, r: { code: number; stdout: string; stderr: string }, pattern: RegExp) {
  t.equal(r.code, 2, 'exit 2');
  const lines = r.stderr.trim().split('\n');
  t.match(lines[0], pattern);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
}
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('a hosts.toml that does not parse: file, line and key', async (t) => {
  file('bad/up.pgbar.test/hosts.toml', '[host."http://127.0.0.1:1"]\n  capabilities = ["pull"\n');
  const r = await runInProcess(runCheck, ['--hosts-dir', join(dir, 'bad'), 'up.pgbar.test/demo/app:1.0']);
  oneLine(t, r, /bad\/up\.pgbar\.test\/hosts\.toml:\d+: .*key capabilities/);
});

t.test('a hosts directory that does not exist: named, with the flag to check', async (t) => {
  const r = await runInProcess(runCheck, ['--hosts-dir', join(dir, 'nope'), 'up.pgbar.test/demo/app:1.0']);
  oneLine(t, r, /hosts directory .*nope: .*--hosts-dir/);
});

t.test('a registries.conf that does not parse, and one with a bad value', async (t) => {
  const bad = file('crio/bad.conf', '[[registry]]\nlocation = "a.test"\nblocked = maybe\n');
  oneLine(t, await runInProcess(runCheck, ['--registries-conf', bad, 'a.test/x:1']), /bad\.conf:3: .*key blocked/);
  const mode = file('crio/mode.conf', 'short-name-mode = "strict"\n');
  oneLine(
    t,
    await runInProcess(runCheck, ['--registries-conf', mode, 'a.test/x:1']),
    /mode\.conf:1: key short-name-mode: invalid short-name mode: "strict"/,
  );
});

t.test("registry.endpoints beside the nodes' files: a start-up error that says what to write", async (t) => {
  const config = file(
    'endpoints.json',
    JSON.stringify({ registry: { endpoints: { 'docker.io': 'https://mirror.test' } } }),
  );
  file('ok/docker.io/hosts.toml', '[host."https://mirror.test"]\n');
  const r = await runInProcess(runCheck, ['--config', config, '--hosts-dir', join(dir, 'ok'), 'nginx:1.25']);
  oneLine(t, r, /registry\.endpoints cannot be combined .*hosts\.toml `server = "URL"`/);
});

t.test('unknown keys are warnings on stderr; the check goes on', async (t) => {
  file(
    'warn/up.pgbar.test/hosts.toml',
    'server = "http://127.0.0.1:1"\n[host."http://127.0.0.1:1"]\n  capabilites = ["pull"]\n',
  );
  const r = await runInProcess(runCheck, [
    '--hosts-dir',
    join(dir, 'warn'),
    '--timeout',
    '5s',
    '-o',
    'json',
    'up.pgbar.test/demo/app:1.0',
  ]);
  t.match(
    r.stderr,
    /pullguard check: .*hosts\.toml:3: key host\."http:\/\/127\.0\.0\.1:1"\.capabilites: not a containerd/,
  );
  t.equal(
    JSON.parse(r.stdout).findings[0].reason,
    'registry-unreachable',
    'nothing listens there: checked, not refused',
  );
});

t.test('diagnose takes --hosts-dir too', async (t) => {
  const r = await runInProcess(runDiagnose, ['--hosts-dir', join(dir, 'nope')]);
  oneLine(t, r, /hosts directory .*nope/);
});
