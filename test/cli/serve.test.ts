// `pullguard serve` as a process: a bad configuration stops start-up with exit 2 and the path of
// every wrong field; PULLGUARD_* variables override the file and flags override both; SIGTERM
// ends it cleanly.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseServeArgs } from '../../src/cli/serve.ts';
import { ConfigError } from '../../src/config/schema.ts';
import { sharedPki } from '../helpers/pki.ts';
import { repoRoot } from '../helpers/fixtures.ts';
import { call, client, podReview, type Obj } from '../server/lib.ts';

const NODE = join(repoRoot, 'node_modules/.bin/node');
const MAIN = join(repoRoot, 'src/cli/main.ts');
const pki = await sharedPki();
const dir = mkdtempSync(join(tmpdir(), 'pullguard-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The real CLI, with an environment of only what is given (no KUBECONFIG of the machine). */
function pullguard(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(NODE, [MAIN, ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exit };
}

const started: Proc[] = [];
t.teardown(() => {
  for (const p of started) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

/**
 * The first JSON log line on stdout that `match` accepts. Waits for output, not for a time: a busy
 * machine only makes it later. A process that exits first fails the wait; one that never says it
 * fails the test by tap's timeout.
 */
function logLine(p: Proc, match: (line: Obj) => boolean): Promise<Obj> {
  return new Promise((resolve, reject) => {
    const look = () => {
      // Complete lines only: the last piece may be half a line.
      for (const text of p.stdout().split('\n').slice(0, -1)) {
        if (!text.startsWith('{')) continue;
        const line = JSON.parse(text) as Obj;
        if (match(line)) {
          p.child.stdout!.off('data', look);
          resolve(line);
          return;
        }
      }
    };
    p.child.stdout!.on('data', look);
    p.exit.then(({ code, signal }) => reject(new Error(`exited (${code ?? signal}) first: ${p.stderr()}`)));
    look();
  });
}

// Every start-up failure is spawned at once, here: each process spends a second or two loading
// (far more on a busy machine) before it fails, and the tests below only wait for their exits. No
// test gives a child a time limit: "not a hang" means it exits at all, within tap's file timeout.
const badFile = file(
  'bad.yaml',
  [
    'mode: sometimes',
    'deadline: soon',
    'actions:',
    '  tag-not-found: shrug',
    'server:',
    '  port: 99999',
    '  bodyLimit: -1',
    'registry:',
    '  insecure: registry.local',
    'cache:',
    '  negativeTtl: 10 seconds',
    'log:',
    '  level: loud',
    'colour: blue',
    '',
  ].join('\n'),
);
const brokenFile = file('broken.yaml', 'mode: [enforce\n');
const missingFile = join(dir, 'missing.yaml');
const missingCert = join(dir, 'nope.crt');
const otherKey = (await pki.issue('cli-other')).keyFile;
// The port is taken; the certificate files are fine (and watched, which must not keep the process alive).
const taken = createServer();
await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
t.teardown(() => taken.close());
const takenPort = (taken.address() as AddressInfo).port;
const run = (args: string[], env: Record<string, string> = {}) => {
  const p = pullguard(args, env);
  started.push(p);
  return { p, exit: p.exit };
};
/** `pullguard serve` on loopback with this port and certificate. */
const serveTls = (port: string, cert: string, key: string) => [
  'serve',
  '--host',
  '127.0.0.1',
  '--port',
  port,
  '--tls-cert',
  cert,
  '--tls-key',
  key,
];
const failures = {
  badFile: run(['serve', '--config', badFile]),
  brokenFile: run(['serve', '--config', brokenFile]),
  missingFile: run(['serve', '--config', missingFile]),
  badEnv: run(['serve', '--host', '127.0.0.1', '--port', '0'], {
    PULLGUARD_MODE: 'sometimes',
    PULLGUARD_DEADLINE: 'soon',
  }),
  missingCert: run(serveTls('0', missingCert, pki.server.keyFile)),
  // A key that does not belong to the certificate.
  mismatchedKey: run(serveTls('0', pki.server.certFile, otherKey)),
  portTaken: run(serveTls(String(takenPort), pki.server.certFile, pki.server.keyFile)),
  badKubeconfig: run([...serveTls('0', pki.server.certFile, pki.server.keyFile), '--kubeconfig', missingFile]),
  // No certificate either: a self-signed one would be made (and logged) if anything started.
  watchWithoutCluster: run([
    'serve',
    '--config',
    file('watch.yaml', 'server:\n  host: 127.0.0.1\n  port: 0\n  metricsPort: 0\nwatch:\n  enabled: true\n'),
  ]),
};

t.test('a bad configuration file: exit 2 with the path of every wrong field', async (t) => {
  const { p, exit } = failures.badFile;
  t.equal((await exit).code, 2, 'exit 2');
  const err = p.stderr();
  t.match(err, `invalid configuration in ${badFile}`, 'names the file');
  for (const path of [
    'mode',
    'deadline',
    'actions.tag-not-found',
    'server.port',
    'server.bodyLimit',
    'registry.insecure',
    'cache.negativeTtl',
    'log.level',
  ]) {
    t.match(err, new RegExp(`(^|[ ;:])${path.replace(/\./g, '\\.')}: `), `names ${path}`);
  }
  t.match(err, /colour/, 'and the unknown key');
  t.notMatch(err, /\n\s+at /, 'no stack trace');
  t.equal(p.stdout(), '', 'nothing started');
});

t.test('a file that is not YAML, or not there: exit 2 naming it', async (t) => {
  t.equal((await failures.brokenFile.exit).code, 2);
  t.match(failures.brokenFile.p.stderr(), brokenFile);
  t.equal((await failures.missingFile.exit).code, 2);
  t.match(failures.missingFile.p.stderr(), `${missingFile}: cannot read`);
});

t.test('a bad environment override is a bad configuration too', async (t) => {
  t.equal((await failures.badEnv.exit).code, 2);
  t.match(failures.badEnv.p.stderr(), /mode: /);
  t.match(failures.badEnv.p.stderr(), /deadline: /);
});

t.test('start-up failures are one plain line and exit 2: certificate files, a port in use, a kubeconfig', async (t) => {
  const { missingCert: r1, mismatchedKey: r2, portTaken: r3, badKubeconfig: r4 } = failures;
  t.equal((await r4.exit).code, 2, 'a kubeconfig that cannot be loaded: exit 2');
  t.match(r4.p.stderr(), `cannot load kubeconfig ${missingFile}: no such file (check --kubeconfig or KUBECONFIG)`);
  t.notMatch(r4.p.stderr(), /\n\s+at /, 'no stack trace');
  t.equal((await r1.exit).code, 2, 'missing certificate: exit 2');
  t.match(r1.p.stderr(), `serving certificate ${missingCert}`);
  t.match(r1.p.stderr(), `${missingCert}: no such file (check server.tlsCert and server.tlsKey`);
  t.equal((await r2.exit).code, 2, 'mismatched key: exit 2');
  t.match(r2.p.stderr(), /serving certificate .*MISMATCH|key values mismatch/i);
  t.equal((await r3.exit).code, 2, 'port in use: exit 2, not a hang');
  t.match(r3.p.stderr(), `cannot listen on 127.0.0.1:${takenPort}: the address is already in use`);
  for (const { p } of [r1, r2, r3]) {
    t.notMatch(p.stderr(), /\n\s+at /, 'no stack trace');
    t.equal(p.stderr().trim().split('\n').length, 1, 'one line');
  }
});

t.test('the watch without a cluster: one line naming the setting and the fix, before anything starts', async (t) => {
  const { p, exit } = failures.watchWithoutCluster;
  t.equal((await exit).code, 2, 'exit 2');
  t.equal(
    p.stderr(),
    'pullguard serve: watch.enabled needs cluster access and there is none: give --kubeconfig or KUBECONFIG, or run in a cluster with a service account; or turn the watch off (watch.enabled: false, PULLGUARD_WATCH_ENABLED=false)\n',
  );
  t.equal(p.stdout(), '', 'nothing built or started: no certificate made, no port listened on, no log line');
});

t.test('layers: file < PULLGUARD_* < flags', async (t) => {
  const cfg = file('layers.yaml', 'mode: enforce\ndeadline: 5s\nserver:\n  port: 9443\n');
  const fromFile = parseServeArgs(['--config', cfg], {});
  t.match(fromFile, { mode: 'enforce', deadline: 5000, server: { port: 9443 } });
  const fromEnv = parseServeArgs(['--config', cfg], {
    PULLGUARD_MODE: 'warn',
    PULLGUARD_DEADLINE: '3s',
    PULLGUARD_SERVER_PORT: '7443',
  });
  t.match(fromEnv, { mode: 'warn', deadline: 3000, server: { port: 7443 } });
  const fromFlags = parseServeArgs(['--config', cfg, '--mode', 'audit', '--port', '6443', '--timeout', '2s'], {
    PULLGUARD_MODE: 'warn',
    PULLGUARD_SERVER_PORT: '7443',
  });
  t.match(fromFlags, { mode: 'audit', deadline: 2000, server: { port: 6443 } });
  let caught: unknown;
  try {
    parseServeArgs(['--mode', 'sometimes'], {});
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof ConfigError, 'a bad flag value is a configuration error');
  t.match((caught as ConfigError).issues, [/^mode: /]);
});

t.test('PULLGUARD_MODE overrides the file in the running server; SIGTERM stops it cleanly', async (t) => {
  const cfg = file(
    'serve.yaml',
    [
      'mode: enforce',
      'server:',
      '  host: 127.0.0.1',
      '  port: 0',
      '  metricsPort: 0',
      `  tlsCert: ${pki.server.certFile}`,
      `  tlsKey: ${pki.server.keyFile}`,
      'cluster:',
      '  watchNodes: false',
      '',
    ].join('\n'),
  );
  const p = pullguard(['serve', '--config', cfg], { PULLGUARD_MODE: 'warn' });
  started.push(p);
  const listening = await logLine(p, (l) => l.msg === 'pullguard webhook listening');
  t.equal(listening.mode, 'warn', 'the environment won over the file');
  t.match(listening.address, /^https:\/\/127\.0\.0\.1:\d+$/);

  // An image the kubelet cannot even parse: denied in enforce mode, a warning in warn mode.
  const agent = await client();
  t.teardown(() => agent.close());
  const body = podReview(
    { plain: { host: 'registry.invalid' }, secure: { host: 'registry.invalid' }, appDigest: '' } as never,
    [{ name: 'app', image: 'registry.invalid/Demo/UPPER:1.0' }],
  );
  const res = await call(agent, `${listening.address}/validate`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  t.equal(res.status, 200);
  t.equal(res.json.response.allowed, true);
  t.match(res.json.response.warnings, [/container "app": image "registry\.invalid\/Demo\/UPPER:1\.0" is invalid/]);

  p.child.kill('SIGTERM');
  const { code, signal } = await p.exit;
  t.equal(signal, null, 'not killed by the signal');
  t.equal(code, 0, 'exit 0 after SIGTERM');
  t.match(p.stdout(), /"signal":"SIGTERM".*shutting down/);
  t.equal(p.stderr(), '');
});
