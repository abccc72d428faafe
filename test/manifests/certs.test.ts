// certs/gen.sh run into a scratch directory: the certificate it makes is one the API server accepts
// for the Service, the manifests it writes fit the plain overlay, and reruns are idempotent.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { baseObjects, genScript, only, openssl, opensslFound, readYaml, runGen, scratch, type Obj } from './lib.ts';

// certs/gen.sh needs openssl: a machine without it fails here, with the reason, not in silence.
t.test('openssl is installed (bash .ci/install-packages installs it)', async (t) => {
  t.ok(
    opensslFound,
    opensslFound ? `openssl at ${opensslFound}` : 'openssl is not on PATH: run bash .ci/install-packages',
  );
});

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const read = (dir: string, f: string) => readFileSync(join(dir, f), 'utf8');
const certs = (pem: string) =>
  pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)?.map((p) => new X509Certificate(p)) ?? [];
const opensslVerify = (caFile: string, certFile: string) =>
  spawnSync(openssl, ['verify', '-CAfile', caFile, certFile], { encoding: 'utf8' });

function fresh(t: Parameters<typeof scratch>[0], args: string[] = []) {
  const dir = scratch(t, 'pullguard-certs-');
  return runGen(join(dir, 'pki'), join(dir, 'out'), args);
}

t.test('a serving certificate for the Service, signed by the CA', async (t) => {
  const { pki, stdout } = fresh(t);
  t.match(stdout, /made a new CA/);
  const leaf = new X509Certificate(read(pki, 'tls.crt'));
  const ca = new X509Certificate(read(pki, 'ca.crt'));
  t.match(
    leaf.subjectAltName,
    /DNS:pullguard\.pullguard\.svc(,|$)/,
    'SAN pullguard.pullguard.svc (what the API server dials)',
  );
  t.match(
    leaf.subjectAltName,
    /DNS:pullguard\.pullguard\.svc\.cluster\.local/,
    'SAN pullguard.pullguard.svc.cluster.local',
  );
  t.ok(leaf.checkHost('pullguard.pullguard.svc'), 'Node agrees the certificate is for that host');
  const v = opensslVerify(join(pki, 'ca.crt'), join(pki, 'tls.crt'));
  t.equal(v.status, 0, `openssl verify: ${v.stdout.trim()}${v.stderr.trim()}`);
  t.ok(leaf.verify(ca.publicKey), 'signed by the CA');
  t.ok(ca.ca, 'the CA is a CA');
  t.notOk(leaf.ca, 'the serving certificate is not');
  t.ok(leaf.keyUsage?.includes(SERVER_AUTH), 'extended key usage serverAuth');
  t.ok(leaf.checkPrivateKey(createPrivateKey(read(pki, 'tls.key'))), "tls.key is the certificate's key");
  for (const key of ['ca.key', 'tls.key'])
    t.equal(statSync(join(pki, key)).mode & 0o077, 0, `${key} is private to its owner`);
  const days = (Date.parse(leaf.validTo) - Date.now()) / 86_400_000;
  t.ok(days > 360 && days <= 366, `valid for a year (${Math.round(days)} days)`);
});

t.test('the manifests it writes fit the plain overlay', async (t) => {
  const { pki, out } = fresh(t);
  const [secret] = readYaml(join(out, 'tls-secret.yaml')) as [Obj];
  t.equal(secret.kind, 'Secret');
  t.equal(secret.type, 'kubernetes.io/tls');
  t.equal(secret.metadata.namespace, 'pullguard');
  const dep = only(baseObjects(), 'Deployment');
  const mounted = dep.spec.template.spec.volumes
    .flatMap((v: Obj) => v.projected?.sources ?? [])
    .find((s: Obj) => s.secret)?.secret.name;
  t.equal(secret.metadata.name, mounted, 'the Secret the Deployment mounts');
  t.equal(Buffer.from(secret.data['tls.crt'], 'base64').toString(), read(pki, 'tls.crt'), 'tls.crt');
  t.equal(Buffer.from(secret.data['tls.key'], 'base64').toString(), read(pki, 'tls.key'), 'tls.key');
  t.equal(
    statSync(join(out, 'tls-secret.yaml')).mode & 0o077,
    0,
    'tls-secret.yaml (it holds the key) is private to its owner',
  );

  const [patch] = readYaml(join(out, 'webhook-ca-bundle.yaml')) as [Obj];
  const vwc = only(baseObjects(), 'ValidatingWebhookConfiguration');
  t.equal(patch.kind, 'ValidatingWebhookConfiguration');
  t.equal(patch.metadata.name, vwc.metadata.name, 'patches the base webhook configuration');
  // merged by name (the strategic merge key): a name missing here leaves a webhook without a
  // caBundle, a name the base lacks would add an incomplete webhook
  t.same(
    patch.webhooks.map((w: Obj) => w.name),
    (vwc.webhooks as Obj[]).map((w) => w.name),
    'one entry for each webhook of the base, by name (all four)',
  );
  for (const w of patch.webhooks as Obj[]) {
    t.same(Object.keys(w).sort(), ['clientConfig', 'name'], `${w.name}: sets nothing but clientConfig`);
    t.same(Object.keys(w.clientConfig), ['caBundle'], `${w.name}: and in it only caBundle`);
    t.equal(
      Buffer.from(w.clientConfig.caBundle, 'base64').toString(),
      read(pki, 'ca.crt'),
      `${w.name}: caBundle is the CA`,
    );
  }
});

t.test('a TLS client that trusts the caBundle connects to the Service name', async (t) => {
  const { pki, out } = fresh(t);
  const [patch] = readYaml(join(out, 'webhook-ca-bundle.yaml')) as [Obj];
  const ca = Buffer.from(patch.webhooks[0].clientConfig.caBundle, 'base64');
  t.equal(
    new Set(patch.webhooks.map((w: Obj) => w.clientConfig.caBundle)).size,
    1,
    'every webhook trusts the same bundle',
  );
  const server = createServer({ cert: read(pki, 'tls.crt'), key: read(pki, 'tls.key') }, (_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const handshake = (servername: string) =>
    new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, servername, ca, minVersion: 'TLSv1.2' }, () => {
        resolve(socket.authorized ? 'authorized' : String(socket.authorizationError));
        socket.end();
      });
      socket.on('error', (err) => resolve(err.message));
    });
  t.equal(await handshake('pullguard.pullguard.svc'), 'authorized', 'pullguard.pullguard.svc is trusted');
  t.not(await handshake('pullguard.other.svc'), 'authorized', 'another name is not');
});

t.test('idempotent: a second run keeps everything', async (t) => {
  const { pki, out } = fresh(t);
  const before = ['tls.crt', 'tls.key', 'ca.crt', 'ca.key'].map((f) => read(pki, f));
  const manifests = ['tls-secret.yaml', 'webhook-ca-bundle.yaml'].map((f) => read(out, f));
  const again = runGen(pki, out);
  t.match(again.stdout, /certificates are current/);
  t.same(
    ['tls.crt', 'tls.key', 'ca.crt', 'ca.key'].map((f) => read(pki, f)),
    before,
    'keys and certificates unchanged',
  );
  t.same(
    ['tls-secret.yaml', 'webhook-ca-bundle.yaml'].map((f) => read(out, f)),
    manifests,
    'manifests byte for byte the same',
  );
});

t.test('renewal keeps the caBundle; CA rotation trusts old and new', async (t) => {
  const { pki, out } = fresh(t);
  const oldLeafPem = read(pki, 'tls.crt');
  const bundleBefore = read(out, 'webhook-ca-bundle.yaml');

  runGen(pki, out, ['--renew']);
  t.not(read(pki, 'tls.crt'), oldLeafPem, '--renew issues a new serving certificate');
  t.equal(
    read(out, 'webhook-ca-bundle.yaml'),
    bundleBefore,
    'with the same caBundle: nothing to change in the webhook',
  );

  const leafBeforeRotation = join(scratch(t), 'old.crt');
  copyFileSync(join(pki, 'tls.crt'), leafBeforeRotation);
  const rotated = runGen(pki, out, ['--renew-ca']);
  t.match(rotated.stdout, /previous CA/);
  const [patch] = readYaml(join(out, 'webhook-ca-bundle.yaml')) as [Obj];
  t.equal(
    new Set(patch.webhooks.map((w: Obj) => w.clientConfig.caBundle)).size,
    1,
    'every webhook gets the same rotated bundle',
  );
  const bundlePem = Buffer.from(patch.webhooks[0].clientConfig.caBundle, 'base64').toString();
  t.equal(certs(bundlePem).length, 2, 'the caBundle holds the new and the previous CA');
  const bundleFile = join(scratch(t), 'bundle.pem');
  writeFileSync(bundleFile, bundlePem);
  t.equal(
    opensslVerify(bundleFile, join(pki, 'tls.crt')).status,
    0,
    'the new serving certificate verifies against the bundle',
  );
  t.equal(opensslVerify(bundleFile, leafBeforeRotation).status, 0, 'so does the one pods serve until they reload');
  t.not(opensslVerify(join(pki, 'ca.crt'), leafBeforeRotation).status, 0, 'which the new CA alone would reject');
});

t.test('a certificate close to expiry is replaced', async (t) => {
  const { pki, out } = fresh(t, ['--days', '10']);
  const short = read(pki, 'tls.crt');
  const again = runGen(pki, out);
  t.match(again.stdout, /expires within 30 days/);
  t.not(read(pki, 'tls.crt'), short, 'reissued');
});

t.test('--namespace names the certificate and the Secret', async (t) => {
  const { pki, out } = fresh(t, ['--namespace', 'guard']);
  t.match(new X509Certificate(read(pki, 'tls.crt')).subjectAltName, /DNS:pullguard\.guard\.svc/);
  t.equal((readYaml(join(out, 'tls-secret.yaml'))[0] as Obj).metadata.namespace, 'guard');
  const changed = runGen(pki, out, ['--namespace', 'other']);
  t.match(changed.stdout, /names differ/, 'a rerun for another namespace reissues');
});

t.test('bad options are refused', async (t) => {
  const r = spawnSync('bash', [genScript, '--bogus'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /unknown option --bogus/);
  const help = spawnSync('bash', [genScript, '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /Usage: certs\/gen\.sh/);
});
