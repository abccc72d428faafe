// The one way tests wait for something that happens on its own time: a log line, a closed
// connection, a watch that caught up. Polls a check; the timeout is a net for what never comes,
// not a speed limit (a busy machine only makes the answer later), so give it room.

export interface WaitOptions {
  /** what is awaited, for the message when it never comes */
  what: string;
  /** the net; 60 s unless the test has a reason for another */
  timeoutMs?: number;
  /** the pause between checks (an API server or a process is asked less often than a variable) */
  everyMs?: number;
}

/**
 * Calls `check` until it gives a value (anything but undefined, null or false) and returns it. A
 * check that throws has not given one yet (an API server still starting); the last error is in
 * the message when the net is reached.
 */
export async function waitFor<T>(
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  { what, timeoutMs = 60_000, everyMs = 20 }: WaitOptions,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > end) {
      const cause = lastError === undefined ? '' : ` (last error: ${(lastError as Error)?.message ?? lastError})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
