// Reading one input (a file or stdin) with a size bound: its own module so the CLI's entry point
// can read stdin without loading the YAML parser.
import { closeSync, openSync, readSync } from 'node:fs';
import { PullguardError } from '../errors.ts';
import { systemErrorText } from '../system-errors.ts';

export class InputError extends PullguardError {
  readonly code = 'input';
}

/** bytes read from one file or stdin at most (a 100 MB YAML ran out of heap; -f /dev/zero never ended) */
export const MAX_INPUT_BYTES = 32 * 1024 * 1024;

/** Reads a file (or fd 0, stdin) up to MAX_INPUT_BYTES; more is an InputError naming the limit. */
export function readInput(file: string | 0, source: string, max = MAX_INPUT_BYTES): string {
  let fd: number;
  try {
    fd = file === 0 ? 0 : openSync(file, 'r');
  } catch (err) {
    throw new InputError(`${source}: cannot read it: ${systemErrorText(err, 'read')}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, max + 1 - size));
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        // A non-blocking stdin with nothing yet: wait a little and read again.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          continue;
        }
        if ((err as NodeJS.ErrnoException).code === 'EOF') break;
        throw new InputError(`${source}: cannot read it: ${systemErrorText(err, 'read')}`);
      }
      if (n === 0) break;
      size += n;
      if (size > max)
        throw new InputError(
          `${source}: larger than ${max / 1024 / 1024} MiB; pullguard reads manifests up to that size`,
        );
      chunks.push(buf.subarray(0, n));
    }
  } finally {
    if (file !== 0) closeSync(fd);
  }
  return Buffer.concat(chunks).toString('utf8');
}
