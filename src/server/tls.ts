// The serving certificate: from files (a mounted Secret), re-read when they change without a restart
// and without dropping connections; or, for a developer's first run, a self-signed one.

import { readFileSync } from 'node:fs';
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
 * until both files agree. Changes are told by content, compared with what was read at start: a
 * stat-based watch takes its first look later and misses a renewal that happens before it.
 */
export function watchTls(
  server: Server,
  certFile: string,
  keyFile: string,
  logger: Logger,
  intervalMs = 2000,
): () => void {
  const read = () => {
    try {
      return readFileSync(certFile, 'utf8') + readFileSync(keyFile, 'utf8');
    } catch (err) {
      return `unreadable: ${(err as Error).message}`;
    }
  };
  let current = read();
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
    server.setSecureContext({ ...pair, minVersion: 'TLSv1.2' });
    logger.info({ certFile }, 'serving certificate reloaded');
  };
  const timer = setInterval(reload, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
