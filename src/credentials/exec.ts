// Runs a small credential program (a docker credential helper, a kubelet credential provider plugin):
// input on stdin, JSON on stdout, within a time limit, killed when it overstays. Its stdout may hold
// secrets, so nothing of it ever goes into an error message; stderr is shown only as one short line
// with whatever looks like a credential redacted, and not at all when it is JSON (an answer printed
// to the wrong stream).

import { spawn } from 'node:child_process';
import { cut, oneLine, redact } from '../text.ts';
import { systemErrorText } from '../system-errors.ts';

export interface ExecResult {
  ok: boolean;
  stdout: string;
  /** why it failed, for people: never its stdout */
  error?: string;
  /** the exit code when it exited non-zero */
  code?: number;
  /** its stderr, one short line, redacted; absent when it was JSON */
  stderr?: string;
  /** it was killed for overstaying its time */
  timedOut?: boolean;
}

const MAX_OUTPUT = 1024 * 1024;

export function runCredentialProgram(
  file: string,
  args: readonly string[],
  input: string,
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; name: string },
): Promise<ExecResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const done = (r: ExecResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    let child: ReturnType<typeof spawn>;
    try {
      // Its own process group, so that a timeout kills whatever it started too (a shell's `sleep`
      // would otherwise hold the pipes, and this process, open).
      child = spawn(file, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      resolve({ ok: false, stdout: '', error: `${opts.name} could not be started: ${(err as Error).message}` });
      return;
    }
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      child.stdout?.destroy();
      child.stderr?.destroy();
      done({ ok: false, stdout: '', timedOut: true, error: `${opts.name} did not answer within ${opts.timeoutMs} ms` });
    }, opts.timeoutMs);
    child.on('error', (err: NodeJS.ErrnoException) => {
      done({
        ok: false,
        stdout: '',
        error:
          err.code === 'ENOENT'
            ? `${opts.name} is not installed (${file} not found)`
            : err.code === 'EACCES'
              ? `${opts.name} cannot be run (${file}: permission denied)`
              : `${opts.name} could not be started: ${systemErrorText(err, 'run')}`,
      });
    });
    child.stdout!.on('data', (d: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += d.toString('utf8');
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString('utf8');
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(input);
    child.on('close', (code, signal) => {
      const err = stderrLine(stderr);
      if (code === 0) return done({ ok: true, stdout, ...(err ? { stderr: err } : {}) });
      done({
        ok: false,
        stdout,
        ...(code !== null ? { code } : {}),
        ...(err ? { stderr: err } : {}),
        error: `${opts.name} ${code !== null ? `exited with status ${code}` : `was killed (${signal})`}${err ? `: ${err}` : ''}`,
      });
    });
  });
}

/**
 * What a program's stderr may show of itself: nothing when it is (or starts like) JSON, which is what
 * a program writes when it prints its answer, credentials included, to the wrong stream; otherwise
 * one line, redacted, then cut (redacting first, so that a cut never leaves half a secret unmatched).
 */
export function stderrLine(stderr: string): string {
  const text = stderr.trim();
  if (!text || /^[[{"]/.test(text) || parsesAsJson(text)) return '';
  return cut(oneLine(redact(text)), 200);
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
