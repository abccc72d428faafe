// Running pullguard's commands from a test: in this process with the output captured (fast, for
// the many small cases), or as the real process a person or CI runs (`node src/cli/main.ts …`).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { CliIO } from '../../src/cli/flags.ts';
import { repoRoot } from './fixtures.ts';

const run = promisify(execFile);

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** What the command reads and is told about its terminal; what it writes is captured. */
export interface InProcessOptions {
  stdin?: string;
  env?: NodeJS.ProcessEnv;
  isTTY?: boolean;
  stderrIsTTY?: boolean;
}

/** Runs `command` (runCheck, runDiagnose, main) in this process: its exit code and what it wrote. */
export async function runInProcess(
  command: (argv: string[], io: CliIO) => Promise<number>,
  argv: string[],
  o: InProcessOptions = {},
): Promise<Ran> {
  let stdout = '';
  let stderr = '';
  const code = await command(argv, {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    stdin: () => o.stdin ?? '',
    env: o.env ?? {},
    isTTY: o.isTTY ?? false,
    stderrIsTTY: o.stderrIsTTY ?? false,
  });
  return { code, stdout, stderr };
}

export interface ProcessOptions {
  /** written to stdin, which is then closed (at once when there is nothing to write) */
  input?: string | Buffer;
  /** default: the repository root */
  cwd?: string;
  /** the process's whole environment; default: this process's, with NO_COLOR=1 */
  env?: NodeJS.ProcessEnv;
  /** node's own flags, before the script */
  nodeArgs?: string[];
  timeout?: number;
}

/** The real command, `node src/cli/main.ts ARGV`: its exit code and output, however it exits. */
export async function runProcess(argv: string[], o: ProcessOptions = {}): Promise<Ran> {
  const child = run(process.execPath, [...(o.nodeArgs ?? []), join(repoRoot, 'src/cli/main.ts'), ...argv], {
    cwd: o.cwd ?? repoRoot,
    env: o.env ?? { ...process.env, NO_COLOR: '1' },
    ...(o.timeout ? { timeout: o.timeout } : {}),
  });
  child.child.stdin!.on('error', () => undefined); // a command that exits before reading all of it
  child.child.stdin!.end(o.input);
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as Ran;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
