// What a failed file or socket operation means, in words: Node reports only a code (ENOENT,
// EADDRINUSE), which tells a person neither what happened nor what to do. The caller names the
// path or address and the setting to change; this says what went wrong with it.

import { getSystemErrorMessage } from 'node:util';
import { oneLine } from './findings.ts';

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
  const message = typeof e?.message === 'string' && e.message ? oneLine(e.message) : undefined;
  return message ?? code ?? String(err);
}
