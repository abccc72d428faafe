// Reading AdmissionReview bodies with bounded memory. JSON.parse of a 16 MiB `[{},{},…]` took
// ~760 MB and an 8M-deep `[[[…]]]` ~1 GB; so each body is scanned as it arrives for its nesting
// depth, element count and the memory parsing it would take, and is never parsed past those limits.
// A budget shared by all requests bounds what bodies being read and reviewed hold at once.
//
// The limits are sized from what the API server sends, not from what real objects usually hold: a
// valid pod with 510,000 empty args used to get a 400 here, and failurePolicy: Ignore let it in
// unchecked. A well-formed review past a limit is answered all the same (allowed, saying it was not
// checked and why: BodyOverLimits); only a body that is no AdmissionReview gets a 400.
//
// Real objects, measured (test/server/body.test.ts, test/helpers/big-objects.ts): a Deployment
// UPDATE whose pod template has 40 containers with 250 env entries each, managedFields included, in
// object and oldObject: 2.8 MiB, depth 15, 222,911 elements.
//
// The API server sends each object's managedFields, which pullguard never reads and which took a
// third of JSON.parse's time on a real Deployment review. So an array written `"managedFields":[`
// in request.object.metadata or request.oldObject.metadata (each key on that path written as
// encoding/json writes it, `"object":{`; a `managedFields` anywhere else, in userInfo.extra or a
// spec, is kept) is scanned for the limits like the rest and then left out of the text that is
// parsed: the object gets `"managedFields":[]`. Its content is not parsed at all, so invalid JSON
// inside it (brackets and strings balanced) is accepted: the API server, which writes it with
// encoding/json, never sends such a body, only a forged one could, and its content is never used.

import type { IncomingMessage } from 'node:http';
import { type ReviewHead, reviewHead } from '../admission/review.ts';
import { PullguardError } from '../errors.ts';

/**
 * kube-apiserver's default MaxRequestBodyBytes (k8s.io/apiserver server.NewConfig): twice etcd's
 * 1.5 MiB request limit, as a JSON body may be twice the protobuf that is stored.
 */
export const API_SERVER_BODY_MAX = 3 * 1024 * 1024;
/**
 * The largest review body the API server sends: an UPDATE carries object and oldObject, each as
 * large as a request body it accepts, plus the review's own fields (userInfo, options) and what
 * defaulting adds (1 MiB for those). server.bodyLimit (8 MiB) is above it.
 */
export const REVIEW_BODY_MAX = 2 * API_SERVER_BODY_MAX + 1024 * 1024;
/**
 * Elements (each `{`, `[` and `,`, as JsonShape counts them) that REVIEW_BODY_MAX bytes can hold:
 * the densest JSON is `{},` or `[],`, two in three bytes (`"",` is one in three, `0,` one in two).
 * So no body the API server sends passes it; what bounds memory is JsonShape.cost and the budget.
 */
export const MAX_ELEMENTS = Math.ceil((REVIEW_BODY_MAX * 2) / 3);
/** No Kubernetes object nests this deep (a Deployment review is 15 levels). */
export const MAX_DEPTH = 64;
/** what a parsed object or array costs in the heap, roughly (measured: an empty object 64 bytes, an array 40) */
const BYTES_PER_CONTAINER = 80;
/** what each further value costs: its slot in its container (8 bytes) and the container's growth (measured: 8-11) */
const BYTES_PER_VALUE = 16;
/** the start of a body kept when it passes a limit: request.uid is there (the API server writes it first) */
export const HEAD_BYTES = 64 * 1024;

/**
 * A request the server will not review: 'bad-request', a body that is no JSON AdmissionReview (or
 * not whole); 'busy', one that does not fit beside the others now (the API server may send it again).
 * server/app.ts answers each code with its HTTP status.
 */
export class BodyRefused extends PullguardError {
  readonly code: 'bad-request' | 'busy';
  constructor(code: 'bad-request' | 'busy', message: string) {
    super(message);
    this.code = code;
  }
}

export function bodyTooLarge(bodyLimit: number): string {
  return `the request body is larger than the limit (${bodyLimit} bytes)`;
}

/** Which of pullguard's own limits a body passed: the metric's label. */
export type BodyLimit = 'size' | 'elements' | 'depth' | 'memory';

/**
 * A well-formed review past one of pullguard's limits: not parsed, so its images cannot be checked.
 * `head` is what the body's start says (request.uid and the fields before the object).
 */
export class BodyOverLimits {
  readonly limit: BodyLimit;
  /** why, in words that follow "its review body" */
  readonly reason: string;
  readonly head: ReviewHead;
  constructor(limit: BodyLimit, reason: string, head: ReviewHead) {
    this.limit = limit;
    this.reason = reason;
    this.head = head;
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
const PROTO = Buffer.from('__proto__"');
const CONSTRUCTOR = Buffer.from('constructor"');
const MANAGED_FIELDS = Buffer.from('managedFields":[');
/** the keys leading to an object's metadata, by the depth of the object holding them: the review, request, (old)object */
const METADATA_PATH = [
  [],
  [Buffer.from('request":{')],
  [Buffer.from('object":{'), Buffer.from('oldObject":{')],
  [Buffer.from('metadata":{')],
];
/** the depth of an object's metadata in an AdmissionReview: the review, request, object, metadata */
const METADATA_DEPTH = 4;
/** arrays left out at most: a review has two (object and oldObject); a body made of many gets no more pieces */
const MAX_CUTS = 4;

/**
 * Whether the string opening at `at` may be "__proto__" or "constructor": spelled so, or with an
 * escape before it differs (`"\u005f_proto__"`, `"_\u005fproto__"`), or cut by the chunk's end.
 */
function mayReachPrototype(chunk: Uint8Array, at: number): boolean {
  const first = chunk[at];
  const word = first === 0x5f ? PROTO : first === 0x63 ? CONSTRUCTOR : null;
  if (!word) return first === undefined || first === BACKSLASH;
  for (let k = 1; k < word.length; k++) {
    const c = chunk[at + k];
    if (c === undefined || c === BACKSLASH) return true;
    if (c !== word[k]) return false;
  }
  return true;
}

/**
 * Keys spelled with the letters of __proto__ and constructor, or escapes, then the value's first
 * character. The key is decoded before it is compared: `"\u005f_proto__"` is `__proto__` to JSON.parse.
 */
const PROTOTYPE_KEY = /"((?:[_protcnsu]|\\u[0-9a-fA-F]{4}|\\[^u])+)"\s*:\s*(.)/g;

/**
 * Whether JSON text sets a key that would reach an object's prototype, as fastify's parser
 * (secure-json-parse) refuses: `__proto__` anywhere (managedFields included), or `constructor`
 * holding an object. A `constructor` with a string value is a valid label or nodeSelector key: a
 * pod labelled so was refused, and failurePolicy: Ignore let it in unchecked.
 */
export function setsPrototype(text: string): boolean {
  for (const m of text.matchAll(PROTOTYPE_KEY)) {
    let key: unknown;
    try {
      key = JSON.parse(`"${m[1]}"`);
    } catch {
      continue; // an invalid escape: JSON.parse refuses the body anyway
    }
    if (key === '__proto__' || (key === 'constructor' && m[2] === '{')) return true;
  }
  return false;
}

/** Whether `word` is at `at` (all of it in this chunk; cut by its end: no). */
function wordAt(chunk: Uint8Array, at: number, word: Uint8Array): boolean {
  if (at + word.length > chunk.length) return false;
  for (let k = 0; k < word.length; k++) if (chunk[at + k] !== word[k]) return false;
  return true;
}

/** The length of the key of METADATA_PATH that opens at `at` for an object at `depth`, or 0. */
function pathKeyAt(chunk: Uint8Array, at: number, depth: number): number {
  for (const word of METADATA_PATH[depth] ?? []) if (wordAt(chunk, at, word)) return word.length;
  return 0;
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
  /** objects and arrays */
  containers = 0;
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
  /** how deep the open objects follow METADATA_PATH (4: in an object's metadata) */
  private onPath = 0;
  /** where the `{` of the next object on that path will be */
  private pathAt = 0;

  /**
   * Feeds a chunk; returns why the text passes the limits (the first limit passed), or undefined.
   * The whole chunk is scanned either way: a body past a limit is still followed to its end.
   */
  feed(chunk: Uint8Array, limits = { depth: MAX_DEPTH, elements: MAX_ELEMENTS }): string | undefined {
    // The state lives in locals while the loop runs (fields cost a load and a store per byte).
    let { depth, maxDepth, elements, containers, inString, escaped, prototypeKey, cutAt, cutOpen, onPath, pathAt } =
      this;
    let depthLimit = limits.depth;
    let elementLimit = limits.elements;
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
        // A string followed by a colon is a key: in an object's metadata "managedFields" whose value
        // is an array, above it the next key of the path whose value is an object.
        if (depth === onPath) {
          if (depth === METADATA_DEPTH) {
            if (
              chunk[i + 1] === MANAGED_FIELDS[0] &&
              this.cuts.length < 2 * MAX_CUTS &&
              wordAt(chunk, i + 1, MANAGED_FIELDS)
            )
              cutAt = fed + i + MANAGED_FIELDS.length;
          } else if (depth > 0) {
            const length = pathKeyAt(chunk, i + 1, depth);
            if (length) pathAt = fed + i + length;
          }
        }
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        elements++;
        containers++;
        if (++depth > depthLimit) {
          problem ??= `nests deeper than ${depthLimit} levels`;
          depthLimit = Infinity;
        }
        if (depth > maxDepth) maxDepth = depth;
        if (fed + i === cutAt) cutOpen = cutAt;
        // the review itself, or the object a key of the path opened
        else if (depth === onPath + 1 && c === OPEN_BRACE && (depth === 1 || fed + i === pathAt)) onPath = depth;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        // Back at the metadata's depth: the array closed (with a brace the text is not JSON: no cut).
        if (--depth === METADATA_DEPTH && cutOpen >= 0) {
          if (c === CLOSE_BRACKET) this.cuts.push(cutOpen, fed + i);
          cutOpen = -1;
        }
        if (depth < onPath) onPath = depth;
      } else if (c === COMMA && ++elements > elementLimit) {
        problem ??= `has more than ${elementLimit} JSON elements`;
        elementLimit = Infinity;
      }
    }
    this.depth = depth;
    this.maxDepth = maxDepth;
    this.elements = elements;
    this.containers = containers;
    this.inString = inString;
    this.escaped = escaped;
    this.prototypeKey = prototypeKey;
    this.cutAt = cutAt;
    this.cutOpen = cutOpen;
    this.onPath = onPath;
    this.pathAt = pathAt;
    this.fed = fed + end;
    return problem;
  }

  /** whether the text fed so far ends where a JSON value may end (not inside a string or a container) */
  get closed(): boolean {
    return !this.inString && this.depth === 0;
  }

  /** the memory the text fed so far is estimated to take once parsed, its text included */
  cost(bytes: number): number {
    // chunks, their concatenation, the decoded string, and what parsing makes of it
    const values = this.elements - this.containers;
    return bytes * 4 + this.containers * BYTES_PER_CONTAINER + values * BYTES_PER_VALUE;
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
 * (the estimate taken is left in `account`), and calls `done` once: with the parsed value; with a
 * BodyOverLimits for a well-formed review past a limit; or with a BodyRefused ('bad-request' or 'busy') or the
 * stream's error. On a refusal the rest of the body is drained.
 *
 * A body past a limit is not kept: its first HEAD_BYTES are, and the rest is scanned to its end
 * (at most 4 × the larger of `limit` and REVIEW_BODY_MAX) to see that it closes like JSON. Then
 * the head must be an AdmissionReview with a request.uid (the API server writes the uid first):
 * only then can the answer name the request, so a body without one there gets a 400, as does one
 * that is not JSON.
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
  // Past the limit a body is still read (not kept) for its answer: any the API server sends, even
  // under a small server.bodyLimit. Four times more is no review body at all.
  const scanLimit = 4 * Math.max(limit, REVIEW_BODY_MAX);
  if (declared > scanLimit) {
    done(new BodyRefused('bad-request', bodyTooLarge(limit)));
    return;
  }
  const shape = new JsonShape();
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  /** once past a limit: which, why, and the body's first bytes */
  let over:
    | { limit: BodyLimit; reason: string; head: Buffer[]; headBytes: number; review: ReviewHead | undefined }
    | undefined;
  const finish = (err: Error | null, value?: unknown) => {
    if (finished) return;
    finished = true;
    stream.removeListener('data', onData);
    stream.removeListener('end', onEnd);
    stream.removeListener('close', onClose);
    if (err) stream.resume();
    done(err, value);
  };
  /** Past a limit: the budget is given back and nothing more is kept but the head. */
  const pass = (which: BodyLimit, reason: string) => {
    budget.give(account.bytes);
    account.bytes = 0;
    over = { limit: which, reason, head: [], headBytes: 0, review: undefined };
    for (const chunk of chunks) keepHead(chunk);
    chunks.length = 0;
  };
  const keepHead = (chunk: Buffer) => {
    if (over && over.headBytes < HEAD_BYTES) {
      over.head.push(chunk);
      over.headBytes += chunk.length;
    }
  };
  /** A chunk of a body past a limit: scanned (`fed` if it was already), its start kept for the head. */
  const readPast = (chunk: Buffer, fed: boolean) => {
    if (received > scanLimit) return finish(new BodyRefused('bad-request', bodyTooLarge(limit)));
    if (!fed) shape.feed(chunk, { depth: Infinity, elements: Infinity });
    keepHead(chunk);
    headOf(false);
  };
  /** The review the head holds, once the head is whole (or the body ended); none is a 400 at once. */
  const headOf = (ended: boolean): ReviewHead | undefined => {
    if (!over || over.review) return over?.review;
    if (!ended && over.headBytes < HEAD_BYTES) return undefined;
    const head = reviewHead(Buffer.concat(over.head).subarray(0, HEAD_BYTES).toString('utf8'));
    over.head.length = 0;
    if (typeof head === 'string') {
      finish(new BodyRefused('bad-request', `the request body ${over.reason}, and ${head}`));
      return undefined;
    }
    over.review = head;
    return head;
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (over) return readPast(chunk, false);
    if (received > limit) {
      pass('size', `is larger than the limit (${limit} bytes, server.bodyLimit)`);
      return readPast(chunk, false);
    }
    const problem = shape.feed(chunk, { depth: MAX_DEPTH, elements: MAX_ELEMENTS });
    if (problem) {
      pass(problem.startsWith('nests') ? 'depth' : 'elements', problem);
      return readPast(chunk, true);
    }
    const cost = shape.cost(received);
    if (cost > account.bytes) {
      // A body that could never fit the whole budget is past a limit of its own; one that does not
      // fit beside the others gets a 429 (the API server may send it again).
      if (cost > budget.limit) {
        pass(
          'memory',
          `would take about ${mib(cost)} MiB to parse, more than server.bodyMemory (${mib(budget.limit)} MiB)`,
        );
        return readPast(chunk, true);
      }
      if (!budget.take(cost - account.bytes))
        return finish(
          new BodyRefused(
            'busy',
            'pullguard is holding too many large review bodies at once; the API server may retry',
          ),
        );
      account.bytes = cost;
    }
    chunks.push(chunk);
  };
  const onEnd = () => {
    if (!Number.isNaN(declared) && declared !== received)
      return finish(new BodyRefused('bad-request', 'the Content-Length does not match the body'));
    if (!received) return finish(new BodyRefused('bad-request', 'the request body is empty'));
    if (over) {
      if (!shape.closed)
        return finish(
          new BodyRefused('bad-request', `the request body ${over.reason}, and it is not valid JSON: it ends early`),
        );
      const head = headOf(true);
      if (head) finish(null, new BodyOverLimits(over.limit, over.reason, head));
      return;
    }
    // One chunk (most reviews) is decoded as it is; more are joined once, their length known.
    const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
    chunks.length = 0;
    // As fastify's own parser: keys that would reach an object's prototype are refused (anywhere).
    if (shape.prototypeKey && setsPrototype(whole.toString('utf8')))
      return finish(
        new BodyRefused('bad-request', 'the request body is not valid JSON: it sets __proto__ or constructor'),
      );
    // JSON.parse's SyntaxError (and a RangeError, should a text pass what V8 can hold) is a refusal
    // here; only the parse is in the try, not what `done` does with its value.
    let value: unknown;
    try {
      value = JSON.parse(textWithout(whole, shape.cuts));
    } catch (err) {
      return finish(
        new BodyRefused('bad-request', `the request body is not valid JSON: ${(err as Error).message.split('\n')[0]}`),
      );
    }
    finish(null, value);
  };
  // A connection that goes away mid-body ends the stream with 'close' (and 'error' only for a stream
  // that has an 'error' listener: an IncomingMessage does not need one).
  const onClose = () => finish(new BodyRefused('bad-request', 'the request ended before its body did'));
  if (declared > limit) pass('size', `is larger than the limit (${limit} bytes, server.bodyLimit)`);
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('close', onClose);
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}
