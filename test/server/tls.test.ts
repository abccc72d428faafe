// The serving certificate: read from files and re-read when they change (a renewed Secret), without
// a restart and without dropping connections; with none configured, a self-signed one, said in the log.
import t from 'tap';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent, createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { watchTls } from '../../src/server/tls.ts';
import { sharedPki } from '../helpers/pki.ts';
import { sample, serve } from './lib.ts';
import { waitFor } from '../helpers/wait.ts';

const pki = await sharedPki();

/** A fresh TLS connection's view of the server certificate. */
function peer(url: string, opts: { ca?: string } = {}): Promise<PeerCertificate> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(
      {
        host: u.hostname,
        port: Number(u.port),
        servername: 'localhost',
        ...(opts.ca ? { ca: opts.ca } : { rejectUnauthorized: false }),
      },
      () => {
        const cert = sock.getPeerCertificate();
        sock.destroy();
        resolve(cert);
      },
    );
    sock.once('error', reject);
  });
}

interface Got {
  status: number;
  body: string;
  fingerprint: string;
  reused: boolean;
}

/** One request through a keep-alive agent, with the certificate of the connection it went over. */
function over(agent: HttpsAgent, url: string, method = 'GET', body?: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        agent,
        method,
        headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {},
      },
      (res) => {
        // Read now: once the body ends, the socket goes back to the agent and res.socket is null.
        const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            fingerprint,
            reused: req.reusedSocket,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A logger whose lines the test reads back. */
function collectingLogger() {
  const lines: { msg: string }[] = [];
  const logger = pino(
    {},
    new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)) as { msg: string });
        done();
      },
    }),
  );
  return { lines, logger };
}

t.test('certificate reload: new connections get the new certificate, an open connection keeps working', async (t) => {
  const [a, b] = await Promise.all([pki.issue('webhook-a'), pki.issue('webhook-b')]);
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  copyFileSync(a.certFile, certFile);
  copyFileSync(a.keyFile, keyFile);
  const fpA = new X509Certificate(a.certPem).fingerprint256;
  const fpB = new X509Certificate(b.certPem).fingerprint256;

  const s = await serve(null, { server: { tlsCert: certFile, tlsKey: keyFile } });
  t.teardown(() => s.close());
  t.equal(
    (await peer(s.url, { ca: pki.caPem })).fingerprint256,
    fpA,
    'serves certificate A, trusted through the test CA',
  );

  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: pki.caPem, servername: 'localhost' });
  t.teardown(() => agent.destroy());
  const first = await over(agent, `${s.url}/healthz`);
  t.equal(first.status, 200);
  t.equal(first.fingerprint, fpA);

  // Half a renewal: the new certificate with the old key does not load; A stays.
  copyFileSync(b.certFile, certFile);
  await waitFor(() => s.log.lines().some((l) => /cannot be used yet/.test(l.msg)), {
    what: 'the mismatched pair to be noticed',
  });
  t.equal((await peer(s.url, { ca: pki.caPem })).fingerprint256, fpA, 'a mismatched pair is not installed');

  copyFileSync(b.keyFile, keyFile);
  const started = Date.now();
  await waitFor(async () => (await peer(s.url, { ca: pki.caPem })).fingerprint256 === fpB, {
    what: 'certificate B on new connections',
    everyMs: 200,
  });
  t.pass(`new connections see certificate B after ${Date.now() - started} ms`);
  t.ok(
    s.log.lines().some((l) => l.msg === 'serving certificate reloaded' && l.certFile === certFile),
    'the reload is logged',
  );

  const again = await over(agent, `${s.url}/healthz`);
  t.equal(again.status, 200, 'the keep-alive connection made before still works');
  t.equal(again.reused, true, 'over the same connection');
  t.equal(again.fingerprint, fpA, 'which keeps the certificate it was made with');
  const review = await over(agent, `${s.url}/validate`, 'POST', JSON.stringify(sample('deployment-update.json')));
  t.equal(review.status, 200, 'and still takes reviews');
  t.equal(JSON.parse(review.body).response.allowed, true);
  t.equal(review.reused, true);

  // A broken file (a renewal being written) is skipped, the current certificate kept.
  writeFileSync(certFile, '-----BEGIN CERTIFICATE-----\ntruncated');
  await waitFor(() => s.log.lines().filter((l) => /cannot be used yet/.test(l.msg)).length >= 2, {
    what: 'the broken file to be noticed',
  });
  t.equal((await peer(s.url, { ca: pki.caPem })).fingerprint256, fpB, 'a broken file is not installed');
  const still = await s.get('/healthz');
  t.equal(still.status, 200);
});

t.test('certificate reload as a Secret volume does it: an atomic swap of the ..data symlink', async (t) => {
  const [a, b] = await Promise.all([pki.issue('webhook-sa'), pki.issue('webhook-sb')]);
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-secret-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const version = (name: string, pair: { certFile: string; keyFile: string }) => {
    mkdirSync(join(dir, name));
    copyFileSync(pair.certFile, join(dir, name, 'tls.crt'));
    copyFileSync(pair.keyFile, join(dir, name, 'tls.key'));
  };
  version('..2026_01_01_a', a);
  symlinkSync('..2026_01_01_a', join(dir, '..data'));
  symlinkSync('..data/tls.crt', join(dir, 'tls.crt'));
  symlinkSync('..data/tls.key', join(dir, 'tls.key'));
  const s = await serve(null, { server: { tlsCert: join(dir, 'tls.crt'), tlsKey: join(dir, 'tls.key') } });
  t.teardown(() => s.close());
  t.equal((await peer(s.url, { ca: pki.caPem })).fingerprint256, new X509Certificate(a.certPem).fingerprint256);
  // What the kubelet's atomic writer does: write the new version, point a new link at it, rename it over ..data.
  version('..2026_02_01_b', b);
  symlinkSync('..2026_02_01_b', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  const fpB = new X509Certificate(b.certPem).fingerprint256;
  await waitFor(async () => (await peer(s.url, { ca: pki.caPem })).fingerprint256 === fpB, {
    what: 'certificate B after the swap',
    everyMs: 200,
  });
  t.pass('new connections see the renewed certificate');
});

t.test('a renewal right after start-up is not missed', async (t) => {
  // The swap happens in the same tick as the watch starts, before any poll: on a busy machine the
  // first look at the files can come that late, and a change made before it must still count.
  const [a, b] = await Promise.all([pki.issue('webhook-ra'), pki.issue('webhook-rb')]);
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-renew-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, pair] of [
    ['..a', a],
    ['..b', b],
  ] as const) {
    mkdirSync(join(dir, name));
    copyFileSync(pair.certFile, join(dir, name, 'tls.crt'));
    copyFileSync(pair.keyFile, join(dir, name, 'tls.key'));
  }
  symlinkSync('..a', join(dir, '..data'));
  symlinkSync('..data/tls.crt', join(dir, 'tls.crt'));
  symlinkSync('..data/tls.key', join(dir, 'tls.key'));
  const server = createHttpsServer({ cert: a.certPem, key: a.keyPem });
  const { lines, logger } = collectingLogger();
  const stop = watchTls(server, join(dir, 'tls.crt'), join(dir, 'tls.key'), logger, 20);
  t.teardown(stop);
  symlinkSync('..b', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  await waitFor(() => lines.some((l) => l.msg === 'serving certificate reloaded'), { what: 'the reload', everyMs: 20 });
  t.pass('certificate B installed');
});

t.test('no certificate configured: a self-signed one, and the log says so', async (t) => {
  const s = await serve(null, {}, { tls: false });
  t.teardown(() => s.close());
  const cert = await peer(s.url);
  t.ok(cert.fingerprint256, 'a certificate is served');
  t.same(cert.issuer, cert.subject, 'self-signed: issuer is the subject');
  t.equal(cert.subject.CN, 'localhost');
  t.match(cert.subjectaltname, /IP Address:127\.0\.0\.1/);
  t.match(cert.subjectaltname, /DNS:pullguard\.pullguard\.svc/);
  const said = s.log.lines().find((l) => /self-signed/.test(l.msg));
  t.ok(said, 'a log line says so');
  t.equal(said?.level, 40, 'as a warning');
  t.match(said?.msg, /no certificate configured/);
  const res = await s.review(sample('deployment-update.json'));
  t.equal(res.allowed, true, 'and it serves');
  await t.rejects(peer(s.url, { ca: pki.caPem }), 'not trusted by an unrelated CA');
});

t.test('a renewal between reading the pair at start-up and starting the watch is not missed', async (t) => {
  // start-up reads the pair, builds the pod check and the app (awaits), then starts the watch: files
  // renewed in between must count as a change from what is served, not as what is served
  const [a, b] = await Promise.all([pki.issue('webhook-sa'), pki.issue('webhook-sb')]);
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-renew-start-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'tls.crt'), b.certPem);
  writeFileSync(join(dir, 'tls.key'), b.keyPem);
  const server = createHttpsServer({ cert: a.certPem, key: a.keyPem });
  const { lines, logger } = collectingLogger();
  const stop = watchTls(server, join(dir, 'tls.crt'), join(dir, 'tls.key'), logger, 20, undefined, {
    cert: a.certPem,
    key: a.keyPem,
  });
  t.teardown(stop);
  await waitFor(() => lines.some((l) => l.msg === 'serving certificate reloaded'), { what: 'the reload', everyMs: 20 });
  t.pass('certificate B installed');
});
