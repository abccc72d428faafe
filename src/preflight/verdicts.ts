// Registry answers to a verdict: what the kubelet would make of them, in words for people. Pure: no
// request, no cache, no clock. The engine (engine.ts) gathers the answers (lookups.ts) and comes here.

import type { CredentialContext } from '../credentials/context.ts';
import type { Credential } from '../credentials/keyring.ts';
import type { Finding, ImageUse, Reason } from '../findings.ts';
import { verdictOf } from '../findings.ts';
import { format as formatPlatform, indexHasPlatform, type Platform } from '../platform/index.ts';
import type { ImageRef } from '../reference/index.ts';
import { isIndexMediaType, type Answer, type Outcome } from '../registry/client.ts';
import { isDockerHub } from '../registry/hosts.ts';
import { explain, type ExplainInput, type Explained, type Face } from './messages.ts';
import { OFFICIAL_IMAGES } from './official-images.ts';
import { nearest } from './suggest.ts';

/** The part of a finding that does not depend on where the image is used. */
export type ImageVerdict = Omit<Finding, 'container' | 'field' | 'object' | 'image'> & { image: string };

/** A registry answer and the credential it was asked with (null: anonymous). */
export type Resolved = Answer & { cred: Credential | null };

/**
 * The platforms an image offers (an entry without one matches any), or why they are unknown; and
 * what the runtime fetches next, read from the same body: an index's entries, a manifest's config
 * and layers.
 */
export interface PlatformList {
  platforms?: (Platform | undefined)[];
  failure?: Answer;
  /** the manifest the tag names is a 404 by its digest (a stale or partly synced cache) */
  missing?: Answer;
  /** an index: its entries, for picking each platform's own manifest as containerd does */
  entries?: IndexEntry[];
  /** a single manifest: its config blob as fetched, and its layers' digests */
  config?: FetchedBlob;
  layers?: string[];
}

export interface IndexEntry {
  digest: string;
  platform: Platform | undefined;
}

/** Why a blob could not be checked: its verdict stays the manifests'. */
export type UnverifiedCause = 'error' | 'unreachable' | 'timeout' | 'signed-url' | 'denied' | 'rate-limited';

/** One manifest or blob the runtime fetches, as checked. */
export type FetchedBlob =
  | { state: 'present'; digest: string }
  | { state: 'missing'; digest: string; evidence: string[] }
  /** a platform's manifest that could not be read: a risk, as for the tag */
  | { state: 'transient'; digest: string; answer: Answer }
  /** a blob that could not be checked (5xx, timeout, storage unreachable, a signed URL refusing HEAD) */
  | { state: 'unverified'; digest: string; cause: UnverifiedCause; evidence: string[] };

/** A fetch that did not come back present, and for which platforms' pulls (none: the image's own manifest). */
export interface FetchProblem {
  platforms: string[];
  what: 'manifest' | 'config' | 'layer';
  fetched: Exclude<FetchedBlob, { state: 'present' }>;
}

/** evidence lines about single blobs, at most */
const MAX_FETCH_LINES = 5;

/** What was checked past the manifest the tag names. */
export interface FetchReport {
  /** distinct manifests whose fetches were checked (one per picked index entry; 1 for a single manifest) */
  builds: number;
  /** builds with a missing manifest or blob */
  brokenBuilds: number;
  problems: FetchProblem[];
  /** one line of evidence: what was checked */
  summary: string;
}

/** What every verdict about one reference starts from (kept with the parsed image: made once per image). */
export interface About {
  image: string;
  ref: ImageRef;
  face: Face;
  /** the words for "available", which depend on the image alone: made on first use */
  available?: Explained;
}

/** Registry answers that say nothing certain about the image, and the risk each one is. */
export type TransientKind = 'rate-limited' | 'error' | 'unreachable' | 'timeout';
type TransientReason = 'rate-limited' | 'registry-error' | 'registry-unreachable' | 'timeout';
export const TRANSIENT_REASON: Record<TransientKind, TransientReason> = {
  'rate-limited': 'rate-limited',
  error: 'registry-error',
  unreachable: 'registry-unreachable',
  timeout: 'timeout',
};

export function verdict(
  image: string,
  reference: string,
  reason: Reason,
  text: Explained,
  evidence: string[],
  override?: 'risk',
): ImageVerdict {
  return {
    image,
    reference,
    verdict: override ?? verdictOf(reason),
    reason,
    message: text.message,
    hint: text.hint,
    evidence,
  };
}

export function findingOf(v: ImageVerdict, u: ImageUse): Finding {
  return {
    ...v,
    image: u.image,
    container: u.container,
    field: u.field,
    object: u.object,
    ...(u.source ? { source: u.source } : {}),
  };
}

export function invalidReference(image: string, error: string): ImageVerdict {
  return verdict(image, '', 'invalid-reference', explain({ reason: 'invalid-reference', image, error }), [error]);
}

/** The nodes' runtime will not pull it at all: its registries.conf blocks the registry, or a short name it will not resolve. */
export function blockedVerdict(image: string, reference: string, why: string, evidence: string[]): ImageVerdict {
  return verdict(image, reference, 'blocked', explain({ reason: 'blocked', image, why }), evidence);
}

/** Nothing answered by the deadline (`ms`, the check's budget). */
export function timedOut(image: string, reference: string, ms: number): ImageVerdict {
  return verdict(image, reference, 'timeout', explain({ image, reason: 'timeout', within: `${ms} ms` }), [
    `no answer within the ${ms} ms deadline`,
  ]);
}

/** Something in pullguard itself failed: a risk, never a crash. */
export function internalFailure(image: string, err: unknown): ImageVerdict {
  const message = String((err as Error)?.message);
  return verdict(
    image,
    '',
    'registry-error',
    explain({ reason: 'registry-error', image, detail: `pullguard failed: ${message}` }),
    [message],
  );
}

/**
 * The verdict no registry is asked for: pullPolicy Never (the nodes' images decide), a localhost
 * image, or pull secrets that do not parse. Undefined: the registry must be asked.
 */
export function beforeRegistry(
  about: About,
  pullPolicy: string | undefined,
  credentials: CredentialContext,
  imageOnAnyNode: ((names: string[]) => boolean | undefined) | undefined,
): ImageVerdict | undefined {
  const { image, ref } = about;
  const base = { image, ref };
  if (pullPolicy === 'Never') {
    const present = imageOnAnyNode?.(nodeImageNames(ref));
    if (present)
      return verdict(
        image,
        ref.pullRef,
        'available',
        explain({ reason: 'available', image, note: 'pullPolicy Never: the image is on at least one node' }),
        [],
      );
    return verdict(
      image,
      ref.pullRef,
      'unverifiable',
      explain({ ...base, reason: 'unverifiable', why: present === false ? 'never-absent' : 'never-unknown' }),
      [],
    );
  }
  if (ref.domain === 'localhost')
    return verdict(
      image,
      ref.pullRef,
      'unverifiable',
      explain({ ...base, reason: 'unverifiable', why: 'localhost' }),
      [],
    );
  if (credentials.brokenSecrets?.length)
    return verdict(
      image,
      ref.pullRef,
      'access-denied',
      explain({ ...base, reason: 'access-denied', brokenSecrets: credentials.brokenSecrets }),
      [],
    );
  return undefined;
}

/** Unverifiable because of where the credentials come from, or because a credential source failed (said first). */
export function unverifiable(
  about: About,
  failures: string[],
  otherwise: 'provider' | 'provider-after-secrets',
  evidence: string[] = failures,
): ImageVerdict {
  const base = { image: about.image, ref: about.ref };
  const input: ExplainInput = failures.length
    ? { ...base, reason: 'unverifiable', why: 'credential-failure', failures }
    : { ...base, reason: 'unverifiable', why: otherwise };
  return verdict(about.image, about.ref.pullRef, 'unverifiable', explain(input), evidence);
}

/** The evidence of the answers tried: credential failures first, then each answer's lines with its source. */
export function evidenceOf(failures: string[], tried: Resolved[]): string[] {
  const out = [...failures];
  for (const t of tried) for (const e of t.evidence) out.push(t.cred ? `[${t.cred.source}] ${e}` : e);
  return out;
}

/**
 * An image the registry has: available, unless its platforms (when `wanted` and read) leave out a
 * node's, or its rate limit is nearly spent.
 */
export function foundVerdict(
  about: About,
  found: Resolved,
  evidence: string[],
  wanted: readonly Platform[],
  list: PlatformList | undefined,
  rateLimitThreshold: number,
): ImageVerdict {
  const { image, ref } = about;
  const outcome = found.outcome as Extract<Outcome, { kind: 'found' }>;
  const extras = outcome.digest ? { digest: outcome.digest } : {};
  if (list?.failure) {
    // The image exists but its platforms could not be read: not knowing is a risk, not an ok.
    const failure = list.failure;
    const reason = TRANSIENT_REASON[failure.outcome.kind as TransientKind] ?? 'registry-error';
    // For a timeout the words say the deadline, not what happened.
    const detail =
      reason === 'timeout'
        ? undefined
        : `its platforms could not be read: ${failure.evidence.at(-1) ?? failure.outcome.kind}`;
    const text = explain(transientInput(about, reason, failure.outcome, detail));
    return { ...verdict(image, ref.pullRef, reason, text, [...evidence, ...failure.evidence]), ...extras };
  }
  const offered = list?.platforms;
  if (offered && wanted.length) {
    const missing = wanted.filter((w) => !indexHasPlatform(offered, w));
    if (missing.length) {
      const known = offered.filter((p): p is Platform => Boolean(p) && formatPlatform(p!) !== 'unknown/unknown');
      // No build for some of the nodes: a risk (pods may land elsewhere); for none of them: a failure.
      const partial = missing.length < wanted.length;
      const text = explain({
        image,
        ref,
        reason: 'platform-not-found',
        missing: missing.map(withNodes),
        missingPlain: missing.map(formatPlatform),
        offered: known.map(formatPlatform),
        pin: pinTo(known, missing),
        partial,
        single: !isIndexMediaType(outcome.mediaType),
      });
      return {
        ...verdict(image, ref.pullRef, 'platform-not-found', text, evidence, partial ? 'risk' : undefined),
        ...extras,
      };
    }
  }
  const rl = found.rateLimit;
  if (rl && rl.remaining < rateLimitThreshold) {
    const text = explain({ image, ref, reason: 'rate-limited', rateLimit: rl, credentialSource: found.cred?.source });
    return { ...verdict(image, ref.pullRef, 'rate-limited', text, evidence), ...extras };
  }
  // Which mirror serves it, and what a mirror's miss costs: said, never held against the image.
  if (found.note)
    return {
      ...verdict(
        image,
        ref.pullRef,
        'available',
        explain({ image, ref, reason: 'available', note: found.note }),
        evidence,
      ),
      ...extras,
    };
  about.available ??= explain({ image, ref, reason: 'available' });
  return { ...verdict(image, ref.pullRef, 'available', about.available, evidence), ...extras };
}

/**
 * The verdict once what the runtime fetches after the tag is known: a missing manifest or blob is the
 * pull's failure (a risk when other builds the pods may land on are whole); a platform manifest that
 * could not be read is a risk; a blob that could not be checked keeps `base`, noted in the evidence.
 * A failure already found (no build for the nodes) stands.
 */
export function fetchVerdict(
  about: About,
  base: ImageVerdict,
  list: PlatformList | undefined,
  report: FetchReport | undefined,
): ImageVerdict {
  if (base.verdict === 'fail' || !list) return base;
  const { image, ref } = about;
  const extras = base.digest ? { digest: base.digest } : {};
  if (list.missing) {
    const text = explain({ image, ref, reason: 'manifest-missing', digest: base.digest });
    return {
      ...verdict(image, ref.pullRef, 'manifest-missing', text, [...base.evidence, ...list.missing.evidence]),
      ...extras,
    };
  }
  if (list.failure && base.reason === 'available') {
    // No platforms were wanted, so foundVerdict did not look: the manifest by digest could not be read.
    const failure = list.failure;
    const reason = TRANSIENT_REASON[failure.outcome.kind as TransientKind] ?? 'registry-error';
    const detail =
      reason === 'timeout'
        ? undefined
        : `the manifest ${base.digest ?? ''} could not be read: ${failure.evidence.at(-1) ?? failure.outcome.kind}`;
    const text = explain(transientInput(about, reason, failure.outcome, detail));
    return { ...verdict(image, ref.pullRef, reason, text, [...base.evidence, ...failure.evidence]), ...extras };
  }
  if (!report) return base;
  const evidence = [...base.evidence, report.summary];
  const missing = report.problems.filter((p) => p.fetched.state === 'missing');
  // One line per blob, the first few: an image may have 128 layers behind one broken CDN.
  const lines = report.problems.filter((p) => p.fetched.state === 'unverified' || p.fetched.state === 'missing');
  for (const p of lines.slice(0, MAX_FETCH_LINES))
    if (p.fetched.state === 'unverified' || p.fetched.state === 'missing')
      evidence.push(
        `${p.what} ${p.fetched.digest}${p.platforms.length ? ` (${p.platforms.join(', ')})` : ''} ` +
          `${p.fetched.state === 'missing' ? 'is missing' : `not verified (${p.fetched.cause})`}: ${p.fetched.evidence.at(-1) ?? ''}`,
      );
  if (lines.length > MAX_FETCH_LINES) evidence.push(`and ${lines.length - MAX_FETCH_LINES} more blobs like these`);
  if (missing.length) {
    const partial = report.brokenBuilds < report.builds;
    const first = missing[0]!;
    const platforms = [...new Set(missing.flatMap((p) => p.platforms))];
    const text =
      first.what === 'manifest'
        ? explain({ image, ref, reason: 'manifest-missing', digest: first.fetched.digest, platforms, partial })
        : explain({
            image,
            ref,
            reason: 'blob-missing',
            what: first.what,
            digest: first.fetched.digest,
            more: missing.length - 1,
            platforms,
            partial,
          });
    const reason = first.what === 'manifest' ? 'manifest-missing' : 'blob-missing';
    return { ...verdict(image, ref.pullRef, reason, text, evidence, partial ? 'risk' : undefined), ...extras };
  }
  const transient = report.problems.find((p) => p.fetched.state === 'transient');
  if (transient?.fetched.state === 'transient') {
    const answer = transient.fetched.answer;
    const reason = TRANSIENT_REASON[answer.outcome.kind as TransientKind] ?? 'registry-error';
    const detail =
      reason === 'timeout'
        ? undefined
        : `the ${transient.platforms.join(', ')} manifest ${transient.fetched.digest} could not be read: ${answer.evidence.at(-1) ?? answer.outcome.kind}`;
    const text = explain(transientInput(about, reason, answer.outcome, detail));
    return { ...verdict(image, ref.pullRef, reason, text, [...evidence, ...answer.evidence]), ...extras };
  }
  return { ...base, evidence };
}

/** "linux/arm64 (2 nodes)" when the nodes were counted (the node watch), else the platform alone. */
function withNodes(p: Platform & { nodes?: number }): string {
  const n = p.nodes;
  return typeof n === 'number' ? `${formatPlatform(p)} (${n} node${n === 1 ? '' : 's'})` : formatPlatform(p);
}

/**
 * The node selector that keeps a pod on what the image offers: its one OS and its one
 * architecture where the missing nodes differ in them, else a node affinity over its architectures.
 */
function pinTo(offered: readonly Platform[], missing: readonly Platform[]): string | undefined {
  const oses = [...new Set(offered.map((p) => p.os))];
  const arches = [...new Set(offered.map((p) => p.architecture))];
  const labels: string[] = [];
  if (oses.length === 1 && missing.some((m) => m.os !== oses[0])) labels.push(`kubernetes.io/os: ${oses[0]}`);
  if (arches.length === 1 && missing.some((m) => m.architecture !== arches[0]))
    labels.push(`kubernetes.io/arch: ${arches[0]}`);
  if (labels.length) return `nodeSelector {${labels.join(', ')}}`;
  if (arches.length > 1) return `a required node affinity kubernetes.io/arch In [${arches.join(', ')}]`;
  return undefined;
}

/** Transient trouble with any credential: pullguard cannot know what the kubelet will see. */
export function transientVerdict(about: About, tried: Resolved[], evidence: string[]): ImageVerdict | undefined {
  const transient = tried.find((t) => t.outcome.kind in TRANSIENT_REASON);
  if (!transient) return undefined;
  const reason = TRANSIENT_REASON[transient.outcome.kind as TransientKind];
  const text = explain(transientInput(about, reason, transient.outcome, transient.evidence.at(-1)));
  return verdict(about.image, about.ref.pullRef, reason, text, evidence);
}

/** Whether a "not found" means the repository (rather than the tag or digest) is missing. */
export function repositoryMissing(notFound: Resolved, tags: Answer): boolean {
  const code = (notFound.outcome as Extract<Outcome, { kind: 'not-found' }>).code;
  return (
    code === 'NAME_UNKNOWN' ||
    (tags.outcome.kind === 'not-found' && (tags.outcome as { code?: string }).code === 'NAME_UNKNOWN')
  );
}

export function repositoryNotFound(about: About, suggestions: string[], evidence: string[]): ImageVerdict {
  const text = explain({ ...about, reason: 'repository-not-found', suggestions });
  return withSuggestions(verdict(about.image, about.ref.pullRef, 'repository-not-found', text, evidence), suggestions);
}

/** The repository is there but not the digest, or not the tag (with the nearest tags it has). */
export function tagOrDigestNotFound(
  about: About,
  tags: string[] | undefined,
  evidence: string[],
  maxTags: number,
): ImageVerdict {
  const { image, ref } = about;
  if (ref.digest)
    return verdict(image, ref.pullRef, 'digest-not-found', explain({ ...about, reason: 'digest-not-found' }), evidence);
  const suggestions = tags ? nearest(ref.tag ?? 'latest', tags) : [];
  const text = explain({
    ...about,
    reason: 'tag-not-found',
    suggestions,
    tagCount: tags?.length,
    tags,
    tagsCapped: (tags?.length ?? 0) >= maxTags,
  });
  return withSuggestions(verdict(image, ref.pullRef, 'tag-not-found', text, evidence), suggestions);
}

/** No credential got an answer: a credential source failed, secrets were unread, or access was denied. */
export function deniedVerdict(
  about: About,
  tried: Resolved[],
  evidence: string[],
  failures: string[],
  credentials: CredentialContext,
): ImageVerdict {
  const { image, ref } = about;
  if (failures.length)
    return verdict(
      image,
      ref.pullRef,
      'unverifiable',
      explain({ ...about, reason: 'unverifiable', why: 'credential-failure', failures }),
      evidence,
    );
  if (credentials.unreadSecrets?.length)
    return verdict(
      image,
      ref.pullRef,
      'unverifiable',
      explain({ ...about, reason: 'unverifiable', why: 'unread-secrets', unreadSecrets: credentials.unreadSecrets }),
      evidence,
    );
  const denied = tried[tried.length - 1]!;
  const suggestions = officialSuggestions(ref);
  const text = explain({
    ...about,
    reason: 'access-denied',
    credentials,
    tried: tried.map((t) => t.cred?.source ?? 'anonymous'),
    outcome: denied.outcome,
    suggestions,
    rejected: tried
      .filter((t) => t.outcome.kind === 'unauthorized' && t.outcome.rejected)
      .map((t) => t.cred?.source ?? ''),
  });
  return withSuggestions(verdict(image, ref.pullRef, 'access-denied', text, evidence), suggestions);
}

/** The explain() input of a transient registry answer; `detail` is what happened (the last line of evidence). */
export function transientInput(
  about: { image: string; ref: ImageRef; face?: Face },
  reason: TransientReason,
  outcome: Outcome,
  detail: string | undefined,
): ExplainInput {
  switch (reason) {
    case 'rate-limited':
      return { ...about, reason, outcome };
    case 'registry-error':
      return { ...about, reason, outcome, detail };
    case 'registry-unreachable':
      return outcome.kind === 'unreachable' && outcome.tls
        ? { ...about, reason, detail, tls: outcome.tls }
        : { ...about, reason, detail };
    case 'timeout':
      // The request's own line ("host did not answer in time (8000 ms)") goes to the evidence; the
      // message says the deadline ("did not answer within <that line>" read as nonsense).
      return { ...about, reason };
  }
}

/** A missing or denied Docker Hub official image: the nearest official names ("ngiinx" -> "nginx"). */
export function officialSuggestions(ref: ImageRef): string[] {
  return isDockerHub(ref.domain) && ref.path.startsWith('library/')
    ? nearest(ref.path.slice('library/'.length), OFFICIAL_IMAGES)
    : [];
}

function withSuggestions(v: ImageVerdict, suggestions: string[]): ImageVerdict {
  return suggestions.length ? { ...v, suggestions } : v;
}

/** The nodes' kubelet imagePullCredentialsVerificationPolicy (KEP-2535). */
export type VerificationPolicy =
  | 'NeverVerify'
  | 'NeverVerifyPreloadedImages'
  | 'NeverVerifyAllowlistedImages'
  | 'AlwaysVerify';

/** A repository in preloadedImagesVerificationAllowlist: the same repository, or under a prefix ending in "/*". */
function allowlisted(name: string, allowlist: readonly string[]): boolean {
  return allowlist.some((a) => (a.endsWith('/*') ? name.startsWith(a.slice(0, -1)) : name === a));
}

/**
 * An IfNotPresent image the registry refuses, that a node already has: the kubelet may use that copy
 * without the pod's credentials, as the nodes' imagePullCredentialsVerificationPolicy says (KEP-2535;
 * kubelet pkg/kubelet/images/pullmanager image_pull_policies.go). Which node the pod lands on, and
 * whether the copy was preloaded or pulled for another pod, pullguard cannot know: a risk, never a
 * denial. AlwaysVerify (and a repository not on the allowlist under NeverVerifyAllowlistedImages)
 * keeps the registry's answer: the kubelet asks it with the pod's credentials.
 */
export function usableFromNode(
  v: ImageVerdict,
  about: About,
  policy: VerificationPolicy,
  allowlist: readonly string[],
  onNode: ((names: string[]) => boolean | undefined) | undefined,
): ImageVerdict {
  if (v.verdict !== 'fail' || v.reason === 'invalid-reference' || policy === 'AlwaysVerify') return v;
  const { ref } = about;
  if (policy === 'NeverVerifyAllowlistedImages' && !allowlisted(ref.name, allowlist)) return v;
  if (onNode?.(nodeImageNames(ref)) !== true) return v;
  const how =
    policy === 'NeverVerify'
      ? 'the kubelet uses the copy there without the credentials (imagePullCredentialsVerificationPolicy NeverVerify)'
      : policy === 'NeverVerifyAllowlistedImages'
        ? 'the kubelet uses the copy there without the credentials (preloadedImagesVerificationAllowlist)'
        : 'if it was preloaded there (not pulled for another pod), the kubelet uses it without the credentials (imagePullCredentialsVerificationPolicy NeverVerifyPreloadedImages)';
  return {
    ...v,
    verdict: 'risk',
    reason: 'unverifiable',
    message: `${v.message.replace(/\.$/, '')}; but a node already has the image: ${how}, while on any other node the pull fails`,
    hint: `${v.hint.replace(/\.$/, '')}; or keep the pod on the nodes that have the image`,
    evidence: [...v.evidence, `a node reports ${ref.pullRef} in status.images (pullPolicy IfNotPresent, ${policy})`],
  };
}

/** The names a node lists in status.images for this reference (runtimes report normalized names). */
function nodeImageNames(ref: ImageRef): string[] {
  const names = [ref.pullRef];
  if (ref.tag && ref.digest) names.push(`${ref.name}:${ref.tag}`);
  return names;
}
