// One admission review, start to end: what changed, whose credentials, the engine's findings under
// the deadline, the policy's actions, the answer, metrics, and a log line (at info when it has findings).

import type { Logger } from 'pino';
import { then, type Maybe } from '../cache.ts';
import type { Config, Mode } from '../config/schema.ts';
import { Deadline, type Parent } from '../deadline.ts';
import type { Finding, Reason, Verdict } from '../findings.ts';
import { logText } from '../text.ts';
import { actionFor, type Decision } from '../policy/policy.ts';
import type { PodCheck } from '../podcheck/podcheck.ts';
import {
  type AdmissionRequest,
  imagesToCheck,
  notableFindings,
  parseReview,
  respond,
  type ReviewHead,
  type ReviewResponse,
  uncheckedResponse,
  wouldCheck,
} from './review.ts';

/** What one review came to, for whoever counts them (the server's metrics). */
export interface ReviewRecord {
  kind: string;
  operation: string;
  verdict: Verdict;
  action: 'deny' | 'warn' | 'record' | 'allow';
  seconds: number;
  /** the findings that were not ok, with what was done about each */
  notable: readonly { reason: Reason; action: Decision }[];
}

export interface ReviewObserver {
  reviewed(record: ReviewRecord): void;
  /** a review answered without a check: its body passed `limit`, one of pullguard's own (server/body.ts) */
  unchecked?(limit: string): void;
}

export interface HandlerDeps {
  config: Config;
  podCheck: PodCheck;
  logger: Logger;
  observer?: ReviewObserver;
}

const WORST = ['ok', 'risk', 'fail'] as const;
/** what a review whose findings are all ok records (most reviews): one shared empty list */
const NOTHING_NOTABLE: ReviewRecord['notable'] = Object.freeze([]);

export class AdmissionHandler {
  readonly #deps: HandlerDeps;

  constructor(deps: HandlerDeps) {
    this.#deps = deps;
  }

  /**
   * The answer now when everything the review needs is cached (most reviews: no promise, no
   * microtask), otherwise a promise of it. `signal`: the client gave up (its work is aborted). Throws
   * BadReview for input that is not an AdmissionReview; everything else gets an answer.
   */
  review(body: unknown, pathMode?: Mode, signal?: Parent): Maybe<ReviewResponse> {
    const started = performance.now();
    const { config, podCheck } = this.#deps;
    const req = parseReview(body);
    const mode = pathMode ?? config.mode;
    const images = imagesToCheck(req);
    const { site, uses } = images;
    if (!site || !uses.length) return this.#answer(req, mode, images, [], started);
    // imagesToCheck refused a review without request.namespace or naming another one.
    const pod = { site, namespace: req.namespace ?? site.namespace ?? 'default' };
    const deadline = new Deadline(started + config.deadline, signal);
    return then(podCheck.check(pod, uses, { deadline }), (findings) =>
      this.#answer(req, mode, images, findings, started),
    );
  }

  /**
   * A review whose body passed one of pullguard's own limits (`limit`, `why` following "its review
   * body"): only its head was read. Allowed, saying it was not checked and why; counted and logged.
   */
  unchecked(head: ReviewHead, limit: string, why: string, pathMode?: Mode): ReviewResponse {
    const { config, logger, observer } = this.#deps;
    const mode = pathMode ?? config.mode;
    const answer = uncheckedResponse(head, why, mode !== 'audit');
    const skipped = wouldCheck(head);
    if (skipped) observer?.unchecked?.(limit);
    logger[skipped ? 'warn' : 'debug'](
      {
        uid: logText(head.uid),
        kind: logText(head.kind.kind),
        namespace: logText(head.namespace ?? ''),
        name: logText(head.name ?? ''),
        operation: head.operation,
        mode,
        limit,
        reason: logText(`its review body ${why}`),
      },
      'review not checked',
    );
    return answer;
  }

  /** The policy's actions on the findings, the answer, the observer's record and the log line. */
  #answer(
    req: AdmissionRequest,
    mode: Mode,
    { site, uses, unchanged }: ReturnType<typeof imagesToCheck>,
    findings: Finding[],
    started: number,
  ): ReviewResponse {
    const { config, logger, observer } = this.#deps;
    const kind = req.kind.kind;
    const decided = findings.map((finding) => ({ finding, action: actionFor(finding, mode, config.actions) }));
    const answer = respond(req.uid, decided);
    let worst = 0;
    for (const f of findings) worst = Math.max(worst, WORST.indexOf(f.verdict));
    const verdict = WORST[worst]!;
    const action = !answer.response.allowed
      ? 'deny'
      : answer.response.warnings?.length
        ? 'warn'
        : decided.some((d) => d.action === 'record')
          ? 'record'
          : 'allow';
    const ms = Math.round((performance.now() - started) * 10) / 10;
    observer?.reviewed({
      kind,
      operation: req.operation,
      verdict,
      action,
      seconds: ms / 1000,
      notable:
        verdict === 'ok'
          ? NOTHING_NOTABLE
          : decided
              .filter((d) => d.finding.verdict !== 'ok')
              .map((d) => ({ reason: d.finding.reason, action: d.action })),
    });
    // Reviews with something to say (a finding that is not ok, or any action but allow) at info,
    // with everything an operator needs; the plain allows, the bulk of the traffic, at debug. The
    // observer above counts every review either way. The line is only built when it will be written.
    const level = verdict === 'ok' && action === 'allow' ? 'debug' : 'info';
    if (logger.isLevelEnabled(level))
      logger[level](
        {
          uid: logText(req.uid),
          kind: logText(kind),
          namespace: logText(req.namespace ?? ''),
          name: logText(req.name || site?.name || ''),
          operation: req.operation,
          ...(req.subResource ? { subResource: req.subResource } : {}),
          ...(req.dryRun ? { dryRun: true } : {}),
          mode,
          images: uses.length,
          unchanged,
          verdict,
          action,
          ms,
          ...(verdict === 'ok' ? {} : notableForLog(decided)),
        },
        'review',
      );
    return answer;
  }
}

/** The review log line's findings: C1 controls and line separators escaped, as in warnings. */
function notableForLog(decided: Parameters<typeof notableFindings>[0]) {
  const { findings, omitted } = notableFindings(decided);
  return {
    findings: findings.map((f) => ({ ...f, container: logText(f.container), image: logText(f.image) })),
    ...(omitted ? { findingsOmitted: omitted } : {}),
  };
}
