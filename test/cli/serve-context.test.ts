// `pullguard serve --context NAME` chooses the kubeconfig context, as `check` and `diagnose` do: the
// webhook reads pull secrets from that context's cluster (a real fixture API server), not from the
// file's current context (a closed port).
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeApiServer } from '../helpers/kube-api.ts';
import { sharedPki } from '../helpers/pki.ts';
import { repoRoot } from '../helpers/fixtures.ts';
import { scratch } from '../manifests/lib.ts';
import { call, client, podReview, type Obj } from '../server/lib.ts';

const dir = scratch(t, 'pullguard-serve-context-');
const pki = await sharedPki();
const api = await KubeApiServer.start();
t.teardown(() => api.close());

// The fixture API server's kubeconfig, with a current context whose cluster nobody answers.
const file = await api.writeKubeconfig(dir);
const kubeconfig = JSON.parse(readFileSync(file, 'utf8')) as Obj;
kubeconfig.clusters.push({ name: 'gone', cluster: { server: 'https://127.0.0.1:1' } });
kubeconfig.contexts.push({ name: 'gone', context: { cluster: 'gone', user: 'pullguard' } });
kubeconfig['current-context'] = 'gone';
writeFileSync(file, JSON.stringify(kubeconfig));

/** `pullguard serve ARGS` from the sources, on loopback, with the test PKI's certificate; resolves with its first log line that `match` accepts. */
function serve(args: string[], match: (line: Obj) => boolean) {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'src/cli/main.ts'),
      'serve',
      ...['--host', '127.0.0.1', '--port', '0', '--metrics-port', '0'],
      ...['--tls-cert', pki.server.certFile, '--tls-key', pki.server.keyFile],
      ...args,
    ],
    { cwd: dir, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const found = new Promise<Obj>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      for (const text of out.split('\n').slice(0, -1)) {
        if (!text.startsWith('{')) continue;
        const line = JSON.parse(text) as Obj;
        if (match(line)) resolve(line);
      }
    });
    exit.then((code) => reject(new Error(`exited (${code}) first: ${err}`)));
  });
  return { child, exit, found, stderr: () => err };
}

t.test('serve --context reads the cluster of the context it names', async (t) => {
  const p = serve(['--kubeconfig', file, '--context', 'fixture'], (l) => l.msg === 'pullguard webhook listening');
  const listening = await p.found;
  const agent = await client();
  t.teardown(() => agent.close());

  // A pod naming a pull secret: the webhook reads it from the API server of the chosen context.
  const body = podReview({ plain: { host: '127.0.0.1:1' }, secure: { host: '127.0.0.1:1' }, appDigest: '' } as never, [
    { name: 'app', image: '127.0.0.1:1/team/app:1.0' },
  ]);
  body.request.object.spec.imagePullSecrets = [{ name: 'regcred' }];
  const res = await call(agent, `${listening.address}/validate`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  t.equal(res.status, 200);
  t.ok(
    api.requests.some((r) => r.resource === 'secrets' && r.namespace === body.request.namespace && r.authenticated),
    `the fixture API server was asked for the pod's secrets: ${JSON.stringify(api.requests.map((r) => `${r.verb} ${r.path}`))}`,
  );

  p.child.kill('SIGTERM');
  t.equal(await p.exit, 0, 'exit 0 after SIGTERM');
  t.equal(p.stderr(), '', 'nothing on stderr');
});

t.test('serve --context with a name the kubeconfig lacks: one line, exit 2', async (t) => {
  const p = serve(['--kubeconfig', file, '--context', 'dev'], () => false);
  p.found.catch(() => undefined);
  t.equal(await p.exit, 2);
  t.match(p.stderr(), /^pullguard serve: --context dev: no such context in kubeconfig .*\n$/);
});
