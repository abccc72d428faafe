// A promise raced with an abort signal, without leaving a listener behind: the shared cache's
// waiters and the registry transport's requests both stop waiting the moment their caller gives up.

/**
 * The promise's outcome, or a rejection with the signal's reason once the signal aborts first (now
 * or later); `onAbort` then runs, e.g. to drop what the promise brings when it comes. The abort
 * listener is removed as soon as the promise settles.
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  if (signal.aborted) {
    onAbort();
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(signal.reason);
    };
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(err);
      },
    );
  });
}
