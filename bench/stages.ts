// Where a cached review's time goes: the steps AdmissionHandler.review() takes when everything is
// cached (all synchronous), each timed alone over many calls with the same inputs the handler gets. It mirrors src/admission/handler.ts; if
// that changes, these steps are a guide, not the handler's exact cost.

import { pino } from 'pino';
import { imagesToCheck, parseReview, respond } from '../src/admission/review.ts';
import type { Config } from '../src/config/schema.ts';
import { Deadline } from '../src/deadline.ts';
import { PodCredentials } from '../src/podcheck/credentials.ts';
import { actionFor } from '../src/policy/policy.ts';
import type { Preflight } from '../src/preflight/engine.ts';
import { JsonShape, textWithout } from '../src/server/body.ts';
import { createLogger } from '../src/server/logger.ts';
import { Metrics } from '../src/server/metrics.ts';

export interface StageCost {
  stage: string;
  /** mean µs per call */
  us: number;
}

/** Every step of a cached review is synchronous (as in the handler): timed without an await between calls. */
function time(n: number, fn: () => unknown): number {
  for (let i = 0; i < Math.ceil(n / 10); i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t0) * 1000) / n;
}

export async function stageCosts(engine: Preflight, config: Config, bodyText: string, n: number): Promise<StageCost[]> {
  const bytes = Buffer.from(bodyText);
  const shape = new JsonShape();
  shape.feed(bytes);
  const parsedText = textWithout(bytes, shape.cuts);
  const body = JSON.parse(parsedText) as unknown;
  const req = parseReview(body);
  const { site, uses } = imagesToCheck(req);
  if (!site || !uses.length) throw new Error('stages: the review has no images');
  const podCredentials = new PodCredentials(null, null);
  const namespace = req.namespace ?? 'default';
  const credentials = await podCredentials.forSite(site, namespace);
  const options = () => ({ credentials, platforms: [], deadline: Deadline.after(config.deadline) });
  const findings = engine.check(uses, options());
  if (findings instanceof Promise) throw new Error('stages: the review is not cached');
  const decided = findings.map((finding) => ({ finding, action: actionFor(finding, config.mode, config.actions) }));
  // Synchronous here so that the write is inside the timed call.
  const logger = createLogger('info', pino.destination({ dest: '/dev/null', sync: true }));
  const metrics = new Metrics();
  const line = {
    uid: req.uid,
    kind: req.kind.kind,
    namespace: req.namespace,
    name: req.name,
    operation: req.operation,
    mode: config.mode,
    images: uses.length,
    unchanged: 0,
    verdict: 'risk',
    action: 'warn',
    ms: 0.1,
    findings: [{ container: 'app', image: 'demo/app:1.0', reason: 'rate-limited', action: 'warn' }],
  };
  return [
    {
      stage: 'shape scan of the body (depth, elements, managedFields)',
      us: time(n, () => new JsonShape().feed(bytes)),
    },
    { stage: 'the text to parse, managedFields left out', us: time(n, () => textWithout(bytes, shape.cuts)) },
    { stage: 'JSON.parse of that text', us: time(n, () => JSON.parse(parsedText)) },
    { stage: 'parseReview', us: time(n, () => parseReview(body)) },
    { stage: 'imagesToCheck', us: time(n, () => imagesToCheck(req)) },
    {
      stage: 'PodCredentials.forSite, cached (no cluster)',
      us: time(n, () => podCredentials.forSite(site, namespace)),
    },
    { stage: 'engine.check, cached (a Deadline included)', us: time(n, () => engine.check(uses, options())) },
    {
      stage: 'actionFor + respond',
      us: time(n, () =>
        respond(
          req.uid,
          findings.map((finding) => ({ finding, action: actionFor(finding, config.mode, config.actions) })),
        ),
      ),
    },
    // A plain allow is logged at debug, so at info it costs only the level check; one with findings writes this.
    {
      stage: 'review log line, with findings only (pino → /dev/null)',
      us: time(n, () => logger.info(line, 'review')),
    },
    {
      stage: 'metrics (counter + histogram)',
      us: time(n, () =>
        metrics.reviewed({
          kind: 'Deployment',
          operation: 'CREATE',
          verdict: 'ok',
          action: 'allow',
          seconds: 0.0001,
          notable: [],
        }),
      ),
    },
    { stage: 'JSON.stringify of the answer', us: time(n, () => JSON.stringify(respond(req.uid, decided))) },
  ];
}
