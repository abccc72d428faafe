// A list page is parsed and projected off the event loop: a page of 500 pods is a few MiB, and
// parsing it in one piece held the webhook's reviews for 25-120 ms each on a busy 2-core machine
// (300 pages for 150,000 pods). A worker thread (page-worker.ts) parses the page and applies the
// list's projection to each item there, so only what is kept (the stuck pods of a page, a node's
// facts) crosses to this thread: the page's text and object tree never land on this heap. A small
// page is parsed here, alike.
import { Worker } from 'node:worker_threads';

/**
 * What a list keeps of each object, by name: the page worker knows the same projections by their
 * names (page-worker.ts), and the caller applies `project` itself to watch events and small pages.
 */
export interface Projection<T> {
  name: string;
  /** parsed JSON → what is kept; undefined: nothing */
  project: (object: unknown) => T | undefined;
}

export interface ProjectedPage<T> {
  resourceVersion?: string;
  continue?: string;
  /** how many objects the page held */
  count: number;
  /** the projections that were kept, in the page's order */
  items: T[];
}

/**
 * A page this small is parsed here: its parse takes about a millisecond, less than a worker's
 * start, so a small cluster's lists (and `pullguard check`'s node list) never start one.
 */
export const INLINE_BYTES = 128 * 1024;

/** One page's JSON parsed and projected: here, and in the worker (page-worker.ts) alike. */
export function projectPage<T>(bytes: ArrayBuffer, project: (object: unknown) => T | undefined): ProjectedPage<T> {
  let page: { metadata?: { resourceVersion?: unknown; continue?: unknown }; items?: unknown };
  try {
    page = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new Error(`the list page is not JSON: ${(err as Error).message}`);
  }
  const all = Array.isArray(page?.items) ? (page.items as unknown[]) : [];
  const items: T[] = [];
  for (const object of all) {
    const kept = project(object);
    if (kept !== undefined) items.push(kept);
  }
  const { resourceVersion, continue: cont } = page?.metadata ?? {};
  return {
    ...(typeof resourceVersion === 'string' ? { resourceVersion } : {}),
    ...(typeof cont === 'string' ? { continue: cont } : {}),
    count: all.length,
    items,
  };
}

/**
 * The worker's module: beside this one when run from source; in the bundle (scripts/build.ts
 * builds it as an entry of its own, dist/cluster/page-worker.js) this code sits in a chunk one
 * folder below dist/.
 */
function workerFile(): URL {
  const here = import.meta.url;
  return here.endsWith('.ts') ? new URL('./page-worker.ts', here) : new URL('../cluster/page-worker.js', here);
}

/**
 * The page worker's heap. A page of about a MiB needs a few MiB to parse; left to itself, V8 let the
 * worker's heap grow to ~100 MiB of garbage over a long list before collecting (a 20,000-pod
 * `diagnose -A` peaked at 316 MiB, 221 MiB with these limits). A page too large for them ends the
 * worker with ERR_WORKER_OUT_OF_MEMORY, and the list asks for it again, half as long
 * (list-watch.ts listPages).
 */
const WORKER_HEAP = { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 };

interface Pending {
  resolve: (page: ProjectedPage<unknown>) => void;
  reject: (err: Error) => void;
}

/** One worker for the pages of one list, started by its first large page; close() ends it. */
export class PageSplitter {
  #worker: Worker | undefined;
  /** the split the worker is working on (one at a time) */
  #pending: Pending | undefined;

  split<T>(bytes: ArrayBuffer, projection: Projection<T>, signal: AbortSignal): Promise<ProjectedPage<T>> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (bytes.byteLength <= INLINE_BYTES) {
      try {
        return Promise.resolve(projectPage(bytes, projection.project));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const worker = this.#started();
    return new Promise<ProjectedPage<T>>((resolve, reject) => {
      const onAbort = () => {
        this.#pending = undefined;
        worker.unref();
        void this.close();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#pending = {
        resolve: (page) => {
          signal.removeEventListener('abort', onAbort);
          resolve(page as ProjectedPage<T>);
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      worker.ref();
      worker.postMessage({ bytes, projection: projection.name }, [bytes]);
    });
  }

  /** The worker, started with its handlers for the whole of its life: a worker that dies between pages (out of memory) ends quietly. */
  #started(): Worker {
    if (this.#worker) return this.#worker;
    // None of this process's node flags or --import hooks (a test runner's, a profiler's): the
    // worker runs the same wherever it is started, within its own heap limits.
    const worker = new Worker(workerFile(), { resourceLimits: WORKER_HEAP, execArgv: [] });
    // Held open only while it parses a page: a page being parsed is work the process waits for,
    // an idle worker (a list left, or between pages) never holds it open.
    worker.unref();
    const settle = (fn: (p: Pending) => void) => {
      const pending = this.#pending;
      this.#pending = undefined;
      worker.unref();
      if (pending) fn(pending);
    };
    worker.on('message', (m: ProjectedPage<unknown> & { error?: string }) =>
      settle((p) => (m.error ? p.reject(new Error(m.error)) : p.resolve(m))),
    );
    const dead = (err: Error) => {
      if (this.#worker === worker) this.#worker = undefined;
      settle((p) => p.reject(err));
    };
    worker.on('error', dead);
    worker.on('exit', (code) => dead(new Error(`the page parser stopped (${code})`)));
    this.#worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }
}
