// The configuration as `pullguard check` loads it. Loading zod and building configSchema is ~30 ms of
// a one-image check's start, to validate what is nearly always the defaults and a few flags:
// quickConfig answers those inputs itself, exactly as configSchema would (a property test holds the
// two equal), and undefined for anything else — a file, another key, a value it does not check
// itself — which configSchema then validates and words the errors of.

import type { Config } from './schema.ts';
import { DEFAULTS, environmentOverrides, HOST_PORT, mergeLayers, parseDuration } from './layers.ts';

/** configSchema's answer to {}: every default, from the one table configSchema takes them from. */
export function defaultConfig(): Config {
  return structuredClone(DEFAULTS);
}

/** A plain object, as JSON, YAML and the flags make them. */
function isObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
/** An array of strings, holes refused as configSchema refuses them. */
function strings(v: unknown): v is string[] {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
}
/** Only these keys, none of them holding undefined (left to configSchema, as everything unusual). */
const only = (o: Record<string, unknown>, keys: readonly string[]) =>
  Object.entries(o).every(([k, v]) => keys.includes(k) && v !== undefined);

/** The deadline as configSchema reads it: whole milliseconds or a duration text, 100 ms to 5 min. */
function deadlineOf(v: unknown): number | undefined {
  const ms = typeof v === 'number' ? v : typeof v === 'string' && /^\d+(ms|s|m|h)?$/.test(v) ? parseDuration(v) : NaN;
  return Number.isSafeInteger(ms) && ms >= 100 && ms <= 300_000 ? ms : undefined;
}

/**
 * The validated configuration for input made of the defaults plus `deadline`, `platforms`,
 * `registry.insecure`/`caFiles`/`verifyLayers`, `credentials.providerConfig`/`providerBinDir` and
 * `cluster.kubeconfig` — what check's flags and PULLGUARD_DEADLINE/PULLGUARD_CLUSTER_KUBECONFIG set —
 * when every one of them is valid; undefined for any other input.
 */
export function quickConfig(input: unknown): Config | undefined {
  if (!isObject(input) || !only(input, ['deadline', 'platforms', 'registry', 'credentials', 'cluster']))
    return undefined;
  const config = defaultConfig();
  if (Object.hasOwn(input, 'deadline')) {
    const deadline = deadlineOf(input.deadline);
    if (deadline === undefined) return undefined;
    config.deadline = deadline;
  }
  if (Object.hasOwn(input, 'platforms')) {
    if (!strings(input.platforms)) return undefined;
    config.platforms = [...input.platforms];
  }
  const { registry, credentials, cluster } = input;
  if (registry !== undefined) {
    if (!isObject(registry) || !only(registry, ['insecure', 'caFiles', 'verifyLayers'])) return undefined;
    if (Object.hasOwn(registry, 'verifyLayers')) {
      if (typeof registry.verifyLayers !== 'boolean') return undefined;
      config.registry.verifyLayers = registry.verifyLayers;
    }
    if (Object.hasOwn(registry, 'insecure')) {
      if (!strings(registry.insecure) || !registry.insecure.every((h) => HOST_PORT.test(h))) return undefined;
      config.registry.insecure = [...registry.insecure];
    }
    if (Object.hasOwn(registry, 'caFiles')) {
      if (!strings(registry.caFiles)) return undefined;
      config.registry.caFiles = [...registry.caFiles];
    }
  }
  if (credentials !== undefined) {
    if (!isObject(credentials) || !only(credentials, ['providerConfig', 'providerBinDir'])) return undefined;
    const { providerConfig, providerBinDir } = credentials;
    if (providerConfig !== undefined && typeof providerConfig !== 'string') return undefined;
    if (providerBinDir !== undefined && typeof providerBinDir !== 'string') return undefined;
    // configSchema's refinement: the kubelet needs both flags too
    if (providerConfig && !providerBinDir) return undefined;
    if (providerConfig !== undefined) config.credentials.providerConfig = providerConfig;
    if (providerBinDir !== undefined) config.credentials.providerBinDir = providerBinDir;
  }
  if (cluster !== undefined) {
    if (!isObject(cluster) || !only(cluster, ['kubeconfig'])) return undefined;
    if (Object.hasOwn(cluster, 'kubeconfig')) {
      if (typeof cluster.kubeconfig !== 'string') return undefined;
      config.cluster.kubeconfig = cluster.kubeconfig;
    }
  }
  return config;
}

/**
 * loadConfig for a command that starts often: without a file, input quickConfig answers needs no
 * zod; anything else goes through configSchema (schema.ts, loaded then).
 */
export async function loadCheckConfig(opts: {
  file?: string;
  env?: NodeJS.ProcessEnv;
  flags?: unknown;
}): Promise<Config> {
  if (!opts.file) {
    const quick = quickConfig(mergeLayers(environmentOverrides(opts.env ?? {}), opts.flags ?? {}));
    if (quick) return quick;
  }
  const { loadConfig } = await import('./schema.ts');
  return loadConfig(opts);
}
