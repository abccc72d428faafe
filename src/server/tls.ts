// The serving certificate: from files (a mounted Secret), re-read when they change without a restart
// and without dropping connections; or, for a developer's first run, a self-signed one.

import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Server } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { generate } from 'selfsigned';

export interface TlsPair {
  key: string;
  cert: string;
}

export function readTlsPair(certFile: string, keyFile: string): TlsPair {
  const pair = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  // Fails here, not at the first handshake, when the key does not belong to the certificate.
  createSecureContext(pair);
  return pair;
}

export async function selfSigned(names: string[] = ['localhost']): Promise<TlsPair> {
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
 * until both files agree.
 */
export function watchTls(
  server: Server,
  certFile: string,
  keyFile: string,
  logger: Logger,
  intervalMs = 2000,
): () => void {
  let current = '';
  try {
    current = readFileSync(certFile, 'utf8') + readFileSync(keyFile, 'utf8');
  } catch {
    // reported by the first reload attempt
  }
  const reload = () => {
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
    server.setSecureContext({ ...pair, minVersion: 'TLSv1.2' });
    logger.info({ certFile }, 'serving certificate reloaded');
  };
  watchFile(certFile, { interval: intervalMs }, reload);
  watchFile(keyFile, { interval: intervalMs }, reload);
  return () => {
    unwatchFile(certFile, reload);
    unwatchFile(keyFile, reload);
  };
}
