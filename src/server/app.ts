// The webhook's HTTP face: POST /validate (and /validate/<mode> for namespaces that chose a mode by
// label), health and readiness for the kubelet's probes, and Prometheus metrics.

import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { BadReview } from '../admission/review.ts';
import type { AdmissionHandler } from '../admission/handler.ts';
import { isMode } from '../policy/policy.ts';
import { BodyBudget, BodyRefused, JsonShape, MAX_DEPTH, MAX_ELEMENTS } from './body.ts';
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

function bodyTooLarge(bodyLimit: number): string {
  return `the request body is larger than the limit (${bodyLimit} bytes)`;
}

/** Parser and limit errors become a plain 400 that names the problem; nothing else leaks out. */
function badRequest(err: FastifyError, bodyLimit: number): string | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      // fastify's message carries no number ("Request body is too large"): name the limit ourselves.
      return bodyTooLarge(bodyLimit);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'the request body must be JSON (Content-Type: application/json)';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the request body is empty';
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'the Content-Length does not match the body';
    default:
      if (err.statusCode === 400 || err instanceof SyntaxError || err instanceof RangeError)
        return `the request body is not valid JSON: ${err.message.split('\n')[0]}`;
      return undefined;
  }
}

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    // No logger for fastify itself: it would make a child logger for every request (measurable on
    // the hot path) to write per-request lines that would only double the handler's one per review.
    logger: false,
    bodyLimit: opts.bodyLimit,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // The API server's webhook client keeps idle connections 90 s (apimachinery SetOldTransportDefaults);
    // fastify's 72 s default closed them first, and a review sent on a connection closing under it
    // fails ("EOF"; a POST is not retried) and failurePolicy Ignore lets it through unchecked.
    keepAliveTimeout: 120_000,
    // A client that trickles its headers or body is cut off: the API server sends a review at once
    // and gives up after the webhook's timeoutSeconds (10 s) anyway.
    requestTimeout: opts.requestTimeout ?? 10_000,
    ...(opts.tls ? { https: { ...opts.tls, ...SERVER_TLS } } : {}),
  }) as unknown as FastifyInstance;

  // fastify parses text/plain into a string by default, which then failed as "expected object,
  // received string"; only JSON is an AdmissionReview, anything else gets the content-type reason.
  app.removeContentTypeParser('text/plain');
  // Connections beyond the cap are closed at once (each open TLS connection holds ~125 KB: bench hostile).
  app.server.maxConnections = opts.maxConnections ?? 512;
  app.server.headersTimeout = Math.min(opts.requestTimeout ?? 10_000, 10_000);
  // Node checks those timeouts every 30 s by default: a trickling client would hold on three times longer.
  (app.server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = 1000;

  // JSON read with bounded memory (body.ts): depth and element limits, and a shared budget that a
  // body holds from its first byte until its review is done (or until it is refused). No hook per
  // request: an onRequest hook and a close listener on every reply cost more than the rest of a
  // cached review's bookkeeping.
  const budget = new BodyBudget(opts.bodyMemory ?? 48 * 1024 * 1024);
  opts.metrics.observeBodies(() => budget.inUse, budget.limit);
  const held = new WeakMap<object, { bytes: number }>();
  const release = (raw: object) => {
    const account = held.get(raw);
    if (!account) return;
    held.delete(raw);
    budget.give(account.bytes);
  };
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', (request, payload, done) => {
    const account = { bytes: 0 };
    held.set(request.raw, account);
    const declared = Number(request.headers['content-length'] ?? Number.NaN);
    if (declared > opts.bodyLimit) return done(new BodyRefused(400, bodyTooLarge(opts.bodyLimit)), undefined);
    const shape = new JsonShape();
    const chunks: Buffer[] = [];
    let received = 0;
    let finished = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (finished) return;
      finished = true;
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
      payload.removeListener('close', onClose);
      if (err) {
        release(request.raw);
        payload.resume();
      }
      done(err, value);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > opts.bodyLimit) return finish(new BodyRefused(400, bodyTooLarge(opts.bodyLimit)));
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
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received)).toString('utf8');
      chunks.length = 0;
      // As fastify's own parser: keys that would reach an object's prototype are refused.
      if ((text.includes('__proto__') || text.includes('constructor')) && /"(?:__proto__|constructor)"\s*:/.test(text))
        return finish(new BodyRefused(400, 'the request body is not valid JSON: it sets __proto__ or constructor'));
      try {
        finish(null, JSON.parse(text));
      } catch (err) {
        finish(new BodyRefused(400, `the request body is not valid JSON: ${(err as Error).message.split('\n')[0]}`));
      }
    };
    const onError = (err: Error) => finish(err);
    // A connection that goes away mid-body may end the stream without 'end' or 'error'.
    const onClose = () => finish(new BodyRefused(400, 'the request ended before its body did'));
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
    payload.on('close', onClose);
  });

  // preClose runs before the server stops accepting, so probes see 503 while reviews finish.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof BodyRefused) {
      opts.logger.warn(
        { reason: err.message, url: request.url, status: err.statusCode },
        err.statusCode === 400 ? 'bad admission request' : 'admission request refused',
      );
      if (err.statusCode === 429) reply.header('retry-after', '1');
      return reply.code(err.statusCode).send({ error: err.message });
    }
    const reason = err instanceof BadReview ? err.message : badRequest(err, opts.bodyLimit);
    if (reason) {
      opts.logger.warn({ reason, url: request.url }, 'bad admission request');
      return reply.code(400).send({ error: reason });
    }
    opts.logger.error({ err, url: request.url }, 'review failed');
    return reply.code(500).send({ error: 'internal error; see the pullguard log' });
  });

  const reviewsInFlight = opts.reviewsInFlight ?? 1000;
  let running = 0;
  const validate = async (request: { raw: object; body: unknown }, mode?: string) => {
    try {
      return await review(request.body, mode);
    } finally {
      release(request.raw);
    }
  };
  const review = async (body: unknown, mode?: string) => {
    if (mode !== undefined && !isMode(mode))
      throw new BadReview(`unknown mode "${mode.slice(0, 20)}" in the path; use enforce, warn or audit`);
    // No body and no content type reaches here as undefined: say so rather than "received undefined".
    if (body === undefined) throw new BadReview('the request body is empty');
    // Past the cap the API server gets a prompt 429 (its failurePolicy decides), not a slow answer.
    if (running >= reviewsInFlight)
      throw new BodyRefused(429, `pullguard is answering ${reviewsInFlight} reviews already; the API server may retry`);
    running++;
    try {
      return await opts.handler.review(body, mode);
    } finally {
      running--;
    }
  };
  app.post('/validate', async (request) => validate(request));
  app.post<{ Params: { mode: string } }>('/validate/:mode', async (request) => validate(request, request.params.mode));

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
