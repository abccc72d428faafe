// `pullguard check` on hostile input: a "billion laughs" YAML, input larger than the limit (a file,
// /dev/zero, stdin), a --registry-ca file with no certificate. Each is one line on stderr, exit 2,
// no stack trace, no unbounded memory.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullguard-cli-input-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** The real CLI process, memory capped at 512 MB of heap so that a runaway read fails the test, not the machine. */
const cli = (args: string[], input?: string | Buffer) =>
  runProcess(['check', ...args], { input, nodeArgs: ['--max-old-space-size=512'], timeout: 120_000 });

function oneLineExit2(t: Tap, r: { code: number; stderr: string }, name: string, reason: RegExp): void {
  t.equal(r.code, 2, `${name}: exit 2`);
  // A usage error may add the usual pointer to --help on a line of its own.
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('Run "pullguard'));
  t.equal(lines.length, 1, `${name}: one line: ${r.stderr.trim().slice(0, 200)}`);
  t.match(r.stderr, reason, name);
  t.notMatch(r.stderr, /\n\s+at |node_modules|\.ts:\d+:\d+/, `${name}: no stack trace`);
}
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const LAUGHS = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  'h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]',
  'i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]',
  '',
].join('\n');

t.test('a billion-laughs YAML: one line naming the file and the alias limit, exit 2', async (t) => {
  const file = join(dir, 'laughs.yaml');
  writeFileSync(file, LAUGHS);
  oneLineExit2(t, await cli(['--offline', '-f', file]), 'file', /laughs\.yaml: more than 100 YAML aliases/);
  oneLineExit2(t, await cli(['--offline', '-f', '-'], LAUGHS), 'stdin', /(^|\s)-: more than 100 YAML aliases/);
});

t.test('input over the size limit: a file, /dev/zero and stdin end with one line, exit 2', async (t) => {
  const big = join(dir, 'big.yaml');
  const doc = 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: nginx}]}\n---\n';
  writeFileSync(big, doc.repeat(Math.ceil((33 * 1024 * 1024) / doc.length)));
  oneLineExit2(t, await cli(['--offline', '-f', big]), 'a 33 MiB file', /big\.yaml: larger than 32 MiB/);
  oneLineExit2(t, await cli(['--offline', '-f', '/dev/zero']), '/dev/zero', /\/dev\/zero: larger than 32 MiB/);
  oneLineExit2(
    t,
    await cli(['--offline', '-f', '-'], Buffer.alloc(33 * 1024 * 1024, 'a')),
    'stdin',
    /(^|\s)-: larger than 32 MiB/,
  );
});

t.test('a --registry-ca file with no certificate is refused', async (t) => {
  const junk = join(dir, 'junk.pem');
  writeFileSync(junk, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
  oneLineExit2(
    t,
    await cli(['--registry-ca', junk, 'nginx:1.25']),
    'random bytes',
    /registry CA .*junk\.pem: no PEM certificate/,
  );
  const broken = join(dir, 'broken.pem');
  writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n');
  oneLineExit2(
    t,
    await cli(['--registry-ca', broken, 'nginx:1.25']),
    'a PEM block that is no certificate',
    /does not parse/,
  );
});
