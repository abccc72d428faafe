// A list page's JSON is parsed off the event loop: a page of 500 pods is a few MiB, and parsing it
// in one piece held the webhook's reviews for 25-120 ms each on a busy 2-core machine (300 pages
// for 150,000 pods). A worker thread parses the page with the platform's JSON.parse and hands back
// each item as its own JSON text; the caller parses those one at a time and yields between slices
// (list-watch.ts), so no review waits for more than a slice. A small page is split here, alike.
// The worker's code is a few lines of source (eval): it is the same in the bundle and run from
// source, and it knows nothing of pods.
import { Worker } from 'node:worker_threads';

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const decoder = new TextDecoder();
parentPort.on('message', (bytes) => {
  let page;
  try {
    page = JSON.parse(decoder.decode(bytes));
  } catch (err) {
    parentPort.postMessage({ error: 'the list page is not JSON: ' + (err && err.message) });
    return;
  }
  const items = Array.isArray(page && page.items) ? page.items.map((item) => JSON.stringify(item)) : [];
  const metadata = (page && page.metadata) || {};
  parentPort.postMessage({ resourceVersion: metadata.resourceVersion, continue: metadata.continue, items });
});
`;

export interface SplitPage {
  resourceVersion?: string;
  continue?: string;
  /** each item's JSON text */
  items: string[];
}

/**
 * A page this small is split here: its parse takes about a millisecond, less than a worker's start,
 * so a small cluster's lists (and `pullguard check`'s node list) never start one.
 */
export const INLINE_BYTES = 128 * 1024;

/** A page split on this thread, as the worker splits it. */
function splitHere(bytes: ArrayBuffer): SplitPage {
  let page: { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown };
  try {
    page = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new Error(`the list page is not JSON: ${(err as Error).message}`);
  }
  const items = Array.isArray(page?.items) ? page.items.map((item) => JSON.stringify(item)) : [];
  const { resourceVersion, continue: cont } = page?.metadata ?? {};
  return {
    ...(resourceVersion !== undefined ? { resourceVersion } : {}),
    ...(cont !== undefined ? { continue: cont } : {}),
    items,
  };
}

/** One worker for the pages of one list, started by its first large page; close() ends it. */
export class PageSplitter {
  #worker: Worker | undefined;

  split(bytes: ArrayBuffer, signal: AbortSignal): Promise<SplitPage> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (bytes.byteLength <= INLINE_BYTES) {
      try {
        return Promise.resolve(splitHere(bytes));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.#worker ??= new Worker(SOURCE, { eval: true });
    const worker = this.#worker;
    worker.unref(); // a list in progress never holds the process open by itself
    return new Promise((resolve, reject) => {
      const done = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal.removeEventListener('abort', onAbort);
      };
      const onMessage = (m: SplitPage & { error?: string }) => {
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
      worker.postMessage(bytes, [bytes]);
    });
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }
}
