// Heavy packages are loaded only when they are used: @kubernetes/client-node when there is a cluster
// to talk to (a webhook or a check without one never carries its ~60 MiB of heap), selfsigned when a
// certificate must be made (23 MiB; a server given one never makes one). Each case runs in a fresh
// process that records whether the package was ever resolved.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { sharedPki } from '../helpers/pki.ts';
import { repoRoot } from '../helpers/fixtures.ts';

const src = (p: string) => JSON.stringify(pathToFileURL(join(repoRoot, 'src', p)).href);

const CLIENT_NODE = '/node_modules/@kubernetes/client-node/';
const SELFSIGNED = '/node_modules/selfsigned/';

function run(body: string, pkg = CLIENT_NODE): Promise<{ loaded: boolean; out: string }> {
  const script = `
import { registerHooks } from 'node:module';
let loaded = false;
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context);
    if (r.url.includes(${JSON.stringify(pkg)})) loaded = true;
    return r;
  },
});
${body}
process.stdout.write('\\nLOADED=' + loaded + '\\n');
process.exit(0);
`;
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script],
      { cwd: repoRoot, env: { PATH: process.env.PATH ?? '' }, timeout: 120_000 },
      (err, stdout, stderr) => {
        const m = /LOADED=(true|false)/.exec(stdout);
        if (!m) reject(new Error(`no answer: ${err?.message ?? ''}\n${stdout}\n${stderr}`));
        else resolve({ loaded: m[1] === 'true', out: stdout });
      },
    ),
  );
}

t.test('serve without a cluster starts and stops without loading @kubernetes/client-node', async (t) => {
  const pki = await sharedPki();
  const { loaded } = await run(`
const { startServer } = await import(${src('app/server.ts')});
const { validateConfig } = await import(${src('config/schema.ts')});
const { createLogger } = await import(${src('server/logger.ts')});
const config = validateConfig({
  server: { host: '127.0.0.1', port: 0, tlsCert: ${JSON.stringify(pki.server.certFile)}, tlsKey: ${JSON.stringify(pki.server.keyFile)} },
  cluster: { watchNodes: true },
});
const running = await startServer(config, {}, createLogger('silent'));
await running.close();
`);
  t.equal(loaded, false);
});

t.test('a kubeconfig loads it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-lazy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]',
      'users: [{name: u, user: {token: t}}]',
      'contexts: [{name: x, context: {cluster: c, user: u}}]',
      'current-context: x',
      '',
    ].join('\n'),
  );
  const { loaded } = await run(`
const { loadKubeConfig } = await import(${src('cluster/kubeconfig.ts')});
const { ClusterReader } = await import(${src('cluster/reader.ts')});
const cluster = loadKubeConfig({ kubeconfig: ${JSON.stringify(file)}, env: {} });
new ClusterReader(cluster.kc, { cacheTtlMs: 1000, negativeTtlMs: 1000, requestTimeoutMs: 1000 });
`);
  t.equal(loaded, true);
});

/** A webhook started and stopped: with the shared test certificate, or without one (self-signed). */
async function serveOnce(withCertificate: boolean) {
  const pki = await sharedPki();
  const files = withCertificate
    ? `tlsCert: ${JSON.stringify(pki.server.certFile)}, tlsKey: ${JSON.stringify(pki.server.keyFile)}`
    : '';
  return run(
    `
const { startServer } = await import(${src('app/server.ts')});
const { validateConfig } = await import(${src('config/schema.ts')});
const { createLogger } = await import(${src('server/logger.ts')});
const config = validateConfig({ server: { host: '127.0.0.1', port: 0, ${files} }, cluster: { watchNodes: false } });
const running = await startServer(config, {}, createLogger('silent'));
process.stdout.write('URL=' + running.url + '\\n');
await running.close();
`,
    SELFSIGNED,
  );
}

t.test('serve with a certificate never loads selfsigned; without one it does, and serves', async (t) => {
  const given = await serveOnce(true);
  t.equal(given.loaded, false, 'a certificate given: not loaded');
  t.match(given.out, /URL=https:\/\/127\.0\.0\.1:\d+/);
  const made = await serveOnce(false);
  t.equal(made.loaded, true, 'no certificate: loaded to make one');
  t.match(made.out, /URL=https:\/\/127\.0\.0\.1:\d+/, 'and the server started with it');
});
