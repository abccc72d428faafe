// A serving certificate pair that would make every handshake fail is refused: at start (exit 2
// with a plain line) and on reload (the current one kept, a warning); the expiry of the one in use
// is a metric.
import t from 'tap';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { generate } from 'selfsigned';
import { startServer } from '../../src/app/server.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { sharedPki } from '../helpers/pki.ts';
import { captureLog, serve } from '../server/lib.ts';
import { waitFor } from '../helpers/wait.ts';

const pki = await sharedPki();
const dir = mkdtempSync(join(tmpdir(), 'pullguard-certs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function notYetValid(): Promise<{ cert: string; key: string }> {
  const start = new Date(Date.now() + 30 * 24 * 3600_000);
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: start,
    notAfterDate: new Date(start.getTime() + 365 * 24 * 3600_000),
  });
  return { cert: pems.cert, key: pems.private };
}

function handshake(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const sock = connect({ host: u.hostname, port: Number(u.port), ca: pki.caPem, servername: 'localhost' }, () => {
      const fp = sock.getPeerCertificate().fingerprint256;
      sock.destroy();
      resolve(fp);
    });
    sock.once('error', (err) => resolve(`failed: ${err.message}`));
  });
}

t.test('at start: an empty, expired, not-yet-valid or mismatched pair is refused with one line', async (t) => {
  const future = await notYetValid();
  const cases: [string, string, string, RegExp][] = [
    ['empty certificate', file('empty.crt', ''), pki.server.keyFile, /certificate file is empty/],
    ['empty key', pki.server.certFile, file('empty.key', ''), /key file is empty/],
    ['both empty', file('e1.crt', ''), file('e1.key', ''), /empty/],
    ['no certificate in the file', file('junk.crt', 'hello\n'), pki.server.keyFile, /no PEM certificate/],
    ['expired', pki.expiredServer.certFile, pki.expiredServer.keyFile, /expired on/],
    ['not yet valid', file('future.crt', future.cert), file('future.key', future.key), /not valid before/],
    ['key of another certificate', pki.server.certFile, pki.wrongServer.keyFile, /does not belong/],
  ];
  for (const [name, cert, key, reason] of cases) {
    const config = validateConfig({
      server: { host: '127.0.0.1', port: 0, tlsCert: cert, tlsKey: key },
      cluster: { watchNodes: false },
    });
    const log = captureLog();
    const started = await startServer(config, {}, log.logger).then(
      async (r) => {
        await r.close();
        return 'listening';
      },
      (err: Error) => err.message,
    );
    t.match(started, reason, name);
    t.notMatch(started, /\n/, `${name}: one line`);
  }
});

t.test('on reload: a bad pair is not installed, the current one keeps serving, a warning says why', async (t) => {
  const good = await pki.issue('reload-good');
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  copyFileSync(good.certFile, certFile);
  copyFileSync(good.keyFile, keyFile);
  const s = await serve(null, { server: { tlsCert: certFile, tlsKey: keyFile } });
  t.teardown(() => s.close());
  const fp = new X509Certificate(good.certPem).fingerprint256;
  t.equal(await handshake(s.url), fp);
  const expiry = Date.parse(new X509Certificate(good.certPem).validTo) / 1000;
  const metric = /^pullguard_serving_certificate_expiry_timestamp_seconds (\S+)$/m;
  t.equal(Number(metric.exec((await s.get('/metrics')).text)?.[1]), expiry, 'the expiry of the certificate in use');

  const steps: [string, () => void, RegExp][] = [
    [
      'empty files',
      () => {
        writeFileSync(certFile, '');
        writeFileSync(keyFile, '');
      },
      /empty/,
    ],
    [
      'an expired pair',
      () => {
        copyFileSync(pki.expiredServer.certFile, certFile);
        copyFileSync(pki.expiredServer.keyFile, keyFile);
      },
      /expired/,
    ],
  ];
  for (const [name, write, reason] of steps) {
    write();
    const warning = await waitFor(
      () => s.log.lines().findLast((l) => /cannot be used/.test(l.msg) && reason.test(String(l.err))),
      { what: `${name} to be noticed`, timeoutMs: 15_000 },
    );
    t.ok(warning, `${name}: a warning says why`);
    t.notOk(
      s.log.lines().some((l) => l.msg === 'serving certificate reloaded'),
      `${name}: not reloaded`,
    );
    t.equal(await handshake(s.url), fp, `${name}: the current certificate still serves`);
  }
  t.equal(Number(metric.exec((await s.get('/metrics')).text)?.[1]), expiry, 'the metric still shows the one in use');
});
