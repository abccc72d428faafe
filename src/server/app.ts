// The webhook's HTTP face: POST /validate (and /validate/<mode> for namespaces that chose a mode by
// label), health and readiness for the kubelet's probes, and Prometheus metrics. Reviews, nearly all
// of the traffic, are answered by node:http directly, on one path; fastify answers everything else.

import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Logger } from 'pino';
import type { AdmissionHandler } from '../admission/handler.ts';
import type { Maybe } from '../cache.ts';
import { BadReview, type ReviewResponse } from '../admission/review.ts';
import { PullguardError } from '../errors.ts';
import { isMode } from '../policy/policy.ts';
import { BodyBudget, BodyOverLimits, BodyRefused, bodyTooLarge, readJsonBody } from './body.ts';
import type { Metrics } from './metrics.ts';
import { SERVER_TLS, type TlsPair } from './tls.ts';

export interface AppOptions {
  handler: AdmissionHandler;
  metrics: Metrics;
  logger: Logger;
  tls: TlsPair | null;
  bodyLimit: number;
  /** serve GET /metrics here too (server.metricsPort 0); otherwise it has a port of its own */
  metricsRoute?: boolean;
  /** estimated bytes all bodies being read, parsed or reviewed may hold at once (BodyBudget) */
  bodyMemory?: number;
  /** reviews running at once; more are answered 429 */
  reviewsInFlight?: number;
  /** whole request (headers and body) from one client; under the webhook's timeoutSeconds */
  requestTimeout?: number;
  /** open connections at most (the API server keeps a few per replica alive) */
  maxConnections?: number;
  /** whether the server may take reviews (e.g. the node watch has listed once) */
  ready?: () => boolean;
}

/**
 * The HTTP status and log message of each error code a request can end with, the one table of this
 * face: a body that is no JSON AdmissionReview and an AdmissionReview that is not one pullguard can
 * answer are 400s; a request that does not fit now is a 429 (the API server may send it again).
 * Any other error is a bug: a 500 that says nothing more, and an error in the log.
 */
const ANSWERS: Record<string, { status: number; log: string }> = {
  'bad-request': { status: 400, log: 'bad admission request' },
  'bad-review': { status: 400, log: 'bad admission request' },
  busy: { status: 429, log: 'admission request refused' },
};

/** fastify's own parser and limit errors as the refusal they stand for, in words that name the problem. */
function refusalOf(err: FastifyError, bodyLimit: number): BodyRefused | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      // fastify's message carries no number ("Request body is too large"): name the limit ourselves.
      return new BodyRefused('bad-request', bodyTooLarge(bodyLimit));
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new BodyRefused('bad-request', 'the request body must be JSON (Content-Type: application/json)');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new BodyRefused('bad-request', 'the request body is empty');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new BodyRefused('bad-request', 'the Content-Length does not match the body');
    default:
      if (err.statusCode === 400)
        return new BodyRefused('bad-request', `the request body is not valid JSON: ${err.message.split('\n')[0]}`);
      return undefined;
  }
}

/** What a failed request is answered, whichever way it came: status, the reason, and its log line. */
function failure(err: Error, url: string | undefined, bodyLimit: number, logger: Logger) {
  const known = err instanceof PullguardError ? err : refusalOf(err as FastifyError, bodyLimit);
  const answer = known && ANSWERS[known.code];
  if (known && answer) {
    logger.warn({ reason: known.message, url, status: answer.status }, answer.log);
    return { status: answer.status, error: known.message, retry: answer.status === 429 };
  }
  logger.error({ err, url }, 'review failed');
  return { status: 500, error: 'internal error; see the pullguard log', retry: false };
}

/** A JSON answer written straight to the response, as fastify would write it. */
function sendJson(res: ServerResponse, status: number, value: unknown, retry = false): void {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...(retry ? { 'retry-after': '1' } : {}),
  });
  res.end(text);
}

/**
 * The mode in a review's path ('' for /validate; possibly not a mode: the review says so), or null
 * for fastify's routes: a POST to /validate or /validate/<mode>, query string allowed (the API
 * server adds ?timeout=10s), the mode percent-decoded as fastify decoded its path parameters.
 */
function reviewPath(req: IncomingMessage): string | null {
  if (req.method !== 'POST') return null;
  const url = req.url ?? '';
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  if (path === '/validate') return '';
  if (!path.startsWith('/validate/')) return null;
  const mode = path.slice('/validate/'.length);
  if (mode.includes('/')) return null;
  try {
    return decodeURIComponent(mode);
  } catch {
    return mode;
  }
}

/** Why a review's body is not read: a content type that is not JSON, or none and no body. */
function unreadable(req: IncomingMessage): Error | undefined {
  const type = req.headers['content-type'];
  if (type === 'application/json' || (type !== undefined && JSON_TYPE.test(type))) return undefined;
  const length = req.headers['content-length'];
  if (type === undefined && (length === '0' || (length === undefined && !req.headers['transfer-encoding'])))
    return new BadReview('the request body is empty');
  return new BadReview('the request body must be JSON (Content-Type: application/json)');
}

/** A signal that aborts when the client hangs up before its answer is written: made only when asked. */
function hangUp(res: ServerResponse): () => AbortSignal {
  return () => {
    const controller = new AbortController();
    const gone = () => {
      if (!res.writableFinished) controller.abort(new Error('the client closed the connection before its answer'));
    };
    if (res.destroyed) gone();
    else res.once('close', gone);
    return controller.signal;
  };
}
const JSON_TYPE = /^application\/json\s*(?:;|$)/i;

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  // JSON read with bounded memory (body.ts): depth and element limits, and a shared budget that a
  // body holds from its first byte until its review is done (or until it is refused).
  const budget = new BodyBudget(opts.bodyMemory ?? 48 * 1024 * 1024);
  opts.metrics.observeBodies(() => budget.inUse, budget.limit);

  const reviewsInFlight = opts.reviewsInFlight ?? 1000;
  let running = 0;
  /** The answer now when the handler has everything cached, else a promise of it. */
  const review = (res: ServerResponse, body: unknown, mode: string): Maybe<ReviewResponse> => {
    if (mode !== '' && !isMode(mode))
      throw new BadReview(`unknown mode "${mode.slice(0, 20)}" in the path; use enforce, warn or audit`);
    const pathMode = mode === '' ? undefined : mode;
    // A well-formed review past pullguard's own limits gets its answer (allowed, not checked), not a
    // 400 that failurePolicy: Ignore would turn into silence.
    if (body instanceof BodyOverLimits) return opts.handler.unchecked(body.head, body.limit, body.reason, pathMode);
    // Past the cap the API server gets a prompt 429 (its failurePolicy decides), not a slow answer.
    if (running >= reviewsInFlight)
      throw new BodyRefused(
        'busy',
        `pullguard is answering ${reviewsInFlight} reviews already; the API server may retry`,
      );
    const answer = opts.handler.review(body, pathMode, hangUp(res));
    if (!(answer instanceof Promise)) return answer;
    running++;
    return answer.finally(() => running--);
  };

  // Reviews, nearly all of the traffic, are answered by node:http directly: fastify's request
  // lifecycle (request and reply objects, hooks, routing, serialisation) cost a cached review about a
  // quarter of its CPU time (bench warm-reviews). fastify keeps everything else.
  const serveReview = (req: IncomingMessage, res: ServerResponse, mode: string) => {
    // The body's account stays in this closure until its review is answered.
    const account = { bytes: 0 };
    const answer = (err: Error | null, value?: ReviewResponse) => {
      budget.give(account.bytes);
      if (err) {
        const { status, error, retry } = failure(err, req.url, opts.bodyLimit, opts.logger);
        sendJson(res, status, { error }, retry);
      } else sendJson(res, 200, value);
    };
    const refused = unreadable(req);
    if (refused) return answer(refused);
    readJsonBody(req, req.headers['content-length'], opts.bodyLimit, budget, account, (err, body) => {
      if (err) return answer(err);
      let reviewed: Maybe<ReviewResponse>;
      try {
        reviewed = review(res, body, mode);
      } catch (e) {
        return answer(e as Error);
      }
      // A cached review is answered in this same callback: no promise, no microtask (bench warm-reviews).
      if (reviewed instanceof Promise) reviewed.then((value) => answer(null, value), answer);
      else answer(null, reviewed);
    });
  };
  // preClose runs before the server stops accepting, so probes see 503 while reviews finish; from
  // then on reviews are answered 503 too, as fastify answers everything then (return503OnClosing).
  let closing = false;

  const app = Fastify({
    // No logger for fastify itself: it would make a child logger for every request (measurable on
    // the hot path) to write per-request lines that would only double the handler's one per review.
    logger: false,
    bodyLimit: opts.bodyLimit,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // fastify's listen() names the address https:// from this; the server itself is made below.
    ...(opts.tls ? { https: true } : {}),
    serverFactory: (fastifyHandler) => {
      const listener = (req: IncomingMessage, res: ServerResponse) => {
        const mode = reviewPath(req);
        if (mode === null) fastifyHandler(req, res);
        else if (closing) {
          res.setHeader('connection', 'close');
          sendJson(res, 503, { error: 'pullguard is shutting down; the API server may retry' }, true);
        } else serveReview(req, res, mode);
      };
      const server = opts.tls
        ? createHttpsServer({ ...opts.tls, ...SERVER_TLS }, listener)
        : createHttpServer(listener);
      // The API server's webhook client keeps idle connections 90 s (apimachinery
      // SetOldTransportDefaults); fastify's 72 s default closed them first, and a review sent on a
      // connection closing under it fails ("EOF"; a POST is not retried) and failurePolicy Ignore
      // lets it through unchecked.
      server.keepAliveTimeout = 120_000;
      // A client that trickles its headers or body is cut off: the API server sends a review at once
      // and gives up after the webhook's timeoutSeconds (10 s) anyway.
      server.requestTimeout = opts.requestTimeout ?? 10_000;
      server.headersTimeout = Math.min(opts.requestTimeout ?? 10_000, 10_000);
      // Connections beyond the cap are closed at once (each open TLS connection holds ~125 KB: bench hostile).
      server.maxConnections = opts.maxConnections ?? 512;
      // Node checks those timeouts every 30 s by default: a trickling client would hold on three times longer.
      (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = 1000;
      return server;
    },
  }) as unknown as FastifyInstance;

  app.addHook('preClose', async () => {
    closing = true;
  });
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { status, error, retry } = failure(err, request.url, opts.bodyLimit, opts.logger);
    if (retry) reply.header('retry-after', '1');
    return reply.code(status).send({ error });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = !closing && (opts.ready?.() ?? true);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready' });
  });
  if (opts.metricsRoute ?? true)
    app.get('/metrics', async (_request, reply) => {
      reply.header('content-type', opts.metrics.registry.contentType);
      return opts.metrics.registry.metrics();
    });
  return app;
}
