// A webhook server from a benchmark's side: started and stopped in its own process (server-child.ts),
// and sent reviews as the API server sends them.

import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Agent, request } from 'undici';
import type { ChildMessage } from './server-child.ts';

const CHILD = fileURLToPath(new URL('./server-child.ts', import.meta.url));

/**
 * The node flags of the image's ENTRYPOINT (between node and the script), which every server in the
 * benchmarks runs with: pullguard as it ships, and the baselines under the same V8 settings.
 */
export function imageNodeFlags(dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8')): string[] {
  const line = dockerfile.split('\n').findLast((l) => /^ENTRYPOINT\s/.test(l));
  const entry = line ? (JSON.parse(line.replace(/^ENTRYPOINT\s+/, '')) as string[]) : [];
  const script = entry.findIndex((a) => a.endsWith('.js'));
  return script > 0 ? entry.slice(1, script) : [];
}

/** `kind` is 'pullguard', 'baseline' or 'node-baseline'; settings go to the child as BENCH_SERVER. */
export async function startServerProcess(
  kind: 'pullguard' | 'baseline' | 'node-baseline',
  settings: object,
  nodeOptions: string[] = [],
): Promise<{ child: ChildProcess; url: string }> {
  // stdout (pullguard's log, asynchronous as in production) goes to /dev/null: written, but not read.
  const child = fork(CHILD, [kind], {
    env: { ...process.env, BENCH_SERVER: JSON.stringify(settings) },
    execArgv: [...process.execArgv, ...imageNodeFlags(), ...nodeOptions],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${kind} server exited (${code})`)));
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'ready') resolve(m.url);
      if (m.type === 'error') reject(new Error(`${kind} server: ${m.message}`));
    });
  });
  child.removeAllListeners('exit');
  return { child, url };
}

/** Asks the server to stop; kills it when it has not exited 5 s later. */
export async function stopServerProcess(child: ChildProcess): Promise<void> {
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.send({ type: 'stop' });
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
}

/** POSTs an AdmissionReview to a webhook server's /validate, as the API server does. */
export function postReview(url: string, body: string | Buffer, agent: Agent, timeoutMs?: number) {
  return request(`${url}/validate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    dispatcher: agent,
    ...(timeoutMs === undefined ? {} : { headersTimeout: timeoutMs, bodyTimeout: timeoutMs }),
  });
}
