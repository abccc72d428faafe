// The page worker (page-split.ts starts it): parses a list page and applies the list's projection
// to each item, by name, and hands back only what is kept. It knows the projections pullguard's
// lists use; a name it does not know is an error, not an empty page.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { PODS, STUCK_PODS, WATCHED_PODS, NODE_FACTS, WORKLOADS } from './projections.ts';
import { type Projection, projectPage } from './page-split.ts';

const PROJECTIONS = new Map<string, Projection<unknown>>(
  [PODS, STUCK_PODS, WATCHED_PODS, NODE_FACTS, WORKLOADS].map((p) => [p.name, p as Projection<unknown>]),
);

// The lowest CPU priority for this thread alone (Linux: a thread's nice value is its own, set by its
// id): a list is background work, and on a busy node the webhook's reviews on the main thread come
// first. Elsewhere the thread keeps the process's priority.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(tid) && tid > 0) setPriority(tid, 19);
} catch {
  // no /proc (not Linux), or not allowed: the list only shares the CPU evenly
}

parentPort?.on('message', ({ bytes, projection }: { bytes: ArrayBuffer; projection: string }) => {
  const known = PROJECTIONS.get(projection);
  if (!known) {
    parentPort?.postMessage({ error: `the page worker knows no projection "${projection}"` });
    return;
  }
  try {
    parentPort?.postMessage(projectPage(bytes, known.project));
  } catch (err) {
    parentPort?.postMessage({ error: (err as Error).message });
  }
});
