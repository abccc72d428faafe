// What a failed file, socket or TLS operation means, in words: Node reports only a code (ENOENT,
// EADDRINUSE) or OpenSSL's internals ("40A3…:error:0A00010B:SSL routines:…:../deps/openssl/…"),
// which tell a person neither what happened nor what to do. The caller names the path or address
// and the setting to change; this says what went wrong with it.

import { getSystemErrorMessage } from 'node:util';
import { oneLine } from './text.ts';

/** What was being done: the same code means different things when reading, writing or listening. */
export type Operation = 'read' | 'write' | 'listen' | 'connect' | 'run';

const WORDS: Record<string, string | Partial<Record<Operation | 'any', string>>> = {
  ENOENT: { write: 'its folder does not exist', run: 'no such program', any: 'no such file' },
  ENOTDIR: { any: 'a part of the path is a file, not a folder' },
  EISDIR: { any: 'it is a folder, not a file' },
  EACCES: {
    listen: 'permission denied (a port below 1024 needs privileges)',
    any: 'permission denied',
  },
  EPERM: { listen: 'not permitted', any: 'not permitted' },
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is spent',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files on this machine',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symbolic links (a link points to itself?)',
  EBUSY: 'it is busy or locked',
  EEXIST: 'it already exists',
  EADDRINUSE: 'the address is already in use by another process',
  EADDRNOTAVAIL: 'no network interface of this machine has that address',
  ECONNREFUSED: 'the connection was refused (nothing listens there)',
  ECONNRESET: 'the connection was reset by the other side',
  ETIMEDOUT: 'the connection timed out',
  EHOSTUNREACH: 'the host cannot be reached (no route)',
  ENETUNREACH: 'the network cannot be reached (no route)',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved now (DNS did not answer)',
  EPIPE: 'the other side closed the connection',
};

/**
 * The cause of a failed file, socket or process operation in words, one line: "no such file",
 * "its folder does not exist", "the address is already in use by another process". An error
 * without a system code gives its own message.
 */
export function systemErrorText(err: unknown, operation: Operation): string {
  const e = err as { code?: unknown; errno?: unknown; message?: unknown } | null | undefined;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const words = code ? WORDS[code] : undefined;
  if (typeof words === 'string') return words;
  const said = words?.[operation] ?? words?.any;
  if (said) return said;
  // A code without words of ours: libuv's description ("resource busy or locked"), not the bare code.
  if (typeof e?.errno === 'number') {
    try {
      return oneLine(getSystemErrorMessage(e.errno));
    } catch {
      // not a system errno
    }
  }
  const message = typeof e?.message === 'string' && e.message ? withoutOpenSslInternals(oneLine(e.message)) : undefined;
  return message ?? code ?? String(err);
}

/** What went wrong in a TLS connection, for the fix: each kind has its own. */
export type TlsProblem =
  | 'plain-http'
  | 'untrusted'
  | 'name-mismatch'
  | 'expired'
  | 'not-yet-valid'
  | 'certificate'
  | 'protocol'
  | 'client-certificate'
  | 'handshake';

/** OpenSSL's certificate verification codes (as Node reports them) in words, by the fix they need. */
const CERTIFICATE_WORDS: Record<string, [TlsProblem, string]> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: ['untrusted', 'its certificate is self-signed, and not trusted'],
  SELF_SIGNED_CERT_IN_CHAIN: ['untrusted', 'its certificate chain ends in an untrusted CA'],
  UNABLE_TO_GET_ISSUER_CERT: ['untrusted', 'its certificate is signed by an untrusted CA'],
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: ['untrusted', 'its certificate is signed by an untrusted CA'],
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: ['untrusted', 'its certificate is signed by an untrusted CA'],
  CERT_UNTRUSTED: ['untrusted', 'its certificate is not trusted'],
  CERT_HAS_EXPIRED: ['expired', 'its certificate has expired'],
  CERT_NOT_YET_VALID: ['not-yet-valid', 'its certificate is not valid yet (or a clock is wrong)'],
  ERR_TLS_CERT_ALTNAME_INVALID: ['name-mismatch', 'its certificate is not for this host name'],
};

/** TLS alerts and handshake failures (Node's ERR_SSL_ codes) that have a fix of their own. */
const HANDSHAKE_WORDS: Record<string, [TlsProblem, string]> = {
  ERR_SSL_WRONG_VERSION_NUMBER: ['plain-http', 'it answered in plain HTTP, not TLS'],
  ERR_SSL_PACKET_LENGTH_TOO_LONG: ['plain-http', 'it answered in plain HTTP, not TLS'],
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: ['protocol', 'the registry offers no TLS version pullguard accepts (1.2, 1.3)'],
  ERR_SSL_UNSUPPORTED_PROTOCOL: ['protocol', 'the registry offers no TLS version pullguard accepts (1.2, 1.3)'],
  ERR_SSL_NO_PROTOCOLS_AVAILABLE: ['protocol', 'the registry offers no TLS version pullguard accepts (1.2, 1.3)'],
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: [
    'protocol',
    'the registry refused the TLS handshake (no common cipher or version)',
  ],
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: [
    'client-certificate',
    'the registry requires a client certificate, which pullguard does not send',
  ],
};

/**
 * A TLS failure in words, with its kind, or undefined when `err` is not one. Never OpenSSL's own
 * text: its codes and source paths mean nothing to a person, and Node's advice to run Node.js with
 * --use-system-ca is not a pullguard setting.
 */
export function tlsErrorText(err: unknown): { problem: TlsProblem; words: string } | undefined {
  const chain: { code?: unknown; message?: unknown; reason?: unknown; cause?: unknown; cert?: unknown }[] = [];
  for (
    let e = err as (typeof chain)[number] | undefined;
    e && typeof e === 'object' && chain.length < 5;
    e = e.cause as typeof e
  )
    chain.push(e);
  for (const e of chain) {
    const code = typeof e.code === 'string' ? e.code : '';
    const message = typeof e.message === 'string' ? e.message : '';
    const known = CERTIFICATE_WORDS[code] ?? HANDSHAKE_WORDS[code];
    if (known) return { problem: known[0], words: `${known[1]}${certificateNames(e.cert, known[0])}` };
    // OpenSSL's reason without a code we know: plain HTTP shows as these on older builds too.
    if (/wrong version number|packet length too long/i.test(message))
      return { problem: 'plain-http', words: 'it answered in plain HTTP, not TLS' };
    if (code.startsWith('ERR_SSL_') || code === 'EPROTO' || /:error:[0-9A-F]+:/.test(message)) {
      const reason = typeof e.reason === 'string' && e.reason ? e.reason : opensslReason(message, code);
      return { problem: 'handshake', words: `the TLS handshake failed (${reason})` };
    }
    // Any other verification code: OpenSSL's words for it are plain ("certificate revoked").
    if (/CERT|UNABLE_TO|INVALID_PURPOSE|INVALID_CA|PATH_LENGTH|KEYUSAGE|HOSTNAME|ALTNAME|SIGNATURE/.test(code))
      return {
        problem: 'certificate',
        words: `its certificate is refused (${withoutOpenSslInternals(oneLine(message)) || code})`,
      };
  }
  return undefined;
}

/** For a certificate for other names: the names it is for, as the registry sent them (cut). */
function certificateNames(cert: unknown, problem: TlsProblem): string {
  const names = (cert as { subjectaltname?: unknown } | undefined)?.subjectaltname;
  if (problem !== 'name-mismatch' || typeof names !== 'string' || !names) return '';
  const shown = oneLine(names);
  return ` (it names ${shown.length > 120 ? `${shown.slice(0, 119)}…` : shown})`;
}

/**
 * The reason part of an OpenSSL error line ("…:error:0A00010B:SSL routines:func:wrong version
 * number:file:line:"), else the code in words (ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC -> "sslv3 alert
 * bad record mac"), never the rest.
 */
function opensslReason(message: string, code: string): string {
  const m = /(?:^|[\s:])error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+)/.exec(message);
  if (m?.[1]) return m[1].trim();
  if (code.startsWith('ERR_SSL_')) return code.slice('ERR_SSL_'.length).toLowerCase().replace(/_/g, ' ');
  return 'no details';
}

/** A message with OpenSSL's internals (error codes, function names, source paths) reduced to its reason. */
export function withoutOpenSslInternals(message: string): string {
  const noAdvice = message.replace(
    /;?\s*if the root CA is installed locally, try running Node\.js with --use-system-ca/i,
    '',
  );
  return /:error:[0-9A-Fa-f]+:|(?:^|\s)error:[0-9A-Fa-f]{8}:/.test(noAdvice) ? opensslReason(noAdvice, '') : noAdvice;
}
