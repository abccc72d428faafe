// Servers a test starts as child processes (etcd, kube-apiserver, containerd) are killed when the
// test process exits, however it exits: a failed test must not leave them running.
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let hooked = false;

/** Kills the child with the test process, until it has exited (or its owner stopped it). */
export function killOnExit(proc: ChildProcess): void {
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const p of live) p.kill('SIGKILL');
    });
  }
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
}
