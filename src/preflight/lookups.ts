// What the engine asks registries, each answer cached, shared between the checks that wait for it,
// and capped: a reference's answer per credential, the platforms a digest offers, a repository's
// tags and a registry's catalog (both for "did you mean"). A cached answer comes back at once.

import { type Caller, type Maybe, SharedCache, then } from '../cache.ts';
import type { Config } from '../config/schema.ts';
import type { Credential } from '../credentials/keyring.ts';
import { fromOCI } from '../platform/index.ts';
import type { ImageRef } from '../reference/index.ts';
import { credentialId } from '../registry/auth.ts';
import type { Answer, Outcome, RegistryClient } from '../registry/client.ts';
import { nearest } from './suggest.ts';
import { TRANSIENT_REASON, type PlatformList, type TransientKind } from './verdicts.ts';

export class RegistryLookups {
  readonly client: RegistryClient;
  readonly #config: Config;
  readonly #answers: SharedCache<Answer>;
  /** per index or manifest digest: only the platforms it offers (bodies can be megabytes) */
  readonly #platformLists: SharedCache<PlatformList>;
  readonly #tagLists: SharedCache<Answer & { tags?: string[] }>;
  /** per registry host and credential: the first page of its repository list, for "did you mean" */
  readonly #catalogs: SharedCache<Answer & { repositories?: string[] }>;

  constructor(config: Config, client: RegistryClient) {
    this.#config = config;
    this.client = client;
    this.#answers = new SharedCache(config.cache.maxEntries);
    this.#platformLists = new SharedCache(Math.max(100, Math.floor(config.cache.maxEntries / 10)));
    this.#tagLists = new SharedCache(Math.max(100, Math.floor(config.cache.maxEntries / 10)));
    this.#catalogs = new SharedCache(100);
  }

  get cacheStats() {
    return { answers: this.#answers.stats, size: this.#answers.size };
  }

  /**
   * The registry's answer for one reference and credential, from the cache when it may be: never
   * one older than `maxAgeMs` when that is given.
   */
  resolve(ref: ImageRef, cred: Credential | null, caller: Caller, maxAgeMs?: number): Maybe<Answer> {
    return this.#answers.get(
      `${ref.pullRef}|${credentialId(cred)}`,
      (shared) =>
        this.client.resolve({ domain: ref.domain, path: ref.path }, ref.digest ?? ref.tag ?? 'latest', cred, shared),
      (a) => this.#ttlOf(a.outcome, Boolean(ref.digest)),
      caller,
      maxAgeMs,
    );
  }

  #ttlOf(outcome: Outcome, byDigest: boolean): number {
    const c = this.#config.cache;
    if (outcome.kind === 'found') return byDigest ? c.digestTtl : c.positiveTtl;
    // Negative and transient answers are kept briefly: a push is seen soon, and a dead registry
    // does not cost every review a full deadline.
    return c.negativeTtl;
  }

  /** The platforms an image offers: the index's entries, or a single manifest's config. Cached by digest. */
  platformsOf(
    ref: ImageRef,
    outcome: Extract<Outcome, { kind: 'found' }>,
    cred: Credential | null,
    caller: Caller,
  ): Maybe<PlatformList> {
    const target = { domain: ref.domain, path: ref.path };
    return this.#platformLists.get(
      `body|${this.client.hostFor(ref.domain)}|${outcome.digest ?? ''}`,
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
      (v) => (v.platforms ? this.#config.cache.digestTtl : this.#config.cache.negativeTtl),
      caller,
    );
  }

  /** A repository's tags (capped), asked with the credential whose answer was "not found". */
  tagsOf(ref: ImageRef, cred: Credential | null, caller: Caller): Maybe<Answer & { tags?: string[] }> {
    return this.#tagLists.get(
      `tags|${ref.name}|${credentialId(cred)}`,
      (shared) =>
        this.client.tags(
          { domain: ref.domain, path: ref.path },
          cred,
          this.#config.registry.maxTagsForSuggestions || 1,
          shared,
        ),
      (a) => (a.tags ? this.#config.cache.positiveTtl : this.#config.cache.negativeTtl),
      caller,
    );
  }

  /**
   * Repositories on the same registry near a missing one ("shop/wbe" -> "shop/web"), from the first
   * page of its catalog, asked with the credential whose answer was "not found" (what it may see is
   * what it may be told). None when the registry does not list its catalog to that credential, and
   * none for the watch, which reads no lists (maxTagsForSuggestions 0).
   */
  catalogSuggestions(ref: ImageRef, cred: Credential | null, caller: Caller): Maybe<string[]> {
    const max = this.#config.registry.maxTagsForSuggestions;
    if (!max) return [];
    const host = this.client.hostFor(ref.domain);
    const list = this.#catalogs.get(
      `catalog|${host}|${credentialId(cred)}`,
      (shared) => this.client.catalog(ref.domain, cred, max, shared),
      (a) => (a.repositories ? this.#config.cache.positiveTtl : this.#config.cache.negativeTtl),
      caller,
    );
    return then(list, (l) => nearest(ref.path, l.repositories ?? []).map((path) => `${ref.domain}/${path}`));
  }
}
