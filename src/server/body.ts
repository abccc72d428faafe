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
//
// The API server sends each object's managedFields, which pullguard never reads and which took a
// third of JSON.parse's time on a real Deployment review. So an array written `"managedFields":[`
// in an object at depth 4 (an AdmissionReview's request.object.metadata and
// request.oldObject.metadata) is scanned for the limits like the rest and then left out of the text
// that is parsed: the object gets `"managedFields":[]`. Its content is not parsed at all.

import type { IncomingMessage } from 'node:http';

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

export function bodyTooLarge(bodyLimit: number): string {
  return `the request body is larger than the limit (${bodyLimit} bytes)`;
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
const PROTO = Buffer.from('__proto__"');
const CONSTRUCTOR = Buffer.from('constructor"');
const MANAGED_FIELDS = Buffer.from('managedFields":[');
/** the depth of an object's metadata in an AdmissionReview: the review, request, object, metadata */
const METADATA_DEPTH = 4;
/** arrays left out at most: a review has two (object and oldObject); a body made of many gets no more pieces */
const MAX_CUTS = 4;

/** Whether the string opening at `at` may be "__proto__" or "constructor" (or is cut by the chunk's end). */
function mayReachPrototype(chunk: Uint8Array, at: number): boolean {
  const first = chunk[at];
  const word = first === 0x5f ? PROTO : first === 0x63 ? CONSTRUCTOR : null;
  if (!word) return first === undefined || first === BACKSLASH;
  for (let k = 1; k < word.length; k++) {
    const c = chunk[at + k];
    if (c === undefined) return true;
    if (c !== word[k]) return false;
  }
  return true;
}

/** Whether `"managedFields":[` opens at `at` (all of it in this chunk; cut by its end: no). */
function managedFieldsAt(chunk: Uint8Array, at: number): boolean {
  if (at + MANAGED_FIELDS.length > chunk.length) return false;
  for (let k = 0; k < MANAGED_FIELDS.length; k++) if (chunk[at + k] !== MANAGED_FIELDS[k]) return false;
  return true;
}

/**
 * Depth and element counts of JSON text, fed chunk by chunk. Strings are skipped whole, and one
 * that opens with "__proto__" or "constructor" is noted, so that only those bodies are searched for
 * such keys once whole.
 */
export class JsonShape {
  depth = 0;
  maxDepth = 0;
  /** containers plus commas: at least the number of values after the first in each container */
  elements = 0;
  /** a string opened with "__proto__" or "constructor" (or a chunk ended where one might have) */
  prototypeKey = false;
  /** where each managedFields array at METADATA_DEPTH opens and closes (byte offsets in the text, in pairs) */
  readonly cuts: number[] = [];
  private inString = false;
  private escaped = false;
  /** bytes fed before this chunk */
  private fed = 0;
  /** where the `[` of a managedFields array will be; where it was, while it is open */
  private cutAt = -1;
  private cutOpen = -1;

  /** Feeds a chunk; returns why the text passes the limits, or undefined. */
  feed(chunk: Uint8Array, limits = { depth: MAX_DEPTH, elements: MAX_ELEMENTS }): string | undefined {
    // The state lives in locals while the loop runs (fields cost a load and a store per byte).
    let { depth, maxDepth, elements, inString, escaped, prototypeKey, cutAt, cutOpen } = this;
    const fed = this.fed;
    let problem: string | undefined;
    const end = chunk.length;
    for (let i = 0; i < end; i++) {
      let c = chunk[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else {
          // Most of a real body is string content: run to its end in one tight loop. (Two
          // Buffer.indexOf calls per string searched the rest of the chunk for a backslash each
          // time: a sixth of a cached review's CPU.)
          while (c !== QUOTE && c !== BACKSLASH && ++i < end) c = chunk[i]!;
          if (c === BACKSLASH) escaped = true;
          else if (c === QUOTE) inString = false;
        }
        continue;
      }
      if (c === QUOTE) {
        inString = true;
        if (!prototypeKey && mayReachPrototype(chunk, i + 1)) prototypeKey = true;
        // A string followed by a colon is a key: "managedFields" whose value is an array.
        if (
          depth === METADATA_DEPTH &&
          chunk[i + 1] === MANAGED_FIELDS[0] &&
          this.cuts.length < 2 * MAX_CUTS &&
          managedFieldsAt(chunk, i + 1)
        )
          cutAt = fed + i + MANAGED_FIELDS.length;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        elements++;
        if (++depth > limits.depth) {
          problem = `the request body nests deeper than ${limits.depth} levels; no Kubernetes object does`;
          break;
        }
        if (depth > maxDepth) maxDepth = depth;
        if (fed + i === cutAt) cutOpen = cutAt;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        // Back at the metadata's depth: the array closed (with a brace the text is not JSON: no cut).
        if (--depth === METADATA_DEPTH && cutOpen >= 0) {
          if (c === CLOSE_BRACKET) this.cuts.push(cutOpen, fed + i);
          cutOpen = -1;
        }
      } else if (c === COMMA && ++elements > limits.elements) {
        problem = `the request body has more than ${limits.elements} JSON elements; no Kubernetes object does`;
        break;
      }
    }
    this.depth = depth;
    this.maxDepth = maxDepth;
    this.elements = elements;
    this.inString = inString;
    this.escaped = escaped;
    this.prototypeKey = prototypeKey;
    this.cutAt = cutAt;
    this.cutOpen = cutOpen;
    this.fed = fed + end;
    return problem;
  }

  /** the memory this much JSON is estimated to take once parsed, beyond its text */
  static cost(bytes: number, elements: number): number {
    // chunks, their concatenation, the decoded string, and what parsing makes of it
    return bytes * 4 + elements * BYTES_PER_ELEMENT;
  }
}

/** The text of `body` with the content of each cut array left out (its brackets kept). */
export function textWithout(body: Buffer, cuts: readonly number[]): string {
  if (!cuts.length) return body.toString('utf8');
  // Cuts fall on brackets, ASCII bytes: every piece is whole UTF-8.
  let text = '';
  let from = 0;
  for (let k = 0; k < cuts.length; k += 2) {
    text += body.toString('utf8', from, cuts[k]! + 1);
    from = cuts[k + 1]!;
  }
  return text + body.toString('utf8', from);
}

/** What one body holds of the budget; given back once its review is done (or it is refused). */
export interface BodyAccount {
  bytes: number;
}

/**
 * Reads one JSON body from `stream` within `limit` bytes, the shape limits and the shared budget
 * (the estimate taken is left in `account`), and calls `done` once: with the parsed value, or with a
 * BodyRefused (400 or 429) or the stream's error. On a refusal the rest of the body is drained.
 */
export function readJsonBody(
  stream: IncomingMessage,
  contentLength: string | undefined,
  limit: number,
  budget: BodyBudget,
  account: BodyAccount,
  done: (err: Error | null, value?: unknown) => void,
): void {
  const declared = Number(contentLength ?? Number.NaN);
  if (declared > limit) {
    done(new BodyRefused(400, bodyTooLarge(limit)));
    return;
  }
  const shape = new JsonShape();
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  const finish = (err: Error | null, value?: unknown) => {
    if (finished) return;
    finished = true;
    stream.removeListener('data', onData);
    stream.removeListener('end', onEnd);
    stream.removeListener('close', onClose);
    if (err) stream.resume();
    done(err, value);
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > limit) return finish(new BodyRefused(400, bodyTooLarge(limit)));
    const problem = shape.feed(chunk, { depth: MAX_DEPTH, elements: MAX_ELEMENTS });
    if (problem) return finish(new BodyRefused(400, problem));
    const cost = JsonShape.cost(received, shape.elements);
    if (cost > account.bytes) {
      if (!budget.take(cost - account.bytes))
        return finish(
          new BodyRefused(429, 'pullguard is holding too many large review bodies at once; the API server may retry'),
        );
      account.bytes = cost;
    }
    chunks.push(chunk);
  };
  const onEnd = () => {
    if (!Number.isNaN(declared) && declared !== received)
      return finish(new BodyRefused(400, 'the Content-Length does not match the body'));
    if (!received) return finish(new BodyRefused(400, 'the request body is empty'));
    // One chunk (most reviews) is decoded as it is; more are joined once, their length known.
    const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
    chunks.length = 0;
    // As fastify's own parser: keys that would reach an object's prototype are refused (anywhere).
    if (shape.prototypeKey && /"(?:__proto__|constructor)"\s*:/.test(whole.toString('utf8')))
      return finish(new BodyRefused(400, 'the request body is not valid JSON: it sets __proto__ or constructor'));
    try {
      finish(null, JSON.parse(textWithout(whole, shape.cuts)));
    } catch (err) {
      finish(new BodyRefused(400, `the request body is not valid JSON: ${(err as Error).message.split('\n')[0]}`));
    }
  };
  // A connection that goes away mid-body ends the stream with 'close' (and 'error' only for a stream
  // that has an 'error' listener: an IncomingMessage does not need one).
  const onClose = () => finish(new BodyRefused(400, 'the request ended before its body did'));
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('close', onClose);
}
