// Kubelet image credential provider plugins (KEP-2133, credentialprovider.kubelet.k8s.io/v1), run the
// way the kubelet runs them (pkg/credentialprovider/plugin): the same CredentialProviderConfig and bin
// dir the nodes use, `matchImages` with the keyring's glob rules, a CredentialProviderRequest on stdin
// with the provider's args and env, the response's auth map as docker config entries, and its cache
// (cacheKeyType Image, Registry or Global; cacheDuration, else defaultCacheDuration; 0 = none).
// A plugin that is missing, fails, hangs or answers nonsense is reported, never thrown.
// A provider with tokenAttributes (KEP-4412, beta and on in 1.34) is given the pod's ServiceAccount
// token for its audience and the ServiceAccount's annotations it names, as the kubelet does
// (pkg/credentialprovider/plugin/plugin.go pluginProvider.provide): without a ServiceAccount when one
// is required, for a ServiceAccount that does not exist, or one that lacks a required annotation, the
// kubelet does not run it and it gives nothing. pullguard requests the token only when told to
// (credentials.serviceAccountTokens); otherwise such an image stays unverifiable, saying so.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { parse as parseYaml } from 'yaml';
import { cut, oneLine, quote } from '../text.ts';
import type { DockerConfigEntry } from './dockerconfig.ts';
import type { DynamicCredentials, PodIdentity, ServiceAccountData } from './context.ts';
import { runCredentialProgram } from './exec.ts';
import { type Credential, Keyring, normalizeKey, urlsMatchStr } from './keyring.ts';
import { PullguardError } from '../errors.ts';
import { systemErrorText } from '../system-errors.ts';

export class ProviderConfigError extends PullguardError {
  readonly code = 'credential-provider-config';
}

const CONFIG_VERSIONS = ['kubelet.config.k8s.io/v1', 'kubelet.config.k8s.io/v1beta1', 'kubelet.config.k8s.io/v1alpha1'];
const PLUGIN_VERSIONS = [
  'credentialprovider.kubelet.k8s.io/v1',
  'credentialprovider.kubelet.k8s.io/v1beta1',
  'credentialprovider.kubelet.k8s.io/v1alpha1',
];

export interface ProviderEntry {
  name: string;
  matchImages: string[];
  defaultCacheDurationMs: number;
  apiVersion: string;
  args: string[];
  env: { name: string; value: string }[];
  /** KEP-4412: the plugin is given the pod's ServiceAccount token and annotations */
  tokenAttributes?: TokenAttributes;
}

/** CredentialProvider.tokenAttributes (kubelet config v1; validated as config.go does). */
export interface TokenAttributes {
  serviceAccountTokenAudience: string;
  requireServiceAccount: boolean;
  requiredServiceAccountAnnotationKeys: string[];
  optionalServiceAccountAnnotationKeys: string[];
  /** what the plugin's answers are cached under besides the image: the token, or the ServiceAccount */
  cacheType: 'Token' | 'ServiceAccount';
}

/** An annotation key as the API server accepts one (IsQualifiedName on the lower-cased key). */
const QUALIFIED_NAME =
  /^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\/)?[a-z0-9](?:[-a-z0-9_.]*[a-z0-9])?$/;
function isAnnotationKey(k: string): boolean {
  const key = k.toLowerCase();
  const slash = key.indexOf('/');
  const [prefix, name] = slash >= 0 ? [key.slice(0, slash), key.slice(slash + 1)] : ['', key];
  return QUALIFIED_NAME.test(key) && name.length <= 63 && prefix.length <= 253;
}

/** kubelet pkg/credentialprovider/plugin/config.go validateCredentialProviderConfig, tokenAttributes part. */
function parseTokenAttributes(
  t: unknown,
  at: string,
  apiVersion: string,
  problems: string[],
): TokenAttributes | undefined {
  const where = `${at}.tokenAttributes`;
  if (!isObject(t)) {
    problems.push(`${where}: expected an object`);
    return undefined;
  }
  if (apiVersion !== 'credentialprovider.kubelet.k8s.io/v1')
    problems.push(`${where} is only supported for apiVersion credentialprovider.kubelet.k8s.io/v1`);
  const audience = typeof t.serviceAccountTokenAudience === 'string' ? t.serviceAccountTokenAudience : '';
  if (!audience) problems.push(`${where}.serviceAccountTokenAudience is required`);
  if (typeof t.requireServiceAccount !== 'boolean')
    problems.push(`${where}.requireServiceAccount is required (true or false)`);
  const keys = (field: string): string[] => {
    const v = t[field];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((k) => typeof k !== 'string')) {
      problems.push(`${where}.${field} must be a list of annotation keys`);
      return [];
    }
    const seen = new Set<string>();
    for (const k of v as string[]) {
      if (!isAnnotationKey(k)) problems.push(`${where}.${field}: ${quote(k, 60)} is not a valid annotation key`);
      if (seen.has(k)) problems.push(`${where}.${field}: ${quote(k, 60)} is duplicated`);
      seen.add(k);
    }
    return v as string[];
  };
  const required = keys('requiredServiceAccountAnnotationKeys');
  const optional = keys('optionalServiceAccountAnnotationKeys');
  if (t.requireServiceAccount === false && required.length)
    problems.push(
      `${where}.requiredServiceAccountAnnotationKeys: requireServiceAccount cannot be false when it is set`,
    );
  const both = required.filter((k) => optional.includes(k));
  if (both.length) problems.push(`${where}: annotation keys cannot be both required and optional (${both.join(', ')})`);
  const cacheType = t.cacheType;
  if (cacheType !== 'Token' && cacheType !== 'ServiceAccount')
    problems.push(`${where}.cacheType must be Token or ServiceAccount`);
  return {
    serviceAccountTokenAudience: audience,
    requireServiceAccount: t.requireServiceAccount === true,
    requiredServiceAccountAnnotationKeys: required,
    optionalServiceAccountAnnotationKeys: optional,
    cacheType: cacheType === 'Token' ? 'Token' : 'ServiceAccount',
  };
}

/** Reads and validates a CredentialProviderConfig as the kubelet does at start-up. */
export function readProviderConfig(file: string): ProviderEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ProviderConfigError(
      `credential provider config ${file}: cannot read: ${systemErrorText(err, 'read')} (check --image-credential-provider-config or credentials.providerConfig)`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch {
    throw new ProviderConfigError(`credential provider config ${file}: not YAML or JSON`);
  }
  const problems: string[] = [];
  const entries = parseProviderConfig(doc, problems);
  if (problems.length) throw new ProviderConfigError(`credential provider config ${file}: ${problems.join('; ')}`);
  return entries;
}

export function parseProviderConfig(doc: unknown, problems: string[]): ProviderEntry[] {
  if (!isObject(doc)) {
    problems.push('expected a CredentialProviderConfig object');
    return [];
  }
  if (doc.kind !== 'CredentialProviderConfig') problems.push('kind must be CredentialProviderConfig');
  if (typeof doc.apiVersion !== 'string' || !CONFIG_VERSIONS.includes(doc.apiVersion))
    problems.push(`apiVersion must be one of ${CONFIG_VERSIONS.join(', ')}`);
  const providers = Array.isArray(doc.providers) ? doc.providers : [];
  if (!providers.length) problems.push('providers: at least one provider is required');
  const names = new Set<string>();
  const out: ProviderEntry[] = [];
  providers.forEach((p: unknown, i: number) => {
    const at = `providers[${i}]`;
    if (!isObject(p)) {
      problems.push(`${at}: expected an object`);
      return;
    }
    const name = typeof p.name === 'string' ? p.name : '';
    if (!name) problems.push(`${at}.name is required`);
    else if (name.includes('/') || name.includes(' ') || name === '.' || name === '..')
      problems.push(`${at}.name "${cut(oneLine(name), 60)}" must be a file name in the bin dir`);
    else if (names.has(name)) problems.push(`${at}.name ${quote(name, 60)} is duplicated`);
    names.add(name);
    const matchImages = Array.isArray(p.matchImages)
      ? p.matchImages.filter((m): m is string => typeof m === 'string')
      : [];
    if (!matchImages.length) problems.push(`${at}.matchImages: at least one pattern is required`);
    for (const m of matchImages)
      if (normalizeKey(m) === undefined) problems.push(`${at}.matchImages: ${quote(m, 60)} is invalid`);
    let defaultCacheDurationMs = 0;
    if (typeof p.defaultCacheDuration !== 'string') problems.push(`${at}.defaultCacheDuration is required`);
    else {
      const d = parseGoDuration(p.defaultCacheDuration);
      if (d === undefined || d < 0)
        problems.push(`${at}.defaultCacheDuration ${quote(p.defaultCacheDuration, 60)} is not a duration`);
      else defaultCacheDurationMs = d;
    }
    const apiVersion = typeof p.apiVersion === 'string' ? p.apiVersion : '';
    if (!PLUGIN_VERSIONS.includes(apiVersion))
      problems.push(`${at}.apiVersion must be one of ${PLUGIN_VERSIONS.join(', ')}`);
    const args = Array.isArray(p.args) ? p.args.map(String) : [];
    const env = Array.isArray(p.env)
      ? p.env.filter(isObject).map((e) => ({ name: String(e.name ?? ''), value: String(e.value ?? '') }))
      : [];
    const tokenAttributes =
      p.tokenAttributes === undefined || p.tokenAttributes === null
        ? undefined
        : parseTokenAttributes(p.tokenAttributes, at, apiVersion, problems);
    out.push({
      name,
      matchImages,
      defaultCacheDurationMs,
      apiVersion,
      args,
      env,
      ...(tokenAttributes ? { tokenAttributes } : {}),
    });
  });
  return out;
}

/** Go's time.ParseDuration, in milliseconds: "1h30m", "300ms", "1.5s", "0". */
export function parseGoDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0' || s === '+0' || s === '-0') return 0;
  const m = /^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!m) return undefined;
  const unit: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    μs: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  let total = 0;
  for (const part of m[2]!.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g))
    total += Number(part[1]) * unit[part[2]!]!;
  return m[1] === '-' ? -total : total;
}

interface CacheEntry {
  auth: Map<string, DockerConfigEntry>;
}

type CacheKeyType = 'Image' | 'Registry' | 'Global';
/** `skip`: the kubelet would not run the plugin for this pod, so it gives nothing; `note` says why */
type Answer = { auth?: Map<string, DockerConfigEntry>; failure?: string; skip?: boolean; note?: string };

/** A run for a pod's ServiceAccount: what the plugin is given, and what its answer is cached under. */
interface TokenRun {
  token?: string;
  annotations?: Record<string, string>;
  /** appended to the cache key: the token's hash, or the ServiceAccount (namespace, name, uid, annotations) */
  cacheSuffix: string;
  /** the token's expiry (ms since the epoch): nothing made with it is cached past it */
  expiresAt?: number;
}

/**
 * Plugin processes one provider may have running at once. The kubelet runs one per image being
 * pulled, a few at a time; a review of a pod with a hundred containers must not start a hundred.
 */
export const PLUGIN_CONCURRENCY = 2;

/** Below this share of its time left, a queued run gives up rather than start a process it must kill. */
const MIN_SHARE_LEFT = 4;

/** One provider's runs: the cache key type its last answer declared, its processes, its queue. */
interface ProviderState {
  /** unknown until it first answers; until then one process at a time, as its answer may serve all */
  keyType?: CacheKeyType;
  running: number;
  waiting: { deadline: number; start: () => void }[];
}

export interface ProviderLookup {
  credentials: Credential[];
  failures: string[];
  /** a provider's matchImages cover the image: without its credentials the image cannot be judged */
  managed: boolean;
  /** providers the kubelet would not run for this pod, and why */
  notes?: string[];
}

export class CredentialProviders {
  private readonly providers: ProviderEntry[];
  private readonly binDir: string;
  private readonly timeoutMs: number;
  private readonly env: NodeJS.ProcessEnv;
  private readonly caches = new Map<string, LRUCache<string, CacheEntry>>();
  private readonly states = new Map<string, ProviderState>();
  /** runs under way (queued or running), by provider and the cache key their answer will be filed under */
  private readonly inFlight = new Map<string, Promise<Answer>>();
  /** plugin runs per provider, for tests and metrics */
  readonly runs = new Map<string, number>();

  constructor(providers: ProviderEntry[], opts: { binDir: string; timeoutMs: number; env: NodeJS.ProcessEnv }) {
    this.providers = providers;
    this.binDir = opts.binDir;
    this.timeoutMs = opts.timeoutMs;
    this.env = opts.env;
    for (const p of providers) {
      this.caches.set(p.name, new LRUCache({ max: 10_000 }));
      this.states.set(p.name, { running: 0, waiting: [] });
    }
  }

  /** Whether some provider's matchImages cover `image` (the kubelet's repository name). */
  matches(image: string): boolean {
    return this.providers.some((p) => p.matchImages.some((m) => urlsMatchStr(m, image)));
  }

  /** The providers for one pod: those with tokenAttributes are run for its ServiceAccount. */
  forPod(pod: PodIdentity): DynamicCredentials {
    return { lookup: (image, domain) => this.lookup(image, domain, pod) };
  }

  /**
   * Every matching provider's credentials for `image`, merged as the kubelet merges them (an auth
   * key an earlier provider returned wins), then looked up with the keyring's rules. A provider the
   * kubelet would not run for this pod gives nothing and decides nothing (it is not `managed`).
   */
  async lookup(image: string, _domain?: string, pod?: PodIdentity): Promise<ProviderLookup> {
    const matching = this.providers.filter((p) => p.matchImages.some((m) => urlsMatchStr(m, image)));
    if (!matching.length) return { credentials: [], failures: [], managed: false };
    const deadline = Date.now() + this.timeoutMs;
    const answers = await Promise.all(matching.map((p) => this.forServiceAccount(p, image, deadline, pod)));
    const keyring = new Keyring();
    const seen = new Set<string>();
    const failures: string[] = [];
    const notes: string[] = [];
    answers.forEach((a, i) => {
      if (a.failure) failures.push(a.failure);
      if (a.note) notes.push(a.note);
      const fresh = new Map([...(a.auth ?? new Map())].filter(([k]) => !seen.has(k)));
      for (const k of fresh.keys()) seen.add(k);
      keyring.addConfig(fresh, `credential provider ${matching[i]!.name}`);
    });
    return {
      credentials: keyring.lookup(image),
      failures,
      managed: answers.some((a) => !a.skip),
      ...(notes.length ? { notes } : {}),
    };
  }

  /** A provider without tokenAttributes runs as before; one with them, for the pod's ServiceAccount as the kubelet would. */
  private async forServiceAccount(
    p: ProviderEntry,
    image: string,
    deadline: number,
    pod: PodIdentity | undefined,
  ): Promise<Answer> {
    const ta = p.tokenAttributes;
    if (!ta) return this.provide(p, image, deadline);
    const label = `credential provider plugin "${p.name}"`;
    const enable = 'credentials.serviceAccountTokens: true (check --request-service-account-tokens)';
    if (!pod?.serviceAccounts)
      return {
        failure: `${label} is given the pod's ServiceAccount token (tokenAttributes, audience ${quote(ta.serviceAccountTokenAudience, 60)}) by the kubelet; pullguard needs the cluster (--kubeconfig) and ${enable} to run it`,
      };
    const { namespace, serviceAccountName: name } = pod;
    if (!name) {
      if (ta.requireServiceAccount)
        return { skip: true, note: `${label} gives nothing to a pod without a ServiceAccount (requireServiceAccount)` };
      return this.provide(p, image, deadline, { cacheSuffix: 'no-service-account' });
    }
    const sa = `ServiceAccount ${quote(name, 63)} in namespace ${quote(namespace, 63)}`;
    let data: ServiceAccountData;
    try {
      data = await pod.serviceAccounts.read(namespace, name);
    } catch {
      data = { status: 'error', detail: 'internal error' };
    }
    if (data.status === 'missing')
      return { skip: true, note: `${label} gives the kubelet nothing: ${sa} does not exist` };
    if (data.status !== 'ok')
      return { failure: `${label} needs ${sa}, which could not be read (${data.detail ?? data.status})` };
    const annotations: Record<string, string> = {};
    const have = data.annotations ?? {};
    for (const k of ta.requiredServiceAccountAnnotationKeys) {
      if (!Object.hasOwn(have, k))
        return {
          skip: true,
          note: `${label} gives the kubelet nothing: ${sa} lacks the annotation ${quote(k, 100)} its tokenAttributes require (annotate the ServiceAccount, or give the pod an imagePullSecret)`,
        };
      annotations[k] = have[k]!;
    }
    for (const k of ta.optionalServiceAccountAnnotationKeys) if (Object.hasOwn(have, k)) annotations[k] = have[k]!;
    if (!pod.serviceAccounts.token)
      return {
        failure: `${label} is given a token of ${sa} (audience ${quote(ta.serviceAccountTokenAudience, 60)}) by the kubelet, which pullguard does not request; ${enable} would verify it`,
      };
    const minted = await pod.serviceAccounts.token(namespace, name, ta.serviceAccountTokenAudience);
    if ('error' in minted) return { failure: `${label}: no token of ${sa}: ${minted.error}` };
    // What the answer is cached under: the token itself (hashed), or the ServiceAccount as the kubelet
    // keys it (namespace, name, uid, the annotations given); never past the token's expiry either way.
    const cacheSuffix =
      ta.cacheType === 'Token'
        ? `token:${createHash('sha256').update(minted.token).digest('hex')}`
        : `sa:${createHash('sha256')
            .update(JSON.stringify([namespace, name, data.uid ?? '', Object.entries(annotations).sort()]))
            .digest('hex')}`;
    return this.provide(p, image, deadline, {
      token: minted.token,
      annotations,
      cacheSuffix,
      expiresAt: minted.expiresAt,
    });
  }

  private cached(p: ProviderEntry, image: string, run?: TokenRun): CacheEntry | undefined {
    const cache = this.caches.get(p.name)!;
    for (const type of ['Image', 'Registry', 'Global'] as const) {
      const hit = cache.get(cacheKey(type, image, run));
      if (hit) return hit;
    }
    return undefined;
  }

  private provide(p: ProviderEntry, image: string, deadline: number, run?: TokenRun): Promise<Answer> {
    const hit = this.cached(p, image, run);
    if (hit) return Promise.resolve({ auth: hit.auth });
    // Lookups share a run when its answer would be filed under their cache key, by the type the
    // plugin's last answer declared: with Registry, every image of the registry waits for one run.
    // (The kubelet shares a run per image only, and says so; before the first answer, that is the key.)
    const state = this.states.get(p.name)!;
    const flight = `${p.name}\u0000${cacheKey(state.keyType ?? 'Image', image, run)}`;
    let pending = this.inFlight.get(flight);
    if (!pending) {
      pending = this.queued(p, state, image, deadline, run).finally(() => this.inFlight.delete(flight));
      this.inFlight.set(flight, pending);
    }
    return pending;
  }

  /** Waits for a turn (at most PLUGIN_CONCURRENCY processes), then runs the plugin unless the answer came meanwhile. */
  private async queued(
    p: ProviderEntry,
    state: ProviderState,
    image: string,
    deadline: number,
    run?: TokenRun,
  ): Promise<Answer> {
    const label = `credential provider plugin "${p.name}"`;
    const turn = await this.turn(state, deadline);
    if (!turn)
      return {
        failure: `${label} was not run within ${this.timeoutMs} ms: its earlier runs took the time (at most ${PLUGIN_CONCURRENCY} run at once)`,
      };
    try {
      // An earlier run's answer, filed while this one waited, serves it as it would have at the start.
      const hit = this.cached(p, image, run);
      if (hit) return { auth: hit.auth };
      return await this.exec(p, state, image, Math.max(1, deadline - Date.now()), run);
    } finally {
      this.release(state);
    }
  }

  /** true once a process may start; false when the deadline comes (or too little is left) first. */
  private turn(state: ProviderState, deadline: number): Promise<boolean> {
    const limit = state.keyType ? PLUGIN_CONCURRENCY : 1;
    if (state.running < limit && !state.waiting.length) {
      state.running++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const waiter = {
        deadline,
        start: () => {
          clearTimeout(timer);
          state.running++;
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        const i = state.waiting.indexOf(waiter);
        if (i >= 0) state.waiting.splice(i, 1);
        resolve(false);
      }, deadline - Date.now());
      state.waiting.push(waiter);
    });
  }

  /** A process ended: start the next waiters that still have the time to use their turn. */
  private release(state: ProviderState): void {
    state.running--;
    const limit = state.keyType ? PLUGIN_CONCURRENCY : 1;
    while (state.running < limit && state.waiting.length) {
      const next = state.waiting.shift()!;
      // Not worth a process: its timer gives up for it (and removes nothing, it is gone already).
      if (next.deadline - Date.now() < this.timeoutMs / MIN_SHARE_LEFT) continue;
      next.start();
    }
  }

  private async exec(
    p: ProviderEntry,
    state: ProviderState,
    image: string,
    timeoutMs: number,
    run?: TokenRun,
  ): Promise<Answer> {
    const label = `credential provider plugin "${p.name}"`;
    this.runs.set(p.name, (this.runs.get(p.name) ?? 0) + 1);
    const env = { ...this.env };
    for (const e of p.env) env[e.name] = e.value;
    // The kubelet's CredentialProviderRequest: the token and annotations only in service account mode.
    const request = `${JSON.stringify({
      kind: 'CredentialProviderRequest',
      apiVersion: p.apiVersion,
      image,
      ...(run?.token ? { serviceAccountToken: run.token } : {}),
      ...(run?.annotations && Object.keys(run.annotations).length
        ? { serviceAccountAnnotations: run.annotations }
        : {}),
    })}\n`;
    const r = await runCredentialProgram(join(this.binDir, p.name), p.args, request, {
      timeoutMs,
      env,
      name: label,
    });
    // Its stdout may hold credentials: never part of a message (runCredentialProgram shows stderr only).
    if (r.timedOut) return { failure: `${label} did not answer within ${this.timeoutMs} ms` };
    if (!r.ok) return { failure: r.error! };
    const parsed = parseResponse(r.stdout, p.apiVersion);
    if ('error' in parsed) return { failure: `${label} ${parsed.error}` };
    const { auth, cacheKeyType, cacheDurationMs } = parsed;
    state.keyType = cacheKeyType;
    let ttl = cacheDurationMs ?? p.defaultCacheDurationMs;
    // Credentials made with a token are not kept past the token's expiry.
    if (run?.expiresAt !== undefined) ttl = Math.min(ttl, run.expiresAt - Date.now());
    if (ttl > 0)
      this.caches.get(p.name)!.set(cacheKey(cacheKeyType, image, run), { auth }, { ttl: Math.max(1, Math.round(ttl)) });
    return { auth };
  }
}

/** The kubelet's cache key for an answer of this type: the image, its registry, or one for all (per ServiceAccount or token). */
function cacheKey(type: CacheKeyType, image: string, run?: TokenRun): string {
  const key = type === 'Image' ? `image:${image}` : type === 'Registry' ? `registry:${image.split('/')[0]}` : 'global:';
  return run ? `${key}\u0000${run.cacheSuffix}` : key;
}

/** The configured plugins (credentials.providerConfig and providerBinDir), or none. */
export function loadCredentialProviders(
  credentials: { providerConfig?: string | undefined; providerBinDir?: string | undefined },
  opts: { timeoutMs: number; env: NodeJS.ProcessEnv },
): CredentialProviders | undefined {
  if (!credentials.providerConfig) return undefined;
  if (!credentials.providerBinDir)
    throw new ProviderConfigError('--image-credential-provider-config needs --image-credential-provider-bin-dir');
  return new CredentialProviders(readProviderConfig(credentials.providerConfig), {
    binDir: credentials.providerBinDir,
    ...opts,
  });
}

/** A CredentialProviderResponse, checked as the kubelet checks it; errors never quote the output. */
function parseResponse(
  stdout: string,
  apiVersion: string,
):
  | { auth: Map<string, DockerConfigEntry>; cacheKeyType: 'Image' | 'Registry' | 'Global'; cacheDurationMs?: number }
  | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    return { error: 'answered something that is not JSON' };
  }
  if (!isObject(json)) return { error: 'answered something that is not a CredentialProviderResponse' };
  if (json.apiVersion !== apiVersion)
    return { error: `answered apiVersion "${cut(oneLine(String(json.apiVersion)), 60)}", not ${apiVersion}` };
  if (json.kind !== 'CredentialProviderResponse')
    return { error: `answered kind "${cut(oneLine(String(json.kind)), 60)}", not CredentialProviderResponse` };
  const cacheKeyType = json.cacheKeyType;
  if (cacheKeyType !== 'Image' && cacheKeyType !== 'Registry' && cacheKeyType !== 'Global')
    return { error: `answered an invalid cacheKeyType "${cut(oneLine(String(cacheKeyType ?? '')), 30)}"` };
  let cacheDurationMs: number | undefined;
  if (json.cacheDuration !== undefined && json.cacheDuration !== null) {
    cacheDurationMs = typeof json.cacheDuration === 'string' ? parseGoDuration(json.cacheDuration) : undefined;
    if (cacheDurationMs === undefined) return { error: 'answered an invalid cacheDuration' };
  }
  const auth = new Map<string, DockerConfigEntry>();
  if (json.auth !== undefined && json.auth !== null) {
    if (!isObject(json.auth)) return { error: 'answered an auth that is not a map' };
    for (const [key, v] of Object.entries(json.auth)) {
      if (!isObject(v)) return { error: 'answered an auth entry that is not an object' };
      auth.set(key, {
        username: typeof v.username === 'string' ? v.username : '',
        password: typeof v.password === 'string' ? v.password : '',
        email: '',
      });
    }
  }
  return { auth, cacheKeyType, ...(cacheDurationMs !== undefined ? { cacheDurationMs } : {}) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
