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

/** One worker for the pages of one list, started by its first large page; close() ends it. */
export class PageSplitter {
  #worker: Worker | undefined;

  split<T>(bytes: ArrayBuffer, projection: Projection<T>, signal: AbortSignal): Promise<ProjectedPage<T>> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (bytes.byteLength <= INLINE_BYTES) {
      try {
        return Promise.resolve(projectPage(bytes, projection.project));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.#worker ??= new Worker(workerFile());
    const worker = this.#worker;
    worker.unref(); // a list in progress never holds the process open by itself
    return new Promise((resolve, reject) => {
      const done = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal.removeEventListener('abort', onAbort);
      };
      const onMessage = (m: ProjectedPage<T> & { error?: string }) => {
        done();
        if (m.error) reject(new Error(m.error));
        else resolve(m);
      };
      const onError = (err: Error) => {
        done();
        this.#worker = undefined;
        reject(err);
      };
      const onExit = (code: number) => onError(new Error(`the page parser stopped (${code})`));
      const onAbort = () => {
        done();
        void this.close();
        reject(signal.reason);
      };
      if (signal.aborted) return onAbort();
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      signal.addEventListener('abort', onAbort, { once: true });
      worker.postMessage({ bytes, projection: projection.name }, [bytes]);
    });
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }
}
