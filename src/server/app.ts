// The webhook's HTTP face: POST /validate (and /validate/<mode> for namespaces that chose a mode by
// label), health and readiness for the kubelet's probes, and Prometheus metrics.

import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { BadReview } from '../admission/review.ts';
import type { AdmissionHandler } from '../admission/handler.ts';
import { isMode } from '../policy/policy.ts';
import type { Metrics } from './metrics.ts';
import type { TlsPair } from './tls.ts';

export interface AppOptions {
  handler: AdmissionHandler;
  metrics: Metrics;
  logger: Logger;
  tls: TlsPair | null;
  bodyLimit: number;
  /** serve GET /metrics here too (server.metricsPort 0); otherwise it has a port of its own */
  metricsRoute?: boolean;
  /** whether the server may take reviews (e.g. the node watch has listed once) */
  ready?: () => boolean;
}

/** Parser and limit errors become a plain 400 that names the problem; nothing else leaks out. */
function badRequest(err: FastifyError, bodyLimit: number): string | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      // fastify's message carries no number ("Request body is too large"): name the limit ourselves.
      return `the request body is larger than the limit (${bodyLimit} bytes)`;
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
    ...(opts.tls ? { https: { ...opts.tls, minVersion: 'TLSv1.2' as const } } : {}),
  }) as unknown as FastifyInstance;

  // fastify parses text/plain into a string by default, which then failed as "expected object,
  // received string"; only JSON is an AdmissionReview, anything else gets the content-type reason.
  app.removeContentTypeParser('text/plain');

  // preClose runs before the server stops accepting, so probes see 503 while reviews finish.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const reason = err instanceof BadReview ? err.message : badRequest(err, opts.bodyLimit);
    if (reason) {
      opts.logger.warn({ reason, url: request.url }, 'bad admission request');
      return reply.code(400).send({ error: reason });
    }
    opts.logger.error({ err, url: request.url }, 'review failed');
    return reply.code(500).send({ error: 'internal error; see the pullguard log' });
  });

  const validate = async (body: unknown, mode?: string) => {
    if (mode !== undefined && !isMode(mode))
      throw new BadReview(`unknown mode "${mode.slice(0, 20)}" in the path; use enforce, warn or audit`);
    // No body and no content type reaches here as undefined: say so rather than "received undefined".
    if (body === undefined) throw new BadReview('the request body is empty');
    return opts.handler.review(body, mode);
  };
  app.post('/validate', async (request) => validate(request.body));
  app.post<{ Params: { mode: string } }>('/validate/:mode', async (request) =>
    validate(request.body, request.params.mode),
  );

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
