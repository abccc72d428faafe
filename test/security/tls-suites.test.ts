// The webhook's TLS: 1.2 with ECDHE and AEAD suites only (no CBC, no static RSA key exchange), and
// 1.3. The server here has an RSA certificate, so that static-RSA suites could be chosen at all.
import t from 'tap';
import { connect, type ConnectionOptions } from 'node:tls';
import { sharedPki } from '../helpers/pki.ts';
import { serve } from '../server/lib.ts';

const pki = await sharedPki();

function hello(url: string, opts: ConnectionOptions): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const sock = connect(
      { host: u.hostname, port: Number(u.port), ca: pki.caPem, servername: 'localhost', ...opts },
      () => {
        const got = `${sock.getProtocol()} ${sock.getCipher().name}`;
        sock.destroy();
        resolve(got);
      },
    );
    sock.once('error', () => resolve('refused'));
  });
}

t.test('TLS 1.2 takes only ECDHE with AEAD; TLS 1.3 is kept', async (t) => {
  const rsa = await pki.issue('webhook-rsa', { keyType: 'rsa' });
  const s = await serve(null, { server: { tlsCert: rsa.certFile, tlsKey: rsa.keyFile } });
  t.teardown(() => s.close());
  const tls12 = { maxVersion: 'TLSv1.2' as const };
  for (const cipher of [
    'AES128-GCM-SHA256',
    'AES256-SHA',
    'AES128-SHA256',
    'ECDHE-RSA-AES128-SHA',
    'ECDHE-RSA-AES256-SHA384',
  ])
    t.equal(await hello(s.url, { ...tls12, ciphers: cipher }), 'refused', `${cipher} is refused`);
  for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305'])
    t.equal(await hello(s.url, { ...tls12, ciphers: cipher }), `TLSv1.2 ${cipher}`, `${cipher} is taken`);
  t.match(await hello(s.url, {}), /^TLSv1\.3 TLS_/, 'TLS 1.3 by default');
  t.equal(await hello(s.url, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }), 'refused', 'TLS 1.1 is refused');
});
