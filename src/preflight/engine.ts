// The engine: for every image a pod would pull, the finding the kubelet would agree with.
// Per image: parse as the kubelet does, pick credentials with its keyring rules, ask the registry
// (cached, shared, capped), then classify; all within one deadline after which the rest is `timeout`.

import { LRUCache } from 'lru-cache';
import { SharedCache } from '../cache.ts';
import type { Config } from '../config.ts';
import type { CredentialContext } from '../credentials/context.ts';
import { unionLookup, urlsMatchStr, type Credential } from '../credentials/keyring.ts';
import type { Finding, ImageUse, Reason } from '../findings.ts';
import { verdictOf } from '../findings.ts';
import { format as formatPlatform, fromOCI, indexHasPlatform, type Platform } from '../platform/index.ts';
import { parseImage, type ImageRef } from '../reference/index.ts';
import { credentialId } from '../registry/auth.ts';
import { isIndexMediaType, type Answer, type Outcome, type RegistryClient } from '../registry/client.ts';
import { isDockerHub } from '../registry/hosts.ts';
import { explain, type ExplainInput, type Explained, type Face } from './messages.ts';
import { OFFICIAL_IMAGES } from './official-images.ts';
import { nearest } from './suggest.ts';
import { PullguardError } from '../errors.ts';

export interface CheckOptions {
  credentials: CredentialContext;
  /** the platforms pods may land on (the nodes'); none: not checked */
  platforms?: readonly Platform[];
  /** overall deadline in ms (default: the configured one) */
  deadline?: number;
  /** whether some node reports one of these image names (pullPolicy Never); undefined: unknown */
  imageOnAnyNode?: (names: string[]) => boolean | undefined;
  /** called once per use as its verdict is known (progress for people) */
  onSettled?: () => void;
  /** the caller gave up: every registry request still in flight for it is aborted */
  signal?: AbortSignal;
}

/** What evaluate() needs beyond the options: the signal that ends this check's registry work. */
type Run = CheckOptions & { signal: AbortSignal };

/** The part of a finding that does not depend on where the image is used. */
export type ImageVerdict = Omit<Finding, 'container' | 'field' | 'object' | 'image'> & { image: string };

type Resolved = Answer & { cred: Credential | null };

export class Preflight {
  readonly client: RegistryClient;
  private readonly config: Config;
  private readonly answers: SharedCache<Answer>;
  /** per index or manifest digest: only the platforms it offers (bodies can be megabytes) */
  private readonly platformLists: SharedCache<PlatformList>;
  private readonly tagLists: SharedCache<Answer & { tags?: string[] }>;
  /** per registry host and credential: the first page of its repository list, for "did you mean" */
  private readonly catalogs: SharedCache<Answer & { repositories?: string[] }>;
  /** whose settings the fixes name: the CLI's flags or the configuration's keys */
  private readonly face: Face;

  /**
   * The engine asks registries through `client` (as containerd's resolver takes its hosts and
   * authorizer) and closes it with itself.
   */
  constructor(config: Config, client: RegistryClient, options: { face?: Face } = {}) {
    this.config = config;
    this.client = client;
    this.face = options.face ?? 'server';
    this.answers = new SharedCache(config.cache.maxEntries);
    this.settled = new LRUCache<string, Settled>({ max: config.cache.maxEntries });
    this.platformLists = new SharedCache(Math.max(100, Math.floor(config.cache.maxEntries / 10)));
    this.tagLists = new SharedCache(Math.max(100, Math.floor(config.cache.maxEntries / 10)));
    this.catalogs = new SharedCache(100);
  }

  get cacheStats() {
    return { answers: this.answers.stats, size: this.answers.size };
  }

  /**
   * One finding per use; each distinct image is checked once. At the deadline (or when the caller's
   * signal aborts) the unfinished become `timeout` and their registry requests are aborted, unless
   * another check is still waiting for the same answer.
   */
  async check(uses: ImageUse[], opts: CheckOptions): Promise<Finding[]> {
    const cached = this.cachedFindings(uses, opts);
    if (cached) {
      if (opts.onSettled) for (const _ of uses) opts.onSettled();
      return cached;
    }
    const deadline = opts.deadline ?? this.config.deadline;
    const byImage = new Map<string, Promise<ImageVerdict>>();
    const key = (u: ImageUse) => `${u.image}\u0000${u.pullPolicy ?? ''}`;
    const stop = new AbortController();
    const expired = new Promise<'timeout'>((resolve) =>
      stop.signal.addEventListener('abort', () => resolve('timeout'), { once: true }),
    );
    const timer = setTimeout(() => stop.abort(new DeadlineError(deadline)), deadline);
    const onCallerAbort = () => stop.abort(opts.signal?.reason);
    if (opts.signal?.aborted) onCallerAbort();
    else opts.signal?.addEventListener('abort', onCallerAbort, { once: true });
    const run: Run = { ...opts, signal: stop.signal };
    try {
      for (const use of uses) {
        if (!byImage.has(key(use))) {
          const work = this.evaluate(use.image, use.pullPolicy, run);
          byImage.set(
            key(use),
            Promise.race([work, expired]).then((v) => (v === 'timeout' ? this.timedOut(use.image, deadline) : v)),
          );
        }
      }
      const settled = opts.onSettled;
      const verdicts = await Promise.all(
        uses.map((u) => (settled ? byImage.get(key(u))!.finally(settled) : byImage.get(key(u))!)),
      );
      return uses.map((u, i) => findingOf(verdicts[i]!, u));
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onCallerAbort);
      // Whatever is still running for this check is no longer wanted by it.
      stop.abort(new DeadlineError(deadline));
    }
  }

  /**
   * The findings now when every image's verdict is settled from the cache (the common warm review):
   * no timer, no race, no promise. Otherwise undefined, and check() decides.
   */
  cachedFindings(uses: ImageUse[], opts: CheckOptions): Finding[] | undefined {
    const remembered = uses.map((u) => this.settledVerdict(u.image, u.pullPolicy, opts));
    if (!remembered.every((s) => s !== undefined)) return undefined;
    // The registry answers were served from the cache, as the full path would have counted them
    // (counted here, once all are: a miss goes on to check(), which counts what it uses).
    for (const s of remembered) this.answers.stats.hits += s!.answers.length;
    return uses.map((u, i) => findingOf(remembered[i]!.verdict, u));
  }

  /** One image, all the way to a verdict. Never throws: a surprise is a registry-error risk. */
  async evaluate(image: string, pullPolicy: string | undefined, opts: CheckOptions): Promise<ImageVerdict> {
    const run: Run = opts.signal ? (opts as Run) : { ...opts, signal: new AbortController().signal };
    try {
      return await this.evaluateUnsafe(image, pullPolicy, run);
    } catch (err) {
      if (run.signal.aborted) return this.timedOut(image, opts.deadline ?? this.config.deadline);
      return verdict(
        image,
        '',
        'registry-error',
        explain({ reason: 'registry-error', image, detail: `pullguard failed: ${(err as Error).message}` }),
        [String((err as Error).message)],
      );
    }
  }

  /**
   * 'available' verdicts, by image, pull policy, credentials and platforms, with the cached answers
   * (and platform list) they came from: served again, without re-deciding, only while every one of
   * those is still the cached one. A refreshed or expired answer makes the next check decide anew.
   */
  private readonly settled: LRUCache<string, Settled>;

  private settledVerdict(image: string, pullPolicy: string | undefined, opts: CheckOptions): Settled | undefined {
    if (opts.credentials.brokenSecrets?.length || opts.credentials.dynamic?.length) return undefined;
    const { parsed } = this.staticsOf(image);
    if (!parsed.ok) return undefined;
    const creds = unionLookup(opts.credentials.keyrings, parsed.ref.name);
    const s = this.settled.get(settledKey(image, pullPolicy, creds, opts.platforms));
    if (!s) return undefined;
    for (let i = 0; i < s.answerKeys.length; i++)
      if (this.answers.peek(s.answerKeys[i]!) !== s.answers[i]) return undefined;
    if (s.platformKey !== undefined && this.platformLists.peek(s.platformKey) !== s.platformList) return undefined;
    return s;
  }

  /** Parsing and provider-pattern matching depend on the image string alone: done once per string. */
  private readonly statics = new LRUCache<string, { parsed: ReturnType<typeof parseImage>; providerManaged: boolean }>({
    max: 10_000,
  });

  private staticsOf(image: string) {
    let s = this.statics.get(image);
    if (!s) {
      const parsed = parseImage(image);
      const providerManaged =
        parsed.ok && this.config.credentials.providerImages.some((p) => safeMatch(p, parsed.ref.name));
      this.statics.set(image, (s = { parsed, providerManaged }));
    }
    return s;
  }

  private async evaluateUnsafe(image: string, pullPolicy: string | undefined, opts: Run): Promise<ImageVerdict> {
    const { parsed, providerManaged } = this.staticsOf(image);
    if (!parsed.ok) {
      return verdict(
        image,
        '',
        'invalid-reference',
        explain({ reason: 'invalid-reference', image, error: parsed.error }),
        [parsed.error],
      );
    }
    const ref = parsed.ref;
    const base = { image, ref };

    if (pullPolicy === 'Never') {
      const present = opts.imageOnAnyNode?.(nodeImageNames(ref));
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
    if (ref.domain === 'localhost') {
      return verdict(
        image,
        ref.pullRef,
        'unverifiable',
        explain({ ...base, reason: 'unverifiable', why: 'localhost' }),
        [],
      );
    }

    if (opts.credentials.brokenSecrets?.length) {
      return verdict(
        image,
        ref.pullRef,
        'access-denied',
        explain({ ...base, reason: 'access-denied', brokenSecrets: opts.credentials.brokenSecrets }),
        [],
      );
    }
    const dynamic = opts.credentials.dynamic;
    const asked = dynamic?.length ? await Promise.all(dynamic.map((d) => d.lookup(ref.name, ref.domain))) : [];
    const creds = [...unionLookup(opts.credentials.keyrings, ref.name), ...asked.flatMap((a) => a.credentials)];
    // A credential source that failed: without it pullguard cannot say what the pull would see.
    const failures = asked.flatMap((a) => a.failures);
    const managed = providerManaged || asked.some((a) => a.managed);
    if (!creds.length && managed) {
      return verdict(image, ref.pullRef, 'unverifiable', explain(unverifiable(base, failures, 'provider')), failures);
    }

    // The kubelet tries every matching credential in order and stops at the first success; with
    // none it pulls anonymously, and never falls back to anonymous after a failure.
    const tried: Resolved[] = [];
    const answers: Answer[] = [];
    for (const cred of creds.length ? creds : [null]) {
      const answer = await this.resolve(ref, cred, opts.signal);
      answers.push(answer);
      tried.push({ ...answer, cred });
      if (answer.outcome.kind === 'found') break;
    }
    const found = tried.find((t) => t.outcome.kind === 'found');
    const evidence = [
      ...failures,
      ...tried.flatMap((t) => t.evidence.map((e) => (t.cred ? `[${t.cred.source}] ${e}` : e))),
    ];
    if (found) {
      const v = await this.onFound(image, ref, found, evidence, opts);
      // Remembered only without per-image credential sources (plugins), whose answers are theirs to keep.
      if (v.reason === 'available' && !dynamic?.length) {
        const wantsPlatforms = Boolean(opts.platforms?.length);
        const platformKey = wantsPlatforms ? this.platformKey(ref, found.outcome) : undefined;
        this.settled.set(settledKey(image, pullPolicy, creds, opts.platforms), {
          verdict: v,
          answerKeys: tried.map((t) => answerKey(ref, t.cred)),
          answers,
          ...(platformKey !== undefined ? { platformKey, platformList: this.platformLists.peek(platformKey) } : {}),
        });
      }
      return v;
    }
    // A 404 after authorization is definitive even for a provider's registry: the credentials worked.
    if (managed && !tried.some((t) => t.outcome.kind === 'not-found')) {
      return verdict(
        image,
        ref.pullRef,
        'unverifiable',
        explain(unverifiable(base, failures, 'provider-after-secrets')),
        evidence,
      );
    }
    return this.onFailure(image, ref, tried, evidence, opts, failures);
  }

  /** The registry's answer for one reference and credential, from the cache when it may be. */
  private resolve(ref: ImageRef, cred: Credential | null, signal: AbortSignal): Promise<Answer> {
    const target = { domain: ref.domain, path: ref.path };
    return this.answers.get(
      answerKey(ref, cred),
      (shared) => this.client.resolve(target, ref.digest ?? ref.tag ?? 'latest', cred, shared),
      (a) => this.ttlOf(a.outcome, Boolean(ref.digest)),
      signal,
    );
  }

  private ttlOf(outcome: Outcome, byDigest: boolean): number {
    const c = this.config.cache;
    if (outcome.kind === 'found') return byDigest ? c.digestTtl : c.positiveTtl;
    // Negative and transient answers are kept briefly: a push is seen soon, and a dead registry
    // does not cost every review a full deadline.
    return c.negativeTtl;
  }

  private async onFound(
    image: string,
    ref: ImageRef,
    found: Resolved,
    evidence: string[],
    opts: Run,
  ): Promise<ImageVerdict> {
    const outcome = found.outcome as Extract<Outcome, { kind: 'found' }>;
    const digest = outcome.digest || undefined;
    const extras = digest ? { digest } : {};
    const wanted = opts.platforms ?? [];
    if (wanted.length) {
      const { platforms: offered, failure } = await this.platformsOf(ref, outcome, found.cred, opts.signal);
      if (failure) {
        // The image exists but its platforms could not be read: not knowing is a risk, not an ok.
        const reason = TRANSIENT_REASON[failure.outcome.kind as TransientKind] ?? 'registry-error';
        return {
          ...verdict(
            image,
            ref.pullRef,
            reason,
            explain(
              transientInput(
                { image, ref, face: this.face },
                reason,
                failure.outcome,
                // For a timeout the words say the deadline, not what happened.
                reason === 'timeout'
                  ? undefined
                  : `its platforms could not be read: ${failure.evidence.at(-1) ?? failure.outcome.kind}`,
              ),
            ),
            [...evidence, ...failure.evidence],
          ),
          ...extras,
        };
      }
      if (offered) {
        const missing = wanted.filter((w) => !indexHasPlatform(offered, w));
        const offeredText = offered
          .filter((p): p is Platform => Boolean(p))
          .map(formatPlatform)
          .filter((p) => p !== 'unknown/unknown');
        if (missing.length) {
          // No build for some of the nodes: a risk (pods may land elsewhere); for none of them: a failure.
          const partial = missing.length < wanted.length;
          const text = explain({
            image,
            ref,
            reason: 'platform-not-found',
            missing: missing.map(formatPlatform),
            offered: offeredText,
            partial,
            single: !isIndexMediaType(outcome.mediaType),
          });
          return {
            ...verdict(image, ref.pullRef, 'platform-not-found', text, evidence, partial ? 'risk' : undefined),
            ...extras,
          };
        }
      }
    }
    const rl = found.rateLimit;
    if (rl && rl.remaining < this.config.registry.rateLimitThreshold) {
      return {
        ...verdict(
          image,
          ref.pullRef,
          'rate-limited',
          explain({ image, ref, reason: 'rate-limited', rateLimit: rl, credentialSource: found.cred?.source }),
          evidence,
        ),
        ...extras,
      };
    }
    return {
      ...verdict(image, ref.pullRef, 'available', explain({ image, ref, reason: 'available' }), evidence),
      ...extras,
    };
  }

  private platformKey(ref: ImageRef, outcome: Outcome): string {
    return `body|${this.client.hostFor(ref.domain)}|${(outcome as { digest?: string }).digest ?? ''}`;
  }

  /** The platforms an image offers: the index's entries, or a single manifest's config. Cached by digest. */
  private async platformsOf(
    ref: ImageRef,
    outcome: Extract<Outcome, { kind: 'found' }>,
    cred: Credential | null,
    signal: AbortSignal,
  ): Promise<PlatformList> {
    const target = { domain: ref.domain, path: ref.path };
    return this.platformLists.get(
      this.platformKey(ref, outcome),
      async (shared) => {
        const res = await this.client.manifest(target, outcome.digest, cred, shared);
        if (!res.body) return TRANSIENT_REASON[res.outcome.kind as TransientKind] ? { failure: res } : {};
        const json = res.body.json;
        if (Array.isArray(json.manifests)) {
          const platforms = (json.manifests as { platform?: Record<string, unknown> }[]).map((m) =>
            m.platform ? fromOCI(m.platform) : undefined,
          );
          return { platforms };
        }
        // A single manifest: its config says what it was built for.
        const config = json.config as { digest?: unknown } | undefined;
        if (typeof config?.digest !== 'string') return {};
        const blob = await this.client.blobJson(target, config.digest, cred, shared);
        if (!blob || typeof blob.architecture !== 'string' || typeof blob.os !== 'string') return {};
        return { platforms: [fromOCI(blob)] };
      },
      (v) => (v.platforms ? this.config.cache.digestTtl : this.config.cache.negativeTtl),
      signal,
    );
  }

  private async onFailure(
    image: string,
    ref: ImageRef,
    tried: Resolved[],
    evidence: string[],
    opts: Run,
    failures: string[] = [],
  ): Promise<ImageVerdict> {
    // Transient trouble with any credential means we cannot know what the kubelet will see.
    const transient = tried.find((t) => t.outcome.kind in TRANSIENT_REASON);
    const about = { image, ref, face: this.face };
    if (transient) {
      const reason = TRANSIENT_REASON[transient.outcome.kind as TransientKind];
      const text = explain(transientInput(about, reason, transient.outcome, transient.evidence.at(-1)));
      return verdict(image, ref.pullRef, reason, text, evidence);
    }
    // A 404 after authorization is definitive: the credentials worked and the thing is not there.
    const notFound = tried.find((t) => t.outcome.kind === 'not-found');
    if (notFound) {
      const code = (notFound.outcome as Extract<Outcome, { kind: 'not-found' }>).code;
      const list = await this.tagsOf(ref, notFound.cred, opts.signal);
      const repositoryMissing =
        code === 'NAME_UNKNOWN' ||
        (list.outcome.kind === 'not-found' && (list.outcome as { code?: string }).code === 'NAME_UNKNOWN');
      if (repositoryMissing) {
        const suggestions = isDockerHub(ref.domain)
          ? officialSuggestions(ref)
          : await this.catalogSuggestions(ref, notFound.cred, opts.signal);
        return withSuggestions(
          verdict(
            image,
            ref.pullRef,
            'repository-not-found',
            explain({ ...about, reason: 'repository-not-found', suggestions }),
            evidence,
          ),
          suggestions,
        );
      }
      if (ref.digest)
        return verdict(
          image,
          ref.pullRef,
          'digest-not-found',
          explain({ ...about, reason: 'digest-not-found' }),
          evidence,
        );
      const suggestions = list.tags ? nearest(ref.tag ?? 'latest', list.tags) : [];
      return withSuggestions(
        verdict(
          image,
          ref.pullRef,
          'tag-not-found',
          explain({
            ...about,
            reason: 'tag-not-found',
            suggestions,
            tagCount: list.tags?.length,
            tags: list.tags,
            tagsCapped: (list.tags?.length ?? 0) >= this.config.registry.maxTagsForSuggestions,
          }),
          evidence,
        ),
        suggestions,
      );
    }
    if (failures.length) {
      return verdict(
        image,
        ref.pullRef,
        'unverifiable',
        explain({ ...about, reason: 'unverifiable', why: 'credential-failure', failures }),
        evidence,
      );
    }
    if (opts.credentials.unreadSecrets?.length) {
      return verdict(
        image,
        ref.pullRef,
        'unverifiable',
        explain({
          ...about,
          reason: 'unverifiable',
          why: 'unread-secrets',
          unreadSecrets: opts.credentials.unreadSecrets,
        }),
        evidence,
      );
    }
    const denied = tried[tried.length - 1]!;
    const suggestions = officialSuggestions(ref);
    return withSuggestions(
      verdict(
        image,
        ref.pullRef,
        'access-denied',
        explain({
          ...about,
          reason: 'access-denied',
          credentials: opts.credentials,
          tried: tried.map((t) => t.cred?.source ?? 'anonymous'),
          outcome: denied.outcome,
          suggestions,
          rejected: tried
            .filter((t) => t.outcome.kind === 'unauthorized' && t.outcome.rejected)
            .map((t) => t.cred?.source ?? ''),
        }),
        evidence,
      ),
      suggestions,
    );
  }

  private tagsOf(ref: ImageRef, cred: Credential | null, signal: AbortSignal): Promise<Answer & { tags?: string[] }> {
    return this.tagLists.get(
      `tags|${ref.name}|${credentialId(cred)}`,
      (shared) =>
        this.client.tags(
          { domain: ref.domain, path: ref.path },
          cred,
          this.config.registry.maxTagsForSuggestions || 1,
          shared,
        ),
      (a) => (a.tags ? this.config.cache.positiveTtl : this.config.cache.negativeTtl),
      signal,
    );
  }

  /**
   * Repositories on the same registry near a missing one ("shop/wbe" -> "shop/web"), from the first
   * page of its catalog, asked with the credential whose answer was "not found" (what it may see is
   * what it may be told). None when the registry does not list its catalog to that credential, and
   * none for the watch, which reads no lists (maxTagsForSuggestions 0).
   */
  private async catalogSuggestions(ref: ImageRef, cred: Credential | null, signal: AbortSignal): Promise<string[]> {
    const max = this.config.registry.maxTagsForSuggestions;
    if (!max) return [];
    const host = this.client.hostFor(ref.domain);
    const list = await this.catalogs.get(
      `catalog|${host}|${credentialId(cred)}`,
      (shared) => this.client.catalog(ref.domain, cred, max, shared),
      (a) => (a.repositories ? this.config.cache.positiveTtl : this.config.cache.negativeTtl),
      signal,
    );
    return nearest(ref.path, list.repositories ?? []).map((path) => `${ref.domain}/${path}`);
  }

  private timedOut(image: string, deadline: number): ImageVerdict {
    const { parsed } = this.staticsOf(image);
    return verdict(
      image,
      parsed.ok ? parsed.ref.pullRef : '',
      'timeout',
      explain({ image, reason: 'timeout', within: `${deadline} ms` }),
      [`no answer within the ${deadline} ms deadline`],
    );
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** Why a check's registry work was stopped: its deadline passed (or its caller gave up). */
class DeadlineError extends PullguardError {
  readonly code = 'deadline';
  constructor(ms: number) {
    super(`no answer within the ${ms} ms deadline`);
  }
}

/** The platforms an image offers (an entry without one matches any), or why they are unknown. */
interface PlatformList {
  platforms?: (Platform | undefined)[];
  failure?: Answer;
}

/** Unverifiable because of where the credentials come from, or because a credential source failed (said first). */
function unverifiable(
  about: { image: string; ref: ImageRef },
  failures: string[],
  otherwise: 'provider' | 'provider-after-secrets',
): ExplainInput {
  return failures.length
    ? { ...about, reason: 'unverifiable', why: 'credential-failure', failures }
    : { ...about, reason: 'unverifiable', why: otherwise };
}

/** A missing or denied Docker Hub official image: the nearest official names ("ngiinx" -> "nginx"). */
function officialSuggestions(ref: ImageRef): string[] {
  return isDockerHub(ref.domain) && ref.path.startsWith('library/')
    ? nearest(ref.path.slice('library/'.length), OFFICIAL_IMAGES)
    : [];
}

/** Registry answers that say nothing certain about the image, and the risk each one is. */
type TransientKind = 'rate-limited' | 'error' | 'unreachable' | 'timeout';
type TransientReason = 'rate-limited' | 'registry-error' | 'registry-unreachable' | 'timeout';
const TRANSIENT_REASON: Record<TransientKind, TransientReason> = {
  'rate-limited': 'rate-limited',
  error: 'registry-error',
  unreachable: 'registry-unreachable',
  timeout: 'timeout',
};

/** The words' input for a transient answer; `detail` is what happened (the last line of evidence). */
/** The explain() input of a transient registry answer; exported for its test. */
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

interface Settled {
  verdict: ImageVerdict;
  answerKeys: string[];
  answers: Answer[];
  platformKey?: string;
  platformList?: PlatformList | undefined;
}

/** The answer cache's key: a reference asked with one credential (its identity, never the secret itself). */
function answerKey(ref: ImageRef, cred: Credential | null): string {
  return `${ref.pullRef}|${credentialId(cred)}`;
}

const platformKeys = new WeakMap<readonly Platform[], string>();

/**
 * What an 'available' verdict depends on besides the cached answers: the credentials tried (their
 * identity and source, which the evidence names) and the platforms asked for.
 */
function settledKey(
  image: string,
  pullPolicy: string | undefined,
  creds: Credential[],
  platforms: readonly Platform[] | undefined,
): string {
  let wanted = '';
  if (platforms?.length) {
    wanted = platformKeys.get(platforms) ?? platforms.map(formatPlatform).join(',');
    platformKeys.set(platforms, wanted);
  }
  let key = `${image}\u0000${pullPolicy ?? ''}\u0000${wanted}`;
  for (const c of creds) key += `\u0000${credentialId(c)}\u0001${c.source}`;
  return key;
}

function findingOf(v: ImageVerdict, u: ImageUse): Finding {
  return {
    ...v,
    image: u.image,
    container: u.container,
    field: u.field,
    object: u.object,
    ...(u.source ? { source: u.source } : {}),
  };
}

function verdict(
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

function withSuggestions(v: ImageVerdict, suggestions: string[]): ImageVerdict {
  return suggestions.length ? { ...v, suggestions } : v;
}

function safeMatch(pattern: string, name: string): boolean {
  try {
    return urlsMatchStr(pattern, name);
  } catch {
    return false;
  }
}

/** The names a node lists in status.images for this reference (runtimes report normalized names). */
function nodeImageNames(ref: ImageRef): string[] {
  const names = [ref.pullRef];
  if (ref.tag && ref.digest) names.push(`${ref.name}:${ref.tag}`);
  return names;
}
