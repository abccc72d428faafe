#!/usr/bin/env node
// pullguard: check images before the kubelet does. `pullguard check` for CI, `pullguard serve` for
// the admission webhook.

import { readFileSync } from 'node:fs';
import { runCheck, type CliIO } from './check.ts';

const USAGE = `Usage: pullguard <command> [options]

Commands:
  check   check images and manifests (for CI and before kubectl apply)
  serve   run the validating admission webhook

Run "pullguard <command> --help" for a command's options.
`;

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'check':
      return runCheck(rest, io);
    case 'serve': {
      const { runServe } = await import('./serve.ts');
      return runServe(rest, io);
    }
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

const invokedDirectly = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly) {
  // `npm run pullguard -- check -f x.yaml` runs in the package folder; paths are the caller's.
  if (process.env.npm_lifecycle_event === 'pullguard' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
  const io: CliIO = {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    stdin: () => readFileSync(0, 'utf8'),
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
  };
  main(process.argv.slice(2), io).then(
    (code) => {
      // serve keeps running; check ends here (its registry pools would otherwise hold the loop).
      if (code >= 0) process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`pullguard: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 2;
    },
  );
}
