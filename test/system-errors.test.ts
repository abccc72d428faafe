// A file or socket that fails says what happened in words and what to do, in one line with its
// path or address: never only Node's code (ENOENT, EADDRINUSE), never a stack trace. Through the
// real commands, as a person meets them.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemErrorText } from '../src/system-errors.ts';
import { runProcess, type Ran } from './helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullguard-syserr-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
// Only what is given: no KUBECONFIG or credential stores of the machine.
const env = { PATH: process.env.PATH ?? '', HOME: dir, NO_COLOR: '1' };

const taken = createServer();
await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
t.teardown(() => taken.close());
const takenPort = (taken.address() as AddressInfo).port;

function oneLineNoStack(a: Pick<typeof t, 'notMatch' | 'equal'>, r: Ran): void {
  a.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  a.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  a.notMatch(r.stderr, /\bE[A-Z]{3,}\b/, 'no bare error code');
}

t.test('a registry CA file that is not there: its path, "no such file" and the flag to check', async (t) => {
  const ca = join(dir, 'nope', 'ca.pem');
  const r = await runProcess(['check', '127.0.0.1:1/app:1', '--registry-ca', ca], { env });
  t.equal(r.code, 2, 'exit 2');
  t.equal(r.stderr, `pullguard check: registry CA ${ca}: no such file (check --registry-ca or registry.caFiles)\n`);
  oneLineNoStack(t, r);
});

t.test('an output file in a folder that does not exist: its path and "its folder does not exist"', async (t) => {
  const out = join(dir, 'missing', 'out.sarif');
  const r = await runProcess(['check', 'nginx:1.25', '--offline', '--output', `sarif=${out}`], { env });
  t.equal(r.code, 2, 'exit 2');
  t.match(r.stderr, `pullguard check: cannot write ${out}: its folder does not exist (create it, or write elsewhere)`);
  oneLineNoStack(t, r);
});

const serve = (...args: string[]) =>
  runProcess(['serve', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', ...args], { env });

t.test('a webhook port another process holds: the address, "already in use" and the setting', async (t) => {
  const r = await serve('--port', String(takenPort));
  t.equal(r.code, 2, 'exit 2, not a hang');
  t.match(
    r.stderr,
    `pullguard serve: cannot listen on 127.0.0.1:${takenPort}: the address is already in use by another process (choose another server.port or --port)`,
  );
  oneLineNoStack(t, r);
});

t.test('a metrics port another process holds: the address, "already in use" and the setting', async (t) => {
  const r = await serve('--metrics-port', String(takenPort));
  t.equal(r.code, 2, 'exit 2, not a hang');
  t.match(
    r.stderr,
    `pullguard serve: cannot listen on 127.0.0.1:${takenPort} (server.metricsPort): the address is already in use by another process (choose another server.metricsPort or --metrics-port; 0 serves metrics on the webhook's port)`,
  );
  oneLineNoStack(t, r);
});

t.test('the words depend on what was being done; an unknown code gets the system description', async (t) => {
  const enoent = Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT', errno: -2 });
  t.equal(systemErrorText(enoent, 'read'), 'no such file');
  t.equal(systemErrorText(enoent, 'write'), 'its folder does not exist');
  const busy = Object.assign(new Error('EXDEV: cross-device link not permitted'), { code: 'EXDEV', errno: -18 });
  t.equal(systemErrorText(busy, 'write'), 'cross-device link not permitted', 'the system words, not EXDEV');
  t.equal(systemErrorText(new Error('key values mismatch'), 'read'), 'key values mismatch', 'not a system error');
  t.equal(systemErrorText(new Error('two\nlines'), 'read'), 'two lines', 'one line');
  const pem = Object.assign(new Error('error:0480006C:PEM routines::no start line'), { library: 'PEM routines' });
  t.equal(systemErrorText(pem, 'read'), 'no start line', "OpenSSL's reason, not its error line");
  const tls = new Error(
    '40A346D7447F0000:error:0A00010B:SSL routines:tls_validate_record_header:wrong version number:../deps/openssl/openssl/ssl/record/methods/tlsany_meth.c:78:',
  );
  t.equal(systemErrorText(tls, 'read'), 'wrong version number');
});
