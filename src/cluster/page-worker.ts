// The page worker (page-split.ts starts it): parses a list page and applies the list's projection
// to each item, by name, and hands back only what is kept. It knows the projections pullguard's
// lists use; a name it does not know is an error, not an empty page.
import { parentPort } from 'node:worker_threads';
import { PODS, STUCK_PODS, WATCHED_PODS } from './all-pods.ts';
import { NODE_FACTS } from './nodes.ts';
import { type Projection, projectPage } from './page-split.ts';

const PROJECTIONS = new Map<string, Projection<unknown>>(
  [PODS, STUCK_PODS, WATCHED_PODS, NODE_FACTS].map((p) => [p.name, p as Projection<unknown>]),
);

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
