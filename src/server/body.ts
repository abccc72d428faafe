// Reading AdmissionReview bodies with bounded memory. JSON.parse of a 16 MiB `[{},{},…]` took
// ~760 MB and an 8M-deep `[[[…]]]` ~1 GB; so each body is scanned as it arrives for its nesting
// depth and element count, and refused the moment it passes limits real objects never reach.
// A budget shared by all requests bounds what bodies being read and reviewed hold at once.
//
// Real objects, measured (test/server/body.test.ts, test/helpers/big-objects.ts): a Deployment
// UPDATE whose pod template has 40 containers with 250 env entries each, managedFields included, in
// object and oldObject: 2.8 MiB, depth 15, 222,911 elements — near the API server's 3 MiB request
// limit, so no real review has many more. The limits below are 4× that depth and 2.2× those elements (a
// parsed element costs ~50-140 bytes: 500,000 of them fit the default BodyBudget, more would not).

export const MAX_DEPTH = 64;
export const MAX_ELEMENTS = 500_000;
/** what a parsed element costs in the heap, roughly (an empty object is ~56 bytes; strings more) */
const BYTES_PER_ELEMENT = 48;

export class BodyRefused extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

/** Shared by every request: the estimated memory held by bodies being read, parsed or reviewed. */
export class BodyBudget {
  private used = 0;
  readonly limit: number;
  constructor(limit: number) {
    this.limit = limit;
  }
  /** Takes `bytes` more; false (and nothing taken) when that would pass the limit. */
  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }
  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
  get inUse(): number {
    return this.used;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/** Depth and element counts of JSON text, fed chunk by chunk. Strings are skipped whole. */
export class JsonShape {
  depth = 0;
  maxDepth = 0;
  /** containers plus commas: at least the number of values after the first in each container */
  elements = 0;
  private inString = false;
  private escaped = false;

  /** Feeds a chunk; returns why the text passes the limits, or undefined. */
  feed(chunk: Uint8Array, limits = { depth: MAX_DEPTH, elements: MAX_ELEMENTS }): string | undefined {
    const end = chunk.length;
    for (let i = 0; i < end; i++) {
      let c = chunk[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else {
          // Most of a real body is string content: run to its end in one tight loop. (Two
          // Buffer.indexOf calls per string searched the rest of the chunk for a backslash each
          // time: a sixth of a cached review's CPU.)
          while (c !== QUOTE && c !== BACKSLASH && ++i < end) c = chunk[i]!;
          if (c === BACKSLASH) this.escaped = true;
          else if (c === QUOTE) this.inString = false;
        }
        continue;
      }
      switch (c) {
        case QUOTE:
          this.inString = true;
          break;
        case OPEN_BRACE:
        case OPEN_BRACKET:
          this.elements++;
          if (++this.depth > limits.depth)
            return `the request body nests deeper than ${limits.depth} levels; no Kubernetes object does`;
          if (this.depth > this.maxDepth) this.maxDepth = this.depth;
          break;
        case CLOSE_BRACE:
        case CLOSE_BRACKET:
          this.depth--;
          break;
        case COMMA:
          this.elements++;
          break;
      }
      if (this.elements > limits.elements)
        return `the request body has more than ${limits.elements} JSON elements; no Kubernetes object does`;
    }
    return undefined;
  }

  /** the memory this much JSON is estimated to take once parsed, beyond its text */
  static cost(bytes: number, elements: number): number {
    // chunks, their concatenation, the decoded string, and what parsing makes of it
    return bytes * 4 + elements * BYTES_PER_ELEMENT;
  }
}
