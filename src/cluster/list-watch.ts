// One list + watch, the one way pullguard keeps a kind of object current (nodes, every pod). It
// lists in pages (limit + continue) and keeps only a projection of each object, made as each page
// and each watch event is parsed: a cluster's pods never sit in memory whole. The watch resumes from
// the last resourceVersion (bookmarks asked for and used to move it on), lists again only when the
// API server answers 410 Gone, and backs off with jitter after other failures. Requests are made
// here with the kubeconfig's authentication and dispatcher (client-node's Watch aborts a stream
// that is quiet for 30 s and has no public setting for it); each carries a signal that close()
// aborts. Nothing here throws into the process: failures are logged in one line (api-errors.ts).
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Agent, type Dispatcher } from 'undici';
import { type ApiCall, apiErrorText, apiStatus, watchErrorEvent } from './api-errors.ts';
import { clientNode } from './k8s.ts';
import { PageSplitter, type ProjectedPage, type Projection, projectPage } from './page-split.ts';

export interface ListWatchOptions<T, P = T> {
  /** the collection's path, e.g. /api/v1/nodes or /api/v1/pods */
  path: string;
  /** for messages: `nodes`, `pods in all namespaces` */
  what: string;
  /** what is kept of an object (as parsed JSON), by list pages in the page worker and by watch events here */
  projection: Projection<P>;
  /** what is held of a projection (its strings shared with what is held already); default: the projection */
  adopt?: (projected: P) => T;
  /** the key a projection is stored under (a name, a uid) */
  key: (item: T) => string;
  logger?: Logger;
  /** only the objects it selects (list and watch alike); one that stops matching is told as deleted */
  fieldSelector?: string;
  /** the most objects a list page asks for (limit/continue); fewer when they are large (PAGE_BYTES) */
  pageSize?: number;
  /** base watch duration asked of the server; randomized up to twice this, as client-go does */
  watchTimeoutSeconds?: number;
  /** timeout for each list page */
  listTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** a watch that lived this long or delivered an event counts as healthy (resets the back-off) */
  healthyAfterMs?: number;
  /** keep the list current with a watch (default); false: list once and stop */
  watch?: boolean;
  /**
   * The first list waits a random time up to this (ms), so that replicas started together (a
   * rollout, a node drain) do not all list the whole collection from the API server at once.
   */
  startJitterMs?: number;
  /** the random source of the jittered start and back-offs: [0, 1), as Math.random (tests pass their own) */
  random?: () => number;
  /**
   * The key of an object as parsed JSON, for projections that drop objects (project answers
   * undefined): an object that changes from kept to dropped (a pod no longer stuck) must not stay
   * held in its old state. Without it, a dropped object leaves what is held alone.
   */
  keyOf?: (object: unknown) => string | undefined;
}

/** The wait before the first list: [0, maxMs), whatever the random source answers. */
export function startDelay(maxMs: number, random: () => number): number {
  if (!(maxMs > 0)) return 0;
  const r = random();
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return Math.min(Math.floor(unit * maxMs), Math.ceil(maxMs) - 1);
}

/** Told of every change; nothing is told twice for one event. */
export interface ListWatchHandlers<T> {
  /** after each list (the first, and one after 410 Gone): the store holds exactly what was listed */
  listed?: () => void;
  /** an object was added or changed (watch event); `previous` is what the store held before */
  changed?: (item: T, previous: T | undefined) => void;
  /** an object was deleted, or changed so that the projection drops it (watch event): what the store held; it no longer holds it */
  deleted?: (item: T) => void;
}

interface WatchOutcome {
  error?: unknown;
  /** 410 Gone: the resourceVersion is too old, a fresh list is needed */
  gone: boolean;
  events: number;
  rv: string;
}

/**
 * Pages are asked for about this many bytes of JSON: the limit follows the objects' size (about 140
 * pods or 80 large nodes a page, never more than pageSize), so that neither the parse nor its garbage
 * grows with how big the objects are. Each page is a small, bounded range read for the API server.
 */
export const PAGE_BYTES = 1024 * 1024;
/** the first page's limit, before any object's size is known */
const FIRST_LIMIT = 50;
const MIN_LIMIT = 1;

/** The next page's limit: this page's scaled to PAGE_BYTES, within [MIN_LIMIT, max]. */
export function nextLimit(limit: number, items: number, bytes: number, max: number): number {
  if (items === 0 || bytes <= 0) return Math.min(max, limit);
  const fits = Math.floor((items * PAGE_BYTES) / bytes);
  return Math.max(Math.min(MIN_LIMIT, max), Math.min(max, fits));
}

/** A list's items are projected in slices of about this long (ms), the event loop free between them. */
const SLICE_MS = 1;

/** How far past the server's timeoutSeconds a silent stream is given up as a dead connection. */
const DEAD_STREAM_MARGIN_S = 60;

export class ListWatch<T, P = T> {
  readonly #kc: KubeConfig;
  readonly #o: Required<Omit<ListWatchOptions<T, P>, 'logger' | 'keyOf' | 'fieldSelector' | 'adopt'>>;
  readonly #adopt: (projected: P) => T;
  readonly #select: Record<string, string>;
  readonly #keyOf: ((object: unknown) => string | undefined) | undefined;
  readonly #log: Logger | undefined;
  readonly #list: ApiCall;
  readonly #watchCall: ApiCall;
  #items = new Map<string, T>();
  #handlers: ListWatchHandlers<T> = {};
  #stop: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #ready = false;
  #lists = 0;
  #watches = 0;
  #startDelayMs = 0;

  constructor(kc: KubeConfig, opts: ListWatchOptions<T, P>) {
    this.#kc = kc;
    this.#log = opts.logger;
    this.#o = {
      path: opts.path,
      what: opts.what,
      projection: opts.projection,
      key: opts.key,
      pageSize: opts.pageSize ?? 500,
      watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 300,
      listTimeoutMs: opts.listTimeoutMs ?? 30_000,
      backoffInitialMs: opts.backoffInitialMs ?? 500,
      backoffMaxMs: opts.backoffMaxMs ?? 30_000,
      healthyAfterMs: opts.healthyAfterMs ?? 5_000,
      watch: opts.watch ?? true,
      startJitterMs: opts.startJitterMs ?? 0,
      random: opts.random ?? Math.random,
    };
    this.#keyOf = opts.keyOf;
    this.#adopt = opts.adopt ?? ((projected) => projected as unknown as T);
    this.#select = opts.fieldSelector ? { fieldSelector: opts.fieldSelector } : {};
    this.#list = { verb: 'list', what: opts.what, timeoutMs: this.#o.listTimeoutMs };
    this.#watchCall = { verb: 'watch', what: opts.what };
  }

  /** true once the first full list has arrived */
  get ready(): boolean {
    return this.#ready;
  }

  /** how many lists and watches were started, and how long the start waited (for tests) */
  get stats(): { lists: number; watches: number; startDelayMs: number } {
    return { lists: this.#lists, watches: this.#watches, startDelayMs: this.#startDelayMs };
  }

  /** The projections held, by key. */
  get items(): ReadonlyMap<string, T> {
    return this.#items;
  }

  start(handlers: ListWatchHandlers<T> = {}): void {
    if (this.#loop) return;
    this.#handlers = handlers;
    const stop = new AbortController();
    this.#stop = stop;
    this.#loop = this.#run(stop.signal).catch((err: unknown) => {
      // #run handles its own errors; this is the last line of defence for the process.
      this.#log?.error({ err: apiErrorText(err, this.#watchCall) }, `list-watch of ${this.#o.what} stopped`);
    });
  }

  /** Ends the open request and any back-off; resolves when the loop has ended. The last state stays readable. */
  async close(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    this.#stop?.abort();
    await loop;
    this.#loop = undefined;
    this.#stop = undefined;
  }

  async #run(stop: AbortSignal): Promise<void> {
    let rv: string | undefined;
    let failures = 0;
    this.#startDelayMs = startDelay(this.#o.startJitterMs, this.#o.random);
    if (this.#startDelayMs > 0) await sleep(this.#startDelayMs, stop);
    while (!stop.aborted) {
      if (rv === undefined) {
        try {
          rv = await this.#listAll(stop);
          failures = 0;
        } catch (err) {
          if (stop.aborted) break;
          failures++;
          this.#log?.warn({ err: apiErrorText(err, this.#list), failures }, `listing ${this.#o.what} failed; retrying`);
          await sleep(this.#backoff(failures), stop);
          continue;
        }
        if (!this.#o.watch) break;
      }
      const started = Date.now();
      const out = await this.#watchOnce(rv, stop);
      if (stop.aborted) break;
      rv = out.rv;
      const healthy = out.events > 0 || Date.now() - started >= this.#o.healthyAfterMs;
      if (out.gone) {
        rv = undefined;
        failures = healthy ? 0 : failures + 1;
        this.#log?.debug(`watch of ${this.#o.what} expired (410); listing again`);
      } else if (out.error !== undefined) {
        // The API server replays what happened since rv: watch on from there, after a pause.
        failures = healthy ? 1 : failures + 1;
        this.#log?.warn(
          { err: apiErrorText(out.error, this.#watchCall), failures },
          `watch of ${this.#o.what} failed; watching again`,
        );
      } else {
        // A clean close is routine (the server's timeoutSeconds): watch on from where we were,
        // unless the streams keep closing at once.
        failures = healthy ? 0 : failures + 1;
      }
      if (failures > 0) await sleep(this.#backoff(failures), stop);
    }
  }

  async #listAll(stop: AbortSignal): Promise<string> {
    this.#lists++;
    this.#log?.debug(`listing ${this.#o.what}`);
    const fresh = new Map<string, T>();
    let rv = '';
    const pages = listPages(this.#kc, this.#o.path, this.#o.projection, {
      query: this.#select,
      pageSize: this.#o.pageSize,
      timeoutMs: this.#o.listTimeoutMs,
      stop,
    });
    for await (const page of pages) {
      // Projected already (in the page worker); what is kept of them, yielding to the event loop
      // every slice: reviews wait for a slice, not a page.
      let slice = performance.now();
      for (const projected of page.items) {
        const item = this.#adopt(projected);
        fresh.set(this.#o.key(item), item);
        if (performance.now() - slice > SLICE_MS) {
          await yieldNow();
          if (stop.aborted) throw stop.reason;
          slice = performance.now();
        }
      }
      rv = page.resourceVersion ?? rv;
    }
    this.#items = fresh;
    this.#log?.debug({ count: fresh.size, resourceVersion: rv }, `${this.#o.what} listed`);
    this.#ready = true;
    this.#tell(() => this.#handlers.listed?.());
    return rv;
  }

  async #watchOnce(rv: string, stop: AbortSignal): Promise<WatchOutcome> {
    this.#watches++;
    const out: WatchOutcome = { gone: false, events: 0, rv };
    const timeoutSeconds = Math.floor(this.#o.watchTimeoutSeconds * (1 + this.#o.random()));
    // The server ends the stream after timeoutSeconds; a stream silent well past that is a dead connection.
    const signal = AbortSignal.any([stop, AbortSignal.timeout((timeoutSeconds + DEAD_STREAM_MARGIN_S) * 1000)]);
    try {
      const body = await getCollection(
        this.#kc,
        this.#o.path,
        {
          ...this.#select,
          watch: 'true',
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(timeoutSeconds),
          ...(rv ? { resourceVersion: rv } : {}),
        },
        signal,
      );
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of body) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        let nl = buffered.indexOf('\n');
        while (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          nl = buffered.indexOf('\n');
          if (line.trim() === '') continue;
          if (!this.#event(line, out)) return out; // an ERROR event ends this stream
        }
      }
    } catch (err) {
      if (stop.aborted) return out;
      if (apiStatus(err) === 410) out.gone = true;
      else out.error = err;
    }
    return out;
  }

  /** One line of the stream; false when it was an ERROR (the outcome says which). */
  #event(line: string, out: WatchOutcome): boolean {
    let event: { type?: string; object?: { metadata?: { resourceVersion?: string }; code?: unknown } };
    try {
      event = JSON.parse(line);
    } catch {
      out.error = new Error('the watch stream sent a line that is not JSON');
      return false;
    }
    const { type, object } = event;
    if (type === 'ERROR') {
      if (object?.code === 410) out.gone = true;
      else out.error = watchErrorEvent(object, this.#watchCall);
      return false;
    }
    const objRv = object?.metadata?.resourceVersion;
    if (objRv) out.rv = objRv;
    if (type === 'BOOKMARK') return true;
    out.events++;
    const projected = this.#o.projection.project(object);
    if (projected === undefined) {
      // dropped by the projection: what was held under its key is stale now
      const key = this.#keyOf?.(object);
      const held = key === undefined ? undefined : this.#items.get(key);
      if (key !== undefined && held !== undefined) {
        this.#items.delete(key);
        this.#tell(() => this.#handlers.deleted?.(held));
      }
      return true;
    }
    const item = this.#adopt(projected);
    const key = this.#o.key(item);
    const previous = this.#items.get(key);
    if (type === 'DELETED') {
      if (previous !== undefined && this.#items.delete(key)) this.#tell(() => this.#handlers.deleted?.(previous));
    } else if (type === 'ADDED' || type === 'MODIFIED') {
      this.#items.set(key, item);
      this.#tell(() => this.#handlers.changed?.(item, previous));
    }
    return true;
  }

  #tell(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log?.warn({ err: err instanceof Error ? err.message : String(err) }, `a ${this.#o.what} handler threw`);
    }
  }

  #backoff(failures: number): number {
    const base = Math.min(this.#o.backoffMaxMs, this.#o.backoffInitialMs * 2 ** Math.min(failures - 1, 20));
    return Math.round(base * (0.8 + this.#o.random() * 0.4));
  }
}

export interface ListPagesOptions {
  /** the list's own parameters (fieldSelector, labelSelector); limit and continue are added */
  query?: Record<string, string>;
  /** the most objects a page asks for; fewer when they are large (PAGE_BYTES) */
  pageSize: number;
  /** for each page: its request, its body and its split */
  timeoutMs: number;
  /** ends the list (the page being read is aborted) */
  stop?: AbortSignal;
}

/**
 * One list, page by page (limit + continue), each page parsed and projected off this thread
 * (page-split.ts): what the caller gets of a page is what the projection keeps of it. The one way pullguard lists a collection: the list-watch and `diagnose`
 * alike. The next page is asked for as soon as this one's continue token is known, so the API
 * server serves it while the caller works on this one: at most two pages are held at once.
 */
export async function* listPages<T>(
  kc: KubeConfig,
  path: string,
  projection: Projection<T>,
  o: ListPagesOptions,
): AsyncGenerator<ProjectedPage<T>> {
  const splitter = new PageSplitter();
  const ended = new AbortController();
  const stop = o.stop ? AbortSignal.any([o.stop, ended.signal]) : ended.signal;
  let limit = Math.min(FIRST_LIMIT, o.pageSize);
  const fetchPage = async (cont: string | undefined): Promise<ProjectedPage<T>> => {
    let tooLarge = false;
    for (;;) {
      const signal = AbortSignal.any([stop, AbortSignal.timeout(o.timeoutMs)]);
      const query = { ...o.query, limit: String(limit), ...(cont ? { continue: cont } : {}) };
      const bytes = await (await getCollection(kc, path, query, signal)).arrayBuffer();
      const size = bytes.byteLength;
      let page: ProjectedPage<T>;
      try {
        // one object alone too large for the page worker's heap: parsed here
        page = tooLarge ? projectPage(bytes, projection.project) : await splitter.split(bytes, projection, signal);
      } catch (err) {
        // A page larger than the page worker's heap (the first page, before any object's size is
        // known, of objects of MiBs): the same page again, half as long, down to one object.
        if (!outOfMemory(err) || tooLarge) throw err;
        if (limit === 1) tooLarge = true;
        limit = Math.max(1, Math.floor(limit / 2));
        continue;
      }
      tooLarge = false;
      limit = nextLimit(limit, page.count, size, o.pageSize);
      return page;
    }
  };
  try {
    let next = fetchPage(undefined);
    for (;;) {
      const page = await next;
      const cont = page.continue || undefined;
      if (cont) {
        next = fetchPage(cont);
        next.catch(() => {}); // awaited on the next turn; a caller that stops early never awaits it
      }
      yield page;
      if (!cont) return;
    }
  } finally {
    ended.abort(new Error('the list was left before its end'));
    await splitter.close();
  }
}

function outOfMemory(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
}

/** GET of one object (or a small, unpaged list) as parsed JSON, with the kubeconfig's authentication. */
export async function getObject(
  kc: KubeConfig,
  path: string,
  query: Record<string, string>,
  signal: AbortSignal,
): Promise<unknown> {
  return (await getCollection(kc, path, query, signal)).json();
}

let plainAgent: Agent | undefined;

/**
 * GET of a collection with the kubeconfig's authentication, on its dispatcher; the body is left to
 * the caller to read (a page's JSON, or a watch stream). An answer other than 200 throws as
 * client-node's ApiException does.
 */
async function getCollection(
  kc: KubeConfig,
  path: string,
  query: Record<string, string>,
  signal: AbortSignal,
): Promise<Dispatcher.ResponseData['body']> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig names no current cluster');
  const url = new URL(cluster.server + path);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const { ApiException, RequestContext } = clientNode();
  const ctx = new RequestContext(url.toString(), 'GET');
  await kc.applySecurityAuthentication(ctx);
  // undici's request API on the kubeconfig's dispatcher (its TLS settings, connections.ts's
  // connector); a server without TLS settings gets a plain Agent.
  const dispatcher = (ctx.getDispatcher() as Dispatcher | undefined) ?? (plainAgent ??= new Agent());
  const res = await dispatcher.request({
    origin: url.origin,
    path: `${url.pathname}${url.search}`,
    method: 'GET',
    headers: ctx.getHeaders(),
    signal,
  });
  if (res.statusCode !== 200) {
    // The body is a Status; only its message is ever shown (api-errors.ts).
    const body = await res.body.text();
    throw new ApiException(res.statusCode, `HTTP-Code: ${res.statusCode}`, body, {});
  }
  return res.body;
}

/** Lets the event loop run what waits (I/O included) before going on. */
function yieldNow(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits ms, or less when stop aborts (the timer is cleared then). */
function sleep(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (stop.aborted) return resolve();
    const timer = setTimeout(() => {
      stop.removeEventListener('abort', onStop);
      resolve();
    }, ms);
    const onStop = () => {
      clearTimeout(timer);
      resolve();
    };
    stop.addEventListener('abort', onStop, { once: true });
  });
}
