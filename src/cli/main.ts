#!/usr/bin/env node
// pullguard: check images before the kubelet does. `pullguard check` for CI, `pullguard serve` for
// the admission webhook.

import type { CliIO } from './flags.ts';
import { version } from './version.ts';
import { errorLine } from '../cluster/api-errors.ts';
import { readInput } from './input.ts';

const USAGE = `Usage: pullguard <command> [options]

Commands:
  check     check images and manifests (for CI and before kubectl apply)
  serve     run the validating admission webhook
  diagnose  explain pods already stuck on an image pull (ErrImagePull, ImagePullBackOff, …)

Run "pullguard <command> --help" for a command's options; "pullguard --version" for the version.
`;

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    // Each command loads its own modules: --help and --version load none of them.
    case 'check': {
      const { runCheck } = await import('./check.ts');
      return runCheck(rest, io);
    }
    case 'diagnose': {
      const { runDiagnose } = await import('./diagnose.ts');
      return runDiagnose(rest, io);
    }
    case 'serve': {
      const { runServe } = await import('./serve.ts');
      return runServe(rest, io);
    }
    case '-V':
    case '--version':
    case 'version':
      io.stdout(`pullguard ${version()}\n`);
      return 0;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      io.stdout(USAGE);
      return command === undefined ? 2 : 0;
    default:
      io.stderr(`pullguard: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

/** The process's command line: stdio, exit code, and the one-line report of an unexpected error. */
export function runCli(argv: string[]): Promise<void> {
  const io: CliIO = {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    stdin: () => readInput(0, '-'),
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
    stderrIsTTY: Boolean(process.stderr.isTTY),
    columns: process.stdout.isTTY ? process.stdout.columns : undefined,
  };
  // A command whose work can no longer settle (a promise nobody will resolve, its sockets gone)
  // would let the process end with status 0 and no output: say so, and fail instead.
  let settled = false;
  process.once('exit', () => {
    if (settled) return;
    process.stderr.write('pullguard: internal error: the command stopped before it finished\n');
    process.exitCode = 2;
  });
  return main(argv, io).then(
    (code) => {
      settled = true;
      // serve keeps running; check ends here (its registry pools would otherwise hold the loop).
      if (code >= 0) process.exitCode = code;
    },
    (err: unknown) => {
      settled = true;
      // One line, never a stack trace: what failed is in the message (a Kubernetes API failure's
      // in words, not client-node's dump of its status, body and headers).
      process.stderr.write(`pullguard: ${errorLine(err).slice(0, 500)}\n`);
      process.exitCode = 2;
    },
  );
}

// `node src/cli/main.ts …` (npm run pullguard); the installed command goes through bin/pullguard.js.
const invokedDirectly = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly) {
  // `npm run pullguard -- check -f x.yaml` runs in the package folder; paths are the caller's.
  if (process.env.npm_lifecycle_event === 'pullguard' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
  void runCli(process.argv.slice(2));
}
