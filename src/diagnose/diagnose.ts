// One diagnosis per stuck container: the kubelet's evidence beside pullguard's finding of now, the
// cause and fix, whether the next retry can succeed, and where the two disagree (said, never hidden).

import type { Finding, Reason } from '../findings.ts';
import { isStuckReason } from '../cluster/projections.ts';
import { escapeJson, escapeUnsafe, oneLine, quote } from '../text.ts';
import { explain } from '../preflight/messages.ts';
import {
  type Backoff,
  backoffAfter,
  backoffCause,
  type ContainerEvidence,
  type PodEvent,
  runtimeText,
} from './evidence.ts';
import {
  agrees,
  classifyRuntimeMessage,
  describeRuntimeCause,
  NODE_CAUSES,
  type NodeCause,
  type RuntimeCause,
} from './runtime.ts';

export type Now = 'still-failing' | 'would-succeed' | 'unknown';

export interface ContainerDiagnosis {
  pod: { namespace: string; name: string; node?: string; platform?: string };
  container: string;
  /** the image volume (volumes[].image) the container waits on, when it is one */
  volume?: string;
  image: string;
  /** whether the container waits on an image pull */
  stuck: boolean;
  /** what the kubelet recorded */
  kubelet: { reason?: string; message?: string; events: string[] };
  /** pull events about the container that someone else than the kubelet reported: shown, never used */
  untrusted?: { count: number; events: string[] };
  /** the cause the kubelet's (runtime's) text shows, when it shows one */
  runtime?: RuntimeCause;
  /** the cause: pullguard's when it could ask the registry, else the runtime's */
  reason: Reason | 'not-found' | 'never-pull' | NodeCause | 'unknown';
  message: string;
  hint: string;
  now: Now;
  /** one sentence about the next retry */
  outlook: string;
  backoff?: Backoff;
  /** where the kubelet's evidence and pullguard disagree */
  disagreement?: string;
  /** pullguard's finding of now, when it could make one */
  finding?: Finding;
}

// Findings that mean pullguard asked and the registry still refuses the same way the kubelet saw.
const STILL_REFUSED: readonly Reason[] = ['rate-limited', 'registry-unreachable', 'registry-error'];

function nowOf(f: Finding | undefined, runtime: RuntimeCause | undefined): Now {
  if (!f) return 'unknown';
  if (f.verdict === 'ok') return 'would-succeed';
  if (f.verdict === 'fail') return 'still-failing';
  if (STILL_REFUSED.includes(f.reason)) return 'still-failing';
  // pull policy Never: the engine cannot see the node's images; the kubelet already said it is absent
  if (f.reason === 'unverifiable' && runtime?.reason === 'never-pull') return 'still-failing';
  return 'unknown';
}

/** A cause only the node knows (its signature policy, its pull limit, its runtime): a registry answer cannot overrule it. */
function isNodeCause(runtime: RuntimeCause | undefined): runtime is RuntimeCause & { reason: NodeCause } {
  return runtime !== undefined && (NODE_CAUSES as readonly string[]).includes(runtime.reason);
}

/**
 * The cause the waiting reason itself names, when the text shows none: the kubelet wrote
 * SignatureValidationFailed, RegistryUnavailable or ImageInspectError (or, in a 1.32+ back-off
 * message, as the previous pull's error) only for that cause.
 */
const REASON_CAUSES: Record<string, RuntimeCause['reason']> = {
  SignatureValidationFailed: 'signature-refused',
  RegistryUnavailable: 'registry-unreachable',
  ImageInspectError: 'inspect-failed',
};

function causeOf(ev: ContainerEvidence, text: string | undefined): RuntimeCause | undefined {
  const previous = backoffCause(ev.message);
  // The 1.32+ back-off message's cause, when no failed pull's text is left: its own text, then its error's name.
  const fromText = text ? classifyRuntimeMessage(previous && text === ev.message ? previous.text : text) : undefined;
  // The waiting reason names the cause; the text may say more (a host), or mislead ("connection
  // refused" from the runtime's own socket in an ImageInspectError).
  const name = [ev.reason, previous?.error].find((n) => n !== undefined && Object.hasOwn(REASON_CAUSES, n));
  if (!name) return fromText;
  const named = REASON_CAUSES[name]!;
  return fromText?.reason === named ? fromText : { reason: named, evidence: name };
}

const SIGNATURE_HINT =
  "the node's container runtime refused the image under its signature policy (CRI-O: /etc/containers/policy.json and registries.d; containerd: its image verifier plugins): sign the image with a key that policy trusts, or change the node's policy; pullguard does not verify signatures";
const THROTTLED_HINT =
  'the kubelet limits its own pulls (registryPullQPS, registryBurst in the kubelet configuration): the next retry usually succeeds; raise the limit if many pods start at once';
const INSPECT_HINT =
  "the container runtime on the node failed to look the image up: check the runtime there (crictl inspecti, its logs) and the node's image storage";

/** Seconds as a person says them: 45s, 3m, 2h. */
function humanSeconds(s: number): string {
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

/**
 * Shortens a kubelet message in the middle: its start names the image, its end carries the
 * runtime's cause ("…: not found", "…toomanyrequests: …"), the middle repeats the image. Both
 * parts end at a space, so no word is cut, unless a part has no space in its second half.
 */
export function shorten(text: string, max = 240): string {
  const chars = [...text];
  if (chars.length <= max) return text;
  const room = max - 3; // " … "
  const headMax = Math.floor(room / 4);
  let head = chars.slice(0, headMax).join('');
  if (chars[headMax] !== ' ') {
    const space = head.lastIndexOf(' ');
    if (space >= headMax / 2) head = head.slice(0, space);
  }
  head = head.trimEnd();
  const tailMax = room - [...head].length;
  let tail = chars.slice(chars.length - tailMax).join('');
  if (chars[chars.length - tailMax - 1] !== ' ') {
    const space = tail.indexOf(' ');
    if (space >= 0 && space <= tailMax / 2) tail = tail.slice(space + 1);
  }
  return `${head} … ${tail.trimStart()}`;
}

/** One event as a line: reason, repeat count, text. */
function eventLine(e: PodEvent, max: number): string {
  return `${e.reason ?? ''}${e.count > 1 ? ` (x${e.count})` : ''}: ${shorten(oneLine(e.message ?? ''), max)}`;
}

const NEVER_HINT =
  'load the image onto the node (or the nodes it may land on), or set imagePullPolicy to IfNotPresent so the kubelet pulls it';

/** pullguard's hint for a reason only the kubelet's text shows: its words without a registry's details. */
function hintOf(reason: Reason, image: string): string {
  switch (reason) {
    case 'invalid-reference':
      return explain({ reason, image, error: '' }).hint;
    case 'platform-not-found':
      return explain({ reason, image, missing: [], offered: [], single: false }).hint;
    case 'unverifiable':
      // No runtime text shows this one; what pullguard says when it cannot tell why.
      return 'check it from a node';
    default:
      return explain({ reason, image }).hint;
  }
}

export function diagnoseContainer(
  pod: ContainerDiagnosis['pod'],
  ev: ContainerEvidence,
  finding: Finding | undefined,
  now: Date,
): ContainerDiagnosis {
  const text = runtimeText(ev);
  const runtime = causeOf(ev, text);
  const stuck = isStuckReason(ev.reason);
  // An invalid name is never retried; a failed inspection is retried at each sync, without a back-off.
  const backoff =
    stuck && ev.reason !== 'InvalidImageName' && ev.reason !== 'ImageInspectError' ? backoffAfter(ev, now) : undefined;
  const nodeSide = isNodeCause(runtime) && finding?.verdict !== 'fail';
  let state = nowOf(finding, runtime);
  // The registry serves the image, but the node's policy refuses it: every retry fails alike.
  if (nodeSide && runtime.reason === 'signature-refused') state = 'still-failing';
  else if (nodeSide && runtime.reason === 'inspect-failed') state = 'unknown';

  let reason: ContainerDiagnosis['reason'] = 'unknown';
  // Neither a registry check nor the kubelet's words say why: still name the image and what to do.
  let message = `image ${quote(ev.image)}: neither a registry check nor the kubelet's message shows why the pull fails`;
  let hint = `see the pod's events (kubectl describe pod ${pod.name}) and pull the image from the node`;
  // A verdict the registry answered (ok, fail, or a refusal seen now) is never replaced by the
  // kubelet's text: that text may be an Event anyone in the namespace could have written. Only when
  // the registry could not be asked (timeout, unverifiable) does the text say why.
  // A cause only the node knows is the kubelet's to tell, whatever the registry answers (unless it fails).
  const useFinding = finding && !nodeSide && !(finding.verdict !== 'fail' && state === 'unknown' && runtime);
  if (finding && useFinding) {
    reason = finding.reason;
    ({ message, hint } = finding);
    if (finding.reason === 'unverifiable' && runtime?.reason === 'never-pull') {
      reason = 'never-pull';
      message = `image ${quote(ev.image)} is not on node ${quote(pod.node ?? '(unknown)')} and imagePullPolicy is Never: the kubelet will never pull it`;
      hint = NEVER_HINT;
    }
  } else if (runtime) {
    // pullguard could not tell now (unreachable, timeout, unverifiable): the kubelet's text still says why
    reason = runtime.reason;
    message = `image ${quote(ev.image)}: the kubelet reports that ${describeRuntimeCause(runtime.reason)} (${quote(runtime.evidence, 80)})${runtime.host ? ` for host ${runtime.host}` : ''}`;
    hint =
      runtime.reason === 'never-pull'
        ? NEVER_HINT
        : runtime.reason === 'not-found'
          ? 'check the repository name and the tag or digest; push the image if it was never pushed'
          : runtime.reason === 'signature-refused'
            ? SIGNATURE_HINT
            : runtime.reason === 'pull-throttled'
              ? THROTTLED_HINT
              : runtime.reason === 'inspect-failed'
                ? INSPECT_HINT
                : hintOf(runtime.reason, ev.image);
  } else if (finding) {
    reason = finding.reason;
    ({ message, hint } = finding);
  }

  let outlook: string;
  const due =
    backoff?.nextRetryInSeconds !== undefined
      ? backoff.nextRetryInSeconds > 0
        ? `due in ~${humanSeconds(backoff.nextRetryInSeconds)}`
        : 'due now'
      : 'due soon';
  if (!stuck) outlook = 'the container is not waiting on an image pull';
  else if (ev.reason === 'InvalidImageName')
    outlook = 'still failing: the kubelet never retries an invalid name; fix the image field (a new pod is made)';
  else if (nodeSide && runtime.reason === 'signature-refused')
    outlook = `still failing: the next retry, ${due}, will be refused by the node's signature policy the same way`;
  else if (nodeSide && runtime.reason === 'inspect-failed')
    outlook =
      "unknown: the kubelet asks the runtime again at each sync; it depends on the node's runtime, not the registry";
  else if (state === 'would-succeed')
    outlook = `would now succeed: the next retry, ${due}, will succeed; delete the pod to retry at once`;
  else if (state === 'still-failing') outlook = `still failing: the next retry, ${due}, will fail the same way`;
  else outlook = `unknown: pullguard cannot tell whether the next retry, ${due}, will succeed`;

  let disagreement: string | undefined;
  if (nodeSide) {
    // The node refused or could not look; the registry's answer is no disagreement with that.
  } else if (
    runtime &&
    finding &&
    finding.verdict !== 'ok' &&
    state !== 'unknown' &&
    !agrees(runtime.reason, finding.reason)
  ) {
    disagreement = `the kubelet's message says ${describeRuntimeCause(runtime.reason)}, but pullguard now finds ${finding.reason}: the cause may have changed since the last pull, or the node sees the registry differently`;
  } else if (
    stuck &&
    finding &&
    finding.verdict === 'ok' &&
    ev.reason !== 'ImagePullBackOff' &&
    ev.reason !== 'ErrImagePull'
  ) {
    disagreement = `the kubelet reports ${ev.reason}, but pullguard finds the image available`;
  }

  const kubelet: ContainerDiagnosis['kubelet'] = { events: ev.events.map((e) => eventLine(e, 300)) };
  if (ev.reason) kubelet.reason = ev.reason;
  if (text) kubelet.message = shorten(oneLine(text));

  const out: ContainerDiagnosis = {
    pod,
    container: ev.container,
    ...(ev.volume ? { volume: ev.volume } : {}),
    image: ev.image,
    stuck,
    kubelet,
    reason,
    message,
    hint,
    now: state,
    outlook,
  };
  if (runtime) out.runtime = runtime;
  if (backoff) out.backoff = backoff;
  if (disagreement) out.disagreement = disagreement;
  if (ev.untrustedCount)
    out.untrusted = {
      count: ev.untrustedCount,
      events: ev.untrusted.map((e) => `${eventLine(e, 200)} (reported by ${quote(e.source ?? '(nobody)', 63)})`),
    };
  if (finding) out.finding = finding;
  return out;
}

/** One block per container, each ending in an empty line. */
function textBlocks(list: readonly ContainerDiagnosis[]): string {
  const lines: string[] = [];
  for (const d of list) {
    lines.push(
      `pod ${d.pod.namespace}/${d.pod.name}${d.pod.node ? ` (node ${d.pod.node}${d.pod.platform ? `, ${d.pod.platform}` : ''})` : ''}, container ${quote(d.container, 63)}${d.volume ? `, image volume ${quote(d.volume, 63)}` : ''}, image ${quote(d.image)}`,
    );
    if (d.kubelet.reason || d.kubelet.message)
      lines.push(
        `  kubelet:   ${d.kubelet.reason ?? ''}${d.kubelet.message ? ` ${quote(d.kubelet.message, 300)}` : ''}`,
      );
    lines.push(`  cause:     ${d.reason}: ${oneLine(d.message)}`);
    if (d.hint) lines.push(`  fix:       ${oneLine(d.hint)}`);
    lines.push(`  now:       ${d.outlook}`);
    if (d.backoff && d.backoff.attempts > 0)
      lines.push(
        `  backoff:   ${d.backoff.attempts} failed pull${d.backoff.attempts === 1 ? '' : 's'}${d.backoff.failingForSeconds !== undefined ? ` over ${humanSeconds(d.backoff.failingForSeconds)}` : ''}; waiting ${humanSeconds(d.backoff.seconds)} between pulls (step ${d.backoff.step} of 6, 10s doubling to 5m)`,
      );
    if (d.disagreement) lines.push(`  disagrees: ${d.disagreement}`);
    if (d.untrusted) {
      for (const e of d.untrusted.events) lines.push(`  untrusted: not from the kubelet, ignored: ${e}`);
      const more = d.untrusted.count - d.untrusted.events.length;
      if (more > 0) lines.push(`  untrusted: ${more} more event${more === 1 ? '' : 's'} not from the kubelet, ignored`);
    }
    lines.push('');
  }
  // Every part is quoted or made one line already; this holds for what is added later too.
  return lines.map(escapeUnsafe).join('\n');
}

/** The JSON object of one diagnosis, as the report lists it. */
function diagnosisJson(d: ContainerDiagnosis): object {
  return {
    pod: d.pod,
    container: d.container,
    ...(d.volume ? { volume: d.volume } : {}),
    image: d.image,
    stuck: d.stuck,
    kubelet: d.kubelet,
    ...(d.runtime ? { runtime: d.runtime } : {}),
    reason: d.reason,
    message: d.message,
    hint: d.hint,
    now: d.now,
    outlook: d.outlook,
    ...(d.backoff ? { backoff: d.backoff } : {}),
    ...(d.disagreement ? { disagreement: d.disagreement } : {}),
    ...(d.untrusted ? { untrusted: d.untrusted } : {}),
  };
}

/**
 * A report written a part at a time as diagnoses come (`diagnose -A` of a large cluster never holds
 * them all): text, one block per container; or JSON, `{"diagnoses": [...], "stuck": N}` indented
 * as JSON.stringify(…, null, 2) writes it, each diagnosis written when it is added.
 */
export class DiagnosisReport {
  readonly #write: (text: string) => void;
  readonly #json: boolean;
  #count = 0;
  #stuck = 0;

  constructor(format: 'text' | 'json', write: (text: string) => void) {
    this.#json = format === 'json';
    this.#write = write;
  }

  /** how many diagnoses were written, and how many of them are stuck */
  get counts(): { diagnoses: number; stuck: number } {
    return { diagnoses: this.#count, stuck: this.#stuck };
  }

  add(list: readonly ContainerDiagnosis[]): void {
    if (!list.length) return;
    if (this.#json) {
      const items = list.map((d) => `    ${JSON.stringify(diagnosisJson(d), null, 2).replace(/\n/g, '\n    ')}`);
      this.#write(escapeJson(`${this.#count ? ',\n' : '{\n  "diagnoses": [\n'}${items.join(',\n')}`));
    } else {
      this.#write(`${this.#count ? '\n' : ''}${textBlocks(list)}`); // a blank line between blocks
    }
    this.#count += list.length;
    this.#stuck += list.filter((d) => d.stuck).length;
  }

  end(): void {
    if (this.#json)
      this.#write(`${this.#count ? '\n  ],\n' : '{\n  "diagnoses": [],\n'}  "stuck": ${this.#stuck}\n}\n`);
    else if (!this.#count) this.#write('no container is stuck pulling its image\n');
  }
}

/** The whole report at once. */
function reportOf(format: 'text' | 'json', list: readonly ContainerDiagnosis[]): string {
  let out = '';
  const report = new DiagnosisReport(format, (text) => {
    out += text;
  });
  report.add(list);
  report.end();
  return out;
}

/** The report a person reads: one block per container. */
export function diagnosesToText(list: readonly ContainerDiagnosis[]): string {
  return reportOf('text', list);
}

export function diagnosesToJson(list: readonly ContainerDiagnosis[]): string {
  return reportOf('json', list);
}
