// The serving certificate: from files (a mounted Secret), re-read when they change without a restart
// and without dropping connections; or, for a developer's first run, a self-signed one.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';

export interface TlsPair {
  key: string;
  cert: string;
}

/**
 * TLS 1.2 with ECDHE key exchange and AEAD ciphers only (the Kubernetes API server's recommended
 * suites; Node's defaults also take CBC and static-RSA ones), and TLS 1.3 with its own three.
 */
export const SERVER_TLS = {
  minVersion: 'TLSv1.2' as const,
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
};

/**
 * Reads and checks a pair: a file that is empty, holds no certificate or key, a certificate not
 * valid now, or a key that is not its own would make every handshake fail, so it is refused here.
 */
export function readTlsPair(certFile: string, keyFile: string, now = Date.now()): TlsPair {
  const pair = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  checkTlsPair(pair, now);
  createSecureContext(pair);
  return pair;
}

export function checkTlsPair(pair: TlsPair, now = Date.now()): X509Certificate {
  if (!pair.cert.trim()) throw new Error('the certificate file is empty');
  if (!pair.key.trim()) throw new Error('the key file is empty');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pair.cert);
  } catch {
    throw new Error('the certificate file holds no PEM certificate');
  }
  if (Date.parse(cert.validFrom) > now) throw new Error(`the certificate is not valid before ${cert.validFrom}`);
  if (Date.parse(cert.validTo) < now) throw new Error(`the certificate expired on ${cert.validTo}`);
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(pair.key);
  } catch {
    throw new Error('the key file holds no PEM private key');
  }
  if (!cert.checkPrivateKey(key)) throw new Error('the key does not belong to the certificate (key values mismatch)');
  return cert;
}

/** When the certificate of a pair expires, in ms since the epoch. */
export function certificateExpiry(pair: TlsPair): number {
  return Date.parse(new X509Certificate(pair.cert).validTo);
}

export async function selfSigned(names: string[] = ['localhost']): Promise<TlsPair> {
  // Loaded only here: with its X.509 libraries it took 23 MiB of memory in every server, and a
  // server with a certificate (every real one) never makes one.
  // The package is CommonJS: its exports object is the default export both from the sources and
  // from the bundle (esbuild gives a CommonJS chunk only a default export, no named ones).
  const { generate } = (await import('selfsigned')).default;
  const now = new Date();
  const pems = await generate([{ name: 'commonName', value: names[0] ?? 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 60_000),
    notAfterDate: new Date(now.getTime() + 365 * 24 * 3600_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          ...names.map((value) => ({ type: 2 as const, value })),
          { type: 7 as const, ip: '127.0.0.1' },
          { type: 7 as const, ip: '::1' },
        ],
      },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}

/**
 * Polls the files (Secret volumes swap a symlink, which fs.watch misses) and installs a changed pair
 * for new connections; open connections keep theirs. A half-written or mismatched pair is skipped
 * until both files agree. Changes are told by content, compared with what was read at start: a
 * stat-based watch takes its first look later and misses a renewal that happens before it.
 */
export function watchTls(
  server: Server,
  certFile: string,
  keyFile: string,
  logger: Logger,
  intervalMs = 2000,
  onReload?: (pair: TlsPair) => void,
  /** the pair the server was started with: files that changed since it was read are a renewal */
  served?: TlsPair,
): () => void {
  const read = () => {
    try {
      return readFileSync(certFile, 'utf8') + readFileSync(keyFile, 'utf8');
    } catch (err) {
      return `unreadable: ${(err as Error).message}`;
    }
  };
  let current = served ? served.cert + served.key : read();
  // What the files held at the last look: a bad pair is reported once per change, not per poll.
  let seen = current;
  const reload = () => {
    const now = read();
    if (now === seen) return;
    seen = now;
    let pair: TlsPair;
    try {
      pair = readTlsPair(certFile, keyFile);
    } catch (err) {
      logger.warn(
        { certFile, keyFile, err: (err as Error).message },
        'certificate files changed but cannot be used yet; keeping the current certificate',
      );
      return;
    }
    if (pair.cert + pair.key === current) return;
    current = pair.cert + pair.key;
    server.setSecureContext({ ...pair, ...SERVER_TLS });
    onReload?.(pair);
    logger.info({ certFile }, 'serving certificate reloaded');
  };
  const timer = setInterval(reload, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
