// The one place where an error becomes what a person sees and an exit status, for every command.
// Errors of the vocabulary (src/errors.ts) are one line and their own exit status; anything else
// is a bug and goes up to main, which reports it as one.

import { PullguardError } from '../errors.ts';
import { oneLine } from '../text.ts';
import type { CliIO } from './flags.ts';

export function exitStatusFor(
  command: 'check' | 'serve' | 'diagnose',
  err: unknown,
  io: Pick<CliIO, 'stderr'>,
): number {
  if (!(err instanceof PullguardError)) throw err;
  // Some messages list several places (one per line): each line is a line of its own.
  for (const line of err.message.split('\n')) io.stderr(`pullguard ${command}: ${oneLine(line)}\n`);
  if (err.code === 'usage') io.stderr(`Run "pullguard ${command} --help" for usage.\n`);
  return err.exitStatus;
}
