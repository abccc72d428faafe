// What the engine asks registries, each answer cached, shared between the checks that wait for it,
// and capped: a reference's answer per credential, the platforms a digest offers, a repository's
// tags and a registry's catalog (both for "did you mean"). A cached answer comes back at once.

import { all, type Caller, type Maybe, SharedCache, then } from '../cache.ts';
import type { Config } from '../config/schema.ts';
import type { Credential } from '../credentials/keyring.ts';
import { format as formatPlatform, fromOCI, only, type Platform } from '../platform/index.ts';
import type { ImageRef } from '../reference/index.ts';
import { credentialId } from '../registry/auth.ts';
import type { Answer, Outcome, RegistryClient } from '../registry/client.ts';
import { nearest } from './suggest.ts';
import {
  type FetchedBlob,
  type FetchProblem,
  type FetchReport,
  type IndexEntry,
  type PlatformList,
  TRANSIENT_REASON,
  type TransientKind,
  type UnverifiedCause,
} from './verdicts.ts';

/** layers checked at most per manifest (containerd has no limit; a check has a deadline) */
export const MAX_LAYERS = 128;
/** blob requests in flight at most for one image (the transport caps each host too) */
const BLOB_PARALLEL = 4;

export class RegistryLookups {
  readonly client: RegistryClient;
  readonly #config: Config;
  readonly #answers: SharedCache<Answer>;
  /** per index or manifest digest: only the platforms it offers (bodies can be megabytes) */
  readonly #platformLists: SharedCache<PlatformList>;
  /** per repository and digest: a platform's own manifest from an index, as fetched */
  readonly #manifests: SharedCache<{ fetched: FetchedBlob; config?: string; layers?: string[] }>;
  /** per repository and digest: whether a blob is served */
  readonly #blobs: SharedCache<FetchedBlob>;
  readonly #tagLists: SharedCache<Answer & { tags?: string[] }>;
  /** per registry host and credential: the first page of its repository list, for "did you mean" */
  readonly #catalogs: SharedCache<Answer & { repositories?: string[] }>;

  constructor(config: Config, client: RegistryClient) {
    this.#config = config;
    this.client = client;
    this.#answers = new SharedCache(config.cache.maxEntries);
    this.#platformLists = new SharedCache(Math.max(100, Math.floor(config.cache.maxEntries / 10)));
    this.#manifests = new SharedCache(Math.max(100, Math.floor(config.cache.maxEntries / 10)));
    this.#blobs = new SharedCache(config.cache.maxEntries);
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

  /**
   * The manifest or index the answer names, by its digest, as the runtime GETs it next: the platforms
   * it offers (the index's entries, or a single manifest's config, which is the config fetch too),
   * and what comes after it. A 404 here is `missing`: the tag points to a digest the registry no
   * longer serves. `headOnly` (nothing in the body is wanted: no platform, and an index or no layer
   * check): only that it is served.
   * Cached by repository and digest.
   */
  platformsOf(
    ref: ImageRef,
    outcome: Extract<Outcome, { kind: 'found' }>,
    cred: Credential | null,
    caller: Caller,
    headOnly = false,
  ): Maybe<PlatformList> {
    const target = { domain: ref.domain, path: ref.path };
    const key = `${this.client.hostFor(ref.domain)}|${ref.path}|${outcome.digest ?? ''}`;
    const ttl = (v: PlatformList) =>
      v.missing || v.failure || (v.config && v.config.state !== 'present')
        ? this.#config.cache.negativeTtl
        : this.#config.cache.digestTtl;
    if (headOnly)
      return this.#platformLists.get(
        `head|${key}`,
        async (shared) => {
          const res = await this.client.resolve(target, outcome.digest, cred, shared);
          if (res.outcome.kind === 'not-found') return { missing: res };
          return TRANSIENT_REASON[res.outcome.kind as TransientKind] ? { failure: res } : {};
        },
        ttl,
        caller,
      );
    return this.#platformLists.get(
      `body|${key}`,
      async (shared) => {
        const res = await this.client.manifest(target, outcome.digest, cred, shared);
        if (res.outcome.kind === 'not-found') return { missing: res };
        if (!res.body) return TRANSIENT_REASON[res.outcome.kind as TransientKind] ? { failure: res } : {};
        const json = res.body.json;
        if (Array.isArray(json.manifests)) {
          const entries = (json.manifests as { platform?: Record<string, unknown>; digest?: unknown }[]).map((m) => ({
            digest: typeof m.digest === 'string' ? m.digest : '',
            platform: m.platform ? fromOCI(m.platform) : undefined,
          }));
          return { platforms: entries.map((e) => e.platform), entries: entries.filter((e) => e.digest) };
        }
        // A single manifest: its config says what it was built for.
        const config = json.config as { digest?: unknown } | undefined;
        const layers = layerDigests(json);
        // The first layers' HEADs go out beside the config's GET; fetchesOf joins them.
        if (this.#config.registry.verifyLayers)
          for (const d of layers.slice(0, BLOB_PARALLEL - 1)) void this.#blobState(target, d, cred, shared, false);
        if (typeof config?.digest !== 'string') return { layers };
        const blob = await this.#fetchBlob(target, config.digest, 'GET', cred, shared);
        const list: PlatformList = { config: blob.fetched, layers };
        const c = blob.json;
        if (c && typeof c.architecture === 'string' && typeof c.os === 'string') list.platforms = [fromOCI(c)];
        return list;
      },
      ttl,
      caller,
    );
  }

  /**
   * What the runtime fetches after the manifest the tag names: for an index, each wanted platform's
   * own manifest (the entry containerd would pick), and with verifyLayers its config and layers; for
   * a single manifest, its layers (its config came with its platforms). Blobs are HEADed at most
   * MAX_LAYERS a manifest, BLOB_PARALLEL at a time, each cached by repository and digest; a blob not
   * answered by `blobs` (a share of the deadline) is a note, not a verdict. Undefined: nothing to check.
   */
  fetchesOf(
    ref: ImageRef,
    list: PlatformList,
    cred: Credential | null,
    wanted: readonly Platform[],
    caller: Caller,
    blobs: Caller,
  ): Maybe<FetchReport> | undefined {
    const target = { domain: ref.domain, path: ref.path };
    const verify = this.#config.registry.verifyLayers;
    // only HEADed by digest: nothing more to fetch
    if (!list.entries && !list.config && !list.layers) return undefined;
    if (!list.entries) {
      // A single manifest: the config is known; the layers when asked for.
      const layers = verify ? (list.layers ?? []) : [];
      const checks = this.#blobChecks(target, layers, cred, blobs, []);
      return then(checks, (problems) => {
        if (list.config && list.config.state !== 'present')
          problems.unshift({ platforms: [], what: 'config', fetched: list.config });
        return report(
          1,
          problems,
          `fetched: config${verify ? ` and ${Math.min(layers.length, MAX_LAYERS)} layer(s)` : ''}`,
          layers.length,
        );
      });
    }
    if (!wanted.length) return undefined;
    // The entry each wanted platform pulls; platforms that pick the same entry share its checks.
    const picked = new Map<string, string[]>();
    for (const w of wanted) {
      const entry = pickEntry(list.entries, w);
      if (!entry) continue;
      const names = picked.get(entry.digest) ?? [];
      names.push(formatPlatform(w));
      picked.set(entry.digest, names);
    }
    if (!picked.size) return undefined;
    const builds = [...picked].map(([digest, platforms]) =>
      then(this.#platformManifest(target, digest, cred, caller), (m): Maybe<FetchProblem[]> => {
        if (m.fetched.state !== 'present') return [{ platforms, what: 'manifest', fetched: m.fetched }];
        const digests = [...(m.config ? [m.config] : []), ...(m.layers ?? [])];
        return this.#blobChecks(target, digests, cred, blobs, platforms, m.config);
      }),
    );
    return then(all(builds), (perBuild) => {
      const problems = perBuild.flat();
      const broken = perBuild.filter((b) => b.some((p) => p.fetched.state === 'missing')).length;
      const what = verify ? 'manifest, config and layers' : 'manifest';
      return {
        builds: perBuild.length,
        brokenBuilds: broken,
        problems,
        summary: `fetched for ${[...picked.values()].flat().join(', ')}: the platform ${what}`,
      };
    });
  }

  /** Counts of fetch checks that could not say present or missing, by cause (metrics). */
  get fetchStats(): { unverified: Record<UnverifiedCause, number> } {
    return { unverified: this.#unverified };
  }

  readonly #unverified: Record<UnverifiedCause, number> = {
    error: 0,
    unreachable: 0,
    timeout: 0,
    'signed-url': 0,
    denied: 0,
    'rate-limited': 0,
  };

  /**
   * A platform's own manifest from an index: GET (its config and layers follow) with verifyLayers,
   * else HEAD. Cached by repository and digest.
   */
  #platformManifest(
    target: { domain: string; path: string },
    digest: string,
    cred: Credential | null,
    caller: Caller,
  ): Maybe<{ fetched: FetchedBlob; config?: string; layers?: string[] }> {
    const verify = this.#config.registry.verifyLayers;
    return this.#manifests.get(
      `${verify ? 'body' : 'head'}|${this.client.hostFor(target.domain)}|${target.path}|${digest}`,
      async (shared) => {
        const res = verify
          ? await this.client.manifest(target, digest, cred, shared)
          : await this.client.resolve(target, digest, cred, shared);
        if (res.outcome.kind === 'found') {
          const json = (res as { body?: { json: Record<string, unknown> } }).body?.json;
          const config = (json?.config as { digest?: unknown } | undefined)?.digest;
          return {
            fetched: { state: 'present' as const, digest },
            ...(typeof config === 'string' ? { config } : {}),
            ...(json ? { layers: layerDigests(json) } : {}),
          };
        }
        if (res.outcome.kind === 'not-found')
          return { fetched: { state: 'missing' as const, digest, evidence: res.evidence } };
        return { fetched: { state: 'transient' as const, digest, answer: res } };
      },
      (v) => (v.fetched.state === 'present' ? this.#config.cache.digestTtl : this.#config.cache.negativeTtl),
      caller,
    );
  }

  /** HEAD each blob (at most MAX_LAYERS, BLOB_PARALLEL at a time): the ones not present. */
  #blobChecks(
    target: { domain: string; path: string },
    digests: readonly string[],
    cred: Credential | null,
    caller: Caller,
    platforms: string[],
    config?: string,
  ): Maybe<FetchProblem[]> {
    const checked = digests.slice(0, MAX_LAYERS + (config ? 1 : 0));
    const states = mapCapped(checked, BLOB_PARALLEL, (digest) => this.#blobState(target, digest, cred, caller));
    return then(states, (fetched) => {
      const problems: FetchProblem[] = [];
      fetched.forEach((f, i) => {
        if (f.state !== 'present')
          problems.push({ platforms, what: checked[i] === config && i === 0 ? 'config' : 'layer', fetched: f });
      });
      return problems;
    });
  }

  /**
   * One blob, HEADed, cached; a check the blob share of the deadline cut short is unverified, not
   * cached (`counted`: in the metric; a prefetch that was dropped is not).
   */
  #blobState(
    target: { domain: string; path: string },
    digest: string,
    cred: Credential | null,
    caller: Caller,
    counted = true,
  ): Maybe<FetchedBlob> {
    const got = this.#blobs.get(
      `${this.client.hostFor(target.domain)}|${target.path}|${digest}`,
      async (shared) => (await this.#fetchBlob(target, digest, 'HEAD', cred, shared)).fetched,
      (v) => (v.state === 'present' ? this.#config.cache.digestTtl : this.#config.cache.negativeTtl),
      caller,
    );
    if (!(got instanceof Promise)) return got;
    return got.catch((): FetchedBlob => {
      if (counted) this.#unverified.timeout++;
      return { state: 'unverified', digest, cause: 'timeout', evidence: ['no answer within the time left for blobs'] };
    });
  }

  /** A blob request and what it means: 200/206 present, 404 missing, anything else unverified. */
  async #fetchBlob(
    target: { domain: string; path: string },
    digest: string,
    method: 'HEAD' | 'GET',
    cred: Credential | null,
    signal: AbortSignal,
  ): Promise<{ fetched: FetchedBlob; json?: Record<string, unknown> }> {
    const res = await this.client.blob(target, digest, method, cred, signal);
    const kind = res.outcome.kind;
    if (kind === 'found') return { fetched: { state: 'present', digest }, ...(res.json ? { json: res.json } : {}) };
    if (kind === 'not-found') return { fetched: { state: 'missing', digest, evidence: res.evidence } };
    const cause: UnverifiedCause =
      kind === 'denied' || kind === 'unauthorized'
        ? res.redirectedTo
          ? 'signed-url'
          : 'denied'
        : kind === 'rate-limited' || kind === 'unreachable' || kind === 'timeout'
          ? kind
          : 'error';
    this.#unverified[cause]++;
    return { fetched: { state: 'unverified', digest, cause, evidence: res.evidence } };
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

/** The layers' digests of a manifest body. */
function layerDigests(json: Record<string, unknown>): string[] {
  const layers = Array.isArray(json.layers) ? (json.layers as { digest?: unknown }[]) : [];
  return layers.map((l) => l.digest).filter((d): d is string => typeof d === 'string');
}

/** The entry containerd pulls for a node of platform `want`: the best match by its ordering, else none. */
function pickEntry(entries: readonly IndexEntry[], want: Platform): IndexEntry | undefined {
  const m = only(want);
  let best: IndexEntry | undefined;
  for (const e of entries) {
    if (e.platform && !m.match(e.platform)) continue;
    if (!best || (e.platform && best.platform && m.less(e.platform, best.platform))) best = e;
  }
  return best;
}

function report(builds: number, problems: FetchProblem[], summary: string, layers: number): FetchReport {
  const more = layers > MAX_LAYERS ? `; ${layers - MAX_LAYERS} layers past the first ${MAX_LAYERS} not checked` : '';
  return {
    builds,
    brokenBuilds: problems.some((p) => p.fetched.state === 'missing') ? 1 : 0,
    problems,
    summary: summary + more,
  };
}

/** `f` of each item, at most `cap` waited for at once; at once when every value is there. */
function mapCapped<X, T>(items: readonly X[], cap: number, f: (x: X) => Maybe<T>): Maybe<T[]> {
  const out: T[] = new Array(items.length);
  let i = 0;
  let first: Promise<T> | undefined;
  for (; i < items.length; i++) {
    const v = f(items[i]!);
    if (v instanceof Promise) {
      first = v;
      break;
    }
    out[i] = v;
  }
  if (!first) return out;
  let next = i + 1;
  const worker = async (idx: number, p: Maybe<T>) => {
    out[idx] = await p;
    while (next < items.length) {
      const k = next++;
      out[k] = await f(items[k]!);
    }
  };
  const workers = [worker(i, first)];
  while (workers.length < cap && next < items.length) {
    const k = next++;
    workers.push(worker(k, f(items[k]!)));
  }
  return Promise.all(workers).then(() => out);
}
