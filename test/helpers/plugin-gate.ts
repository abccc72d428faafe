// The log of a gated credential provider plugin (a script that writes "start PID" and "end PID" to
// $GATE/log and waits in between for a file go-PID, or go-all): what the plugin tests count.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './wait.ts';

export interface GateLog {
  dir: string;
  lines(): string[];
  /** the PIDs of the runs that have started, in order */
  started(): string[];
  /** the most runs ever between their start and end lines (a process counts until it exits, so at least this many) */
  maxInFlight(): number;
  release(pid: string): void;
  releaseAll(): void;
  /** lets every run go as it starts, until `done` settles */
  releaseUntil<T>(done: Promise<T>, what: string): Promise<T>;
}

/** A new gate folder `dir` (made here) and the reading of its log. */
export function gateLog(dir: string): GateLog {
  mkdirSync(dir);
  const lines = () => (existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8').trim().split('\n') : []);
  return {
    dir,
    lines,
    started: () =>
      lines()
        .filter((l) => l.startsWith('start '))
        .map((l) => l.slice(6)),
    maxInFlight() {
      let now = 0;
      let max = 0;
      for (const l of lines()) {
        now += l.startsWith('start ') ? 1 : -1;
        max = Math.max(max, now);
      }
      return max;
    },
    release: (pid) => writeFileSync(join(dir, `go-${pid}`), ''),
    releaseAll: () => writeFileSync(join(dir, 'go-all'), ''),
    async releaseUntil(done, what) {
      let finished = false;
      const result = done.finally(() => {
        finished = true;
      });
      const released = new Set<string>();
      await waitFor(
        () => {
          for (const pid of this.started()) if (!released.has(pid) && released.add(pid)) this.release(pid);
          return finished;
        },
        { what, timeoutMs: 600_000, everyMs: 20 },
      );
      return result;
    },
  };
}
