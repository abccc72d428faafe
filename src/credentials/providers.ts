// Kubelet image credential provider plugins (KEP-2133, credentialprovider.kubelet.k8s.io/v1), run the
// way the kubelet runs them (pkg/credentialprovider/plugin): the same CredentialProviderConfig and bin
// dir the nodes use, `matchImages` with the keyring's glob rules, a CredentialProviderRequest on stdin
// with the provider's args and env, the response's auth map as docker config entries, and its cache
// (cacheKeyType Image, Registry or Global; cacheDuration, else defaultCacheDuration; 0 = none).
// A plugin that is missing, fails, hangs or answers nonsense is reported, never thrown.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { parse as parseYaml } from 'yaml';
import { cut, oneLine, quote } from '../text.ts';
import type { DockerConfigEntry } from './dockerconfig.ts';
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
  /** set when the plugin wants the pod's service account token, which pullguard cannot mint */
  needsServiceAccountToken: boolean;
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
    out.push({
      name,
      matchImages,
      defaultCacheDurationMs,
      apiVersion,
      args,
      env,
      needsServiceAccountToken: isObject(p.tokenAttributes),
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
type Answer = { auth?: Map<string, DockerConfigEntry>; failure?: string };

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

  /**
   * Every matching provider's credentials for `image`, merged as the kubelet merges them (an auth
   * key an earlier provider returned wins), then looked up with the keyring's rules.
   */
  async lookup(image: string, _domain?: string): Promise<ProviderLookup> {
    const matching = this.providers.filter((p) => p.matchImages.some((m) => urlsMatchStr(m, image)));
    if (!matching.length) return { credentials: [], failures: [], managed: false };
    const deadline = Date.now() + this.timeoutMs;
    const answers = await Promise.all(matching.map((p) => this.provide(p, image, deadline)));
    const keyring = new Keyring();
    const seen = new Set<string>();
    const failures: string[] = [];
    answers.forEach((a, i) => {
      if (a.failure) failures.push(a.failure);
      const fresh = new Map([...(a.auth ?? new Map())].filter(([k]) => !seen.has(k)));
      for (const k of fresh.keys()) seen.add(k);
      keyring.addConfig(fresh, `credential provider ${matching[i]!.name}`);
    });
    return { credentials: keyring.lookup(image), failures, managed: true };
  }

  private cached(p: ProviderEntry, image: string): CacheEntry | undefined {
    const cache = this.caches.get(p.name)!;
    for (const type of ['Image', 'Registry', 'Global'] as const) {
      const hit = cache.get(cacheKey(type, image));
      if (hit) return hit;
    }
    return undefined;
  }

  private provide(p: ProviderEntry, image: string, deadline: number): Promise<Answer> {
    const hit = this.cached(p, image);
    if (hit) return Promise.resolve({ auth: hit.auth });
    // Lookups share a run when its answer would be filed under their cache key, by the type the
    // plugin's last answer declared: with Registry, every image of the registry waits for one run.
    // (The kubelet shares a run per image only, and says so; before the first answer, that is the key.)
    const state = this.states.get(p.name)!;
    const flight = `${p.name}\u0000${cacheKey(state.keyType ?? 'Image', image)}`;
    let pending = this.inFlight.get(flight);
    if (!pending) {
      pending = this.queued(p, state, image, deadline).finally(() => this.inFlight.delete(flight));
      this.inFlight.set(flight, pending);
    }
    return pending;
  }

  /** Waits for a turn (at most PLUGIN_CONCURRENCY processes), then runs the plugin unless the answer came meanwhile. */
  private async queued(p: ProviderEntry, state: ProviderState, image: string, deadline: number): Promise<Answer> {
    const label = `credential provider plugin "${p.name}"`;
    if (p.needsServiceAccountToken)
      return {
        failure: `${label} needs the pod's service account token (tokenAttributes), which pullguard cannot request`,
      };
    const turn = await this.turn(state, deadline);
    if (!turn)
      return {
        failure: `${label} was not run within ${this.timeoutMs} ms: its earlier runs took the time (at most ${PLUGIN_CONCURRENCY} run at once)`,
      };
    try {
      // An earlier run's answer, filed while this one waited, serves it as it would have at the start.
      const hit = this.cached(p, image);
      if (hit) return { auth: hit.auth };
      return await this.exec(p, state, image, Math.max(1, deadline - Date.now()));
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

  private async exec(p: ProviderEntry, state: ProviderState, image: string, timeoutMs: number): Promise<Answer> {
    const label = `credential provider plugin "${p.name}"`;
    this.runs.set(p.name, (this.runs.get(p.name) ?? 0) + 1);
    const env = { ...this.env };
    for (const e of p.env) env[e.name] = e.value;
    const request = `${JSON.stringify({ kind: 'CredentialProviderRequest', apiVersion: p.apiVersion, image })}\n`;
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
    const ttl = cacheDurationMs ?? p.defaultCacheDurationMs;
    if (ttl > 0)
      this.caches.get(p.name)!.set(cacheKey(cacheKeyType, image), { auth }, { ttl: Math.max(1, Math.round(ttl)) });
    return { auth };
  }
}

/** The kubelet's cache key for an answer of this type: the image, its registry, or one for all. */
function cacheKey(type: CacheKeyType, image: string): string {
  return type === 'Image' ? `image:${image}` : type === 'Registry' ? `registry:${image.split('/')[0]}` : 'global:';
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
