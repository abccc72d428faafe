// The engine: for every image a pod would pull, the finding the kubelet would agree with.
// Per image: parse as the kubelet does, pick credentials with its keyring rules, ask the registry
// (lookups.ts: cached, shared, capped), then classify (verdicts.ts); all within one deadline after
// which the rest is `timeout`. Each step returns its value at once when it has it, so a check whose
// answers are all cached is answered without a promise or a timer.

import { LRUCache } from 'lru-cache';
import { type Maybe, then } from '../cache.ts';
import type { Config } from '../config/schema.ts';
import type { CredentialContext } from '../credentials/context.ts';
import { unionLookup, urlsMatchStr, type Credential } from '../credentials/keyring.ts';
import { Deadline } from '../deadline.ts';
import type { Finding, ImageUse } from '../findings.ts';
import type { Platform } from '../platform/index.ts';
import { parseImage, type ImageRef } from '../reference/index.ts';
import { isIndexMediaType, type Outcome, type RegistryClient } from '../registry/client.ts';
import { isDockerHub } from '../registry/hosts.ts';
import { RegistryLookups } from './lookups.ts';
import type { Face } from './messages.ts';
import {
  type About,
  beforeRegistry,
  type FetchReport,
  type PlatformList,
  blockedVerdict,
  deniedVerdict,
  evidenceOf,
  fetchVerdict,
  findingOf,
  foundVerdict,
  type ImageVerdict,
  internalFailure,
  invalidReference,
  officialSuggestions,
  type Resolved,
  repositoryMissing,
  repositoryNotFound,
  tagOrDigestNotFound,
  timedOut,
  transientVerdict,
  unverifiable,
  usableFromNode,
} from './verdicts.ts';

export type { ImageVerdict } from './verdicts.ts';
export { transientInput } from './verdicts.ts';

export interface CheckOptions {
  credentials: CredentialContext;
  /** the platforms pods may land on (the nodes', or the node's); none: not checked */
  platforms?: readonly Platform[];
  /** when the check must be done, and the caller's signal (default: the configured deadline from now) */
  deadline?: Deadline;
  /** registry answers older than this are asked again (a re-verification); default: any cached one */
  maxAgeMs?: number;
  /** whether some node reports one of these image names (pullPolicy Never); undefined: unknown */
  imageOnAnyNode?: (names: string[]) => boolean | undefined;
  /** called once per use as its verdict is known (progress for people) */
  onSettled?: () => void;
}

/** One check's facts, as every step gets them. */
interface Run {
  credentials: CredentialContext;
  platforms: readonly Platform[];
  deadline: Deadline;
  /** the check's budget in whole ms, for timeout messages */
  within: number;
  maxAgeMs: number | undefined;
  imageOnAnyNode: ((names: string[]) => boolean | undefined) | undefined;
}

const NO_PLATFORMS: readonly Platform[] = [];
/** no credential matches: the kubelet pulls anonymously */
const ANONYMOUS: readonly null[] = [null];

export class Preflight {
  readonly client: RegistryClient;
  readonly #config: Config;
  readonly #lookups: RegistryLookups;
  /** whose settings the fixes name: the CLI's flags or the configuration's keys */
  readonly #face: Face;
  /** Parsing and provider-pattern matching depend on the image string alone: done once per string. */
  readonly #statics = new LRUCache<
    string,
    {
      parsed: ReturnType<typeof parseImage>;
      providerManaged: boolean;
      about?: About;
      /** on CRI-O nodes, a short name's candidates (null: not a short name there) */
      short?: ShortName | null;
    }
  >({ max: 10_000 });

  /**
   * The engine asks registries through `client` (as containerd's resolver takes its hosts and
   * authorizer) and closes it with itself.
   */
  constructor(config: Config, client: RegistryClient, options: { face?: Face } = {}) {
    this.#config = config;
    this.client = client;
    this.#face = options.face ?? 'server';
    this.#lookups = new RegistryLookups(config, client);
  }

  get cacheStats() {
    return this.#lookups.cacheStats;
  }

  /** fetch checks (config, layers) that could not say present or missing, by cause */
  get fetchStats() {
    return this.#lookups.fetchStats;
  }

  /**
   * One finding per use; each distinct image is checked once. At once when every answer is cached;
   * otherwise, at the deadline (or when the caller's signal aborts) the unfinished become `timeout`
   * and their registry requests are aborted, unless another check is still waiting for the same answer.
   */
  check(uses: ImageUse[], opts: CheckOptions): Maybe<Finding[]> {
    const deadline = opts.deadline ?? Deadline.after(this.#config.deadline);
    const run: Run = {
      credentials: opts.credentials,
      platforms: opts.platforms ?? NO_PLATFORMS,
      deadline,
      within: deadline.ms(),
      maxAgeMs: opts.maxAgeMs,
      imageOnAnyNode: opts.imageOnAnyNode,
    };
    if (uses.length === 1) {
      // Most pods have one image: no table of distinct images.
      const use = uses[0]!;
      const v = this.#evaluate(use.image, use.pullPolicy, run);
      if (v instanceof Promise) return this.#race(uses, new Map([[useKey(use), v]]), run, opts.onSettled);
      opts.onSettled?.();
      return [findingOf(v, use)];
    }
    const byImage = new Map<string, Maybe<ImageVerdict>>();
    let waiting = false;
    for (const use of uses) {
      const key = useKey(use);
      if (byImage.has(key)) continue;
      const v = this.#evaluate(use.image, use.pullPolicy, run);
      if (v instanceof Promise) waiting = true;
      byImage.set(key, v);
    }
    if (waiting) return this.#race(uses, byImage, run, opts.onSettled);
    if (opts.onSettled) for (const _ of uses) opts.onSettled();
    return uses.map((u) => findingOf(byImage.get(useKey(u)) as ImageVerdict, u));
  }

  /** The verdicts that must be waited for, raced with the deadline. */
  async #race(
    uses: ImageUse[],
    byImage: Map<string, Maybe<ImageVerdict>>,
    run: Run,
    onSettled: (() => void) | undefined,
  ): Promise<Finding[]> {
    const signal = run.deadline.signal;
    // Its own listener on the deadline, removed when done: one deadline may serve many checks.
    let expire = () => {};
    const expired = new Promise<'timeout'>((resolve) => (expire = () => resolve('timeout')));
    if (signal.aborted) expire();
    else signal.addEventListener('abort', expire, { once: true });
    const raced = new Set<Promise<ImageVerdict>>();
    try {
      for (const use of uses) {
        const key = useKey(use);
        const v = byImage.get(key);
        if (v instanceof Promise && !raced.has(v)) {
          const r = Promise.race([v, expired]).then((x) =>
            x === 'timeout' ? this.#timedOut(use.image, run.within) : x,
          );
          raced.add(r);
          byImage.set(key, r);
        }
      }
      const verdicts = await Promise.all(
        uses.map((u) => {
          const v = byImage.get(useKey(u))!;
          return onSettled ? Promise.resolve(v).finally(onSettled) : v;
        }),
      );
      return uses.map((u, i) => findingOf(verdicts[i]!, u));
    } finally {
      signal.removeEventListener('abort', expire);
    }
  }

  /** One image, all the way to a verdict. Never throws: a surprise is a registry-error risk. */
  #evaluate(image: string, pullPolicy: string | undefined, run: Run): Maybe<ImageVerdict> {
    try {
      const v = this.#evaluateUnsafe(image, pullPolicy, run);
      return v instanceof Promise ? v.catch((err: unknown) => this.#failed(image, err, run)) : v;
    } catch (err) {
      return this.#failed(image, err, run);
    }
  }

  /** What a step that threw comes to: a timeout once the deadline has passed, else a registry-error risk. */
  #failed(image: string, err: unknown, run: Run): ImageVerdict {
    return run.deadline.done ? this.#timedOut(image, run.within) : internalFailure(image, err);
  }

  #staticsOf(image: string) {
    let s = this.#statics.get(image);
    if (!s) {
      const parsed = parseImage(image);
      const providerManaged =
        parsed.ok && this.#config.credentials.providerImages.some((p) => safeMatch(p, parsed.ref.name));
      s = {
        parsed,
        providerManaged,
        ...(parsed.ok
          ? { about: { image, ref: parsed.ref, face: this.#face }, short: this.#shortName(image, parsed.ref.pullRef) }
          : {}),
      };
      this.#statics.set(image, s);
    }
    return s;
  }

  #evaluateUnsafe(image: string, pullPolicy: string | undefined, run: Run): Maybe<ImageVerdict> {
    // A short name on CRI-O is its candidates' verdict: each is judged whole (the node's copy included) by its own name.
    const short = this.#staticsOf(image).short;
    if (short) return this.#candidates(image, pullPolicy, short, run);
    const v = this.#fromRegistry(image, pullPolicy, run);
    // KEP-2535: an IfNotPresent image some node has may be used there without the registry.
    const { imagePullCredentialsVerificationPolicy: policy, preloadedImagesVerificationAllowlist: allowlist } =
      this.#config.credentials;
    if (pullPolicy !== 'IfNotPresent' || !run.imageOnAnyNode || policy === 'AlwaysVerify') return v;
    const about = this.#staticsOf(image).about;
    if (!about) return v;
    // A verdict at hand is looked at at once, without a closure (the warm path makes no garbage).
    if (!(v instanceof Promise)) return usableFromNode(v, about, policy, allowlist, run.imageOnAnyNode);
    return v.then((verdict) => usableFromNode(verdict, about, policy, allowlist, run.imageOnAnyNode));
  }

  #fromRegistry(image: string, pullPolicy: string | undefined, run: Run): Maybe<ImageVerdict> {
    const statics = this.#staticsOf(image);
    const { parsed, providerManaged } = statics;
    if (!parsed.ok) return invalidReference(image, parsed.error);
    const ref = parsed.ref;
    // made with every image that parses
    const about = statics.about!;
    const early = beforeRegistry(about, pullPolicy, run.credentials, run.imageOnAnyNode);
    if (early) return early;
    const keyring = unionLookup(run.credentials.keyrings, ref.name);
    const dynamic = run.credentials.dynamic;
    if (!dynamic?.length) return this.#withCredentials(about, keyring, [], providerManaged, run);
    return Promise.all(dynamic.map((d) => d.lookup(ref.name, ref.domain))).then((asked) => {
      // A source the kubelet would not use for this pod (a provider given no ServiceAccount token):
      // why it gave nothing belongs with the credentials a denial describes.
      const notes = asked.flatMap((a) => a.notes ?? []);
      const within = notes.length
        ? { ...run, credentials: { ...run.credentials, problems: [...(run.credentials.problems ?? []), ...notes] } }
        : run;
      return this.#withCredentials(
        about,
        [...keyring, ...asked.flatMap((a) => a.credentials)],
        // A credential source that failed: without it pullguard cannot say what the pull would see.
        asked.flatMap((a) => a.failures),
        providerManaged || asked.some((a) => a.managed),
        within,
      );
    });
  }

  /**
   * On CRI-O nodes an image without a registry is not docker.io's: registries.conf's aliases and
   * unqualified-search registries decide (containers/image shortnames); undefined elsewhere.
   */
  #shortName(image: string, reference: string): ShortName | null {
    if (this.#config.nodes.runtime !== 'cri-o' || !this.client.routes.shortName) return null;
    const first = image.split('/')[0]!;
    const qualified = image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
    if (qualified) return null;
    return { reference, ...this.client.routes.shortName(image) };
  }

  /** A short name's candidates in order: the first that can be pulled is the answer, else the first's failure. */
  #candidates(image: string, pullPolicy: string | undefined, short: ShortName, run: Run): Maybe<ImageVerdict> {
    if ('error' in short) return blockedVerdict(image, short.reference, `CRI-O: ${short.error}`, [short.error]);
    const { candidates, why } = short;
    const named = (v: ImageVerdict, c: string): ImageVerdict => ({
      ...v,
      message: `${v.message} (on CRI-O nodes "${image}" means "${c}": ${why})`,
    });
    const step = (i: number, firstFailure?: ImageVerdict): Maybe<ImageVerdict> => {
      const c = candidates[i]!;
      return then(this.#evaluateUnsafe(c, pullPolicy, run), (v) => {
        const failure = firstFailure ?? named(v, c);
        if (v.reason === 'available' || i + 1 >= candidates.length)
          return v.reason === 'available' ? named(v, c) : failure;
        return step(i + 1, failure);
      });
    };
    return step(0);
  }

  #withCredentials(
    about: About,
    creds: Credential[],
    failures: string[],
    managed: boolean,
    run: Run,
  ): Maybe<ImageVerdict> {
    if (!creds.length && managed) return unverifiable(about, failures, 'provider');
    return then(this.#tryInOrder(about.ref, creds.length ? creds : ANONYMOUS, run, [], 0), (tried) => {
      const evidence = evidenceOf(failures, tried);
      const blocked = tried.find((t) => t.outcome.kind === 'blocked');
      if (blocked?.outcome.kind === 'blocked')
        return blockedVerdict(about.image, about.ref.pullRef, blocked.outcome.why, evidence);
      const found = tried.find((t) => t.outcome.kind === 'found');
      if (found) return this.#onFound(about, found, evidence, run);
      // A 404 after authorization is definitive even for a provider's registry: the credentials worked.
      if (managed && !tried.some((t) => t.outcome.kind === 'not-found'))
        return unverifiable(about, failures, 'provider-after-secrets', evidence);
      return this.#onFailure(about, tried, evidence, failures, run);
    });
  }

  /**
   * The kubelet tries every matching credential in order and stops at the first success; with none
   * it pulls anonymously, and never falls back to anonymous after a failure.
   */
  #tryInOrder(
    ref: ImageRef,
    creds: readonly (Credential | null)[],
    run: Run,
    tried: Resolved[],
    from: number,
  ): Maybe<Resolved[]> {
    for (let i = from; i < creds.length; i++) {
      const cred = creds[i]!;
      const answer = this.#lookups.resolve(ref, cred, run.deadline, run.maxAgeMs);
      if (answer instanceof Promise)
        return answer.then((a) => {
          tried.push({ ...a, cred });
          return a.outcome.kind === 'found' ? tried : this.#tryInOrder(ref, creds, run, tried, i + 1);
        });
      tried.push({ ...answer, cred });
      if (answer.outcome.kind === 'found') break;
    }
    return tried;
  }

  #onFound(about: About, found: Resolved, evidence: string[], run: Run): Maybe<ImageVerdict> {
    const threshold = this.#config.registry.rateLimitThreshold;
    const outcome = found.outcome as Extract<Outcome, { kind: 'found' }>;
    const wanted = run.platforms;
    const { ref } = about;
    // What the runtime GETs next: the manifest by digest. A digest reference to an index was just
    // HEADed by that digest, and with no platform wanted nothing more is picked from it.
    const index = isIndexMediaType(outcome.mediaType);
    // A nearly spent quota is not spent further: only the platforms are read, as before.
    const quotaLow = found.rateLimit !== undefined && found.rateLimit.remaining < threshold;
    if (
      !outcome.digest ||
      (!wanted.length && (quotaLow || (ref.digest && (index || !this.#config.registry.verifyLayers))))
    )
      return foundVerdict(about, found, evidence, wanted, undefined, threshold);
    // Only a body to read (platforms, config, layers) is GET; otherwise a HEAD says it is served.
    const headOnly = !wanted.length && (index || !this.#config.registry.verifyLayers);
    const list = this.#lookups.platformsOf(ref, outcome, found.cred, run.deadline, headOnly);
    return then(list, (l) => {
      const base = foundVerdict(about, found, evidence, wanted, wanted.length ? l : undefined, threshold);
      if (base.verdict === 'fail' || l.missing || l.failure || quotaLow) return fetchVerdict(about, base, l, undefined);
      const whole = this.#wholeFetches.get(l)?.get(wanted);
      if (whole) return fetchVerdict(about, base, l, whole);
      // Blobs get most of what is left: one that is not answered in time is a note, not a timeout.
      const report = this.#lookups.fetchesOf(ref, l, found.cred, wanted, run.deadline, run.deadline.share(0.9));
      if (report === undefined) return base;
      return then(report, (r) => {
        if (!r.problems.length) this.#rememberWhole(l, wanted, r);
        return fetchVerdict(about, base, l, r);
      });
    });
  }

  /**
   * Fetch reports with nothing wrong, per platform list and wanted platforms: both are cached
   * objects (the manifest's answer; the nodes' platforms per placement), so a warm review reuses
   * the report instead of asking every blob's cache again. Held no longer than the list itself;
   * a report with a problem is never held (a missing blob is asked again after negativeTtl).
   */
  readonly #wholeFetches = new WeakMap<PlatformList, WeakMap<readonly Platform[], FetchReport>>();

  #rememberWhole(list: PlatformList, wanted: readonly Platform[], report: FetchReport): void {
    let byWanted = this.#wholeFetches.get(list);
    if (!byWanted) this.#wholeFetches.set(list, (byWanted = new WeakMap()));
    byWanted.set(wanted, report);
  }

  #onFailure(about: About, tried: Resolved[], evidence: string[], failures: string[], run: Run): Maybe<ImageVerdict> {
    const transient = transientVerdict(about, tried, evidence);
    if (transient) return transient;
    // A 404 after authorization is definitive: the credentials worked and the thing is not there.
    const notFound = tried.find((t) => t.outcome.kind === 'not-found');
    if (!notFound) return deniedVerdict(about, tried, evidence, failures, run.credentials);
    const { ref } = about;
    return then(this.#lookups.tagsOf(ref, notFound.cred, run.deadline), (list) => {
      if (!repositoryMissing(notFound, list))
        return tagOrDigestNotFound(about, list.tags, evidence, this.#config.registry.maxTagsForSuggestions);
      const suggestions = isDockerHub(ref.domain)
        ? officialSuggestions(ref)
        : this.#lookups.catalogSuggestions(ref, notFound.cred, run.deadline);
      return then(suggestions, (s) => repositoryNotFound(about, s, evidence));
    });
  }

  #timedOut(image: string, ms: number): ImageVerdict {
    const { parsed } = this.#staticsOf(image);
    return timedOut(image, parsed.ok ? parsed.ref.pullRef : '', ms);
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** A short name as CRI-O resolves it: its candidates in order, or why it cannot be pulled. */
type ShortName = { reference: string } & ({ candidates: string[]; why: string } | { error: string });

/** Uses of one image with one pull policy share a verdict. */
function useKey(u: ImageUse): string {
  return `${u.image}\u0000${u.pullPolicy ?? ''}`;
}

function safeMatch(pattern: string, name: string): boolean {
  try {
    return urlsMatchStr(pattern, name);
  } catch {
    return false;
  }
}
