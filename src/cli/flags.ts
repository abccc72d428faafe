// Flags that `pullguard check` and `pullguard serve` share: registry access, platforms, the
// deadline and the configuration file. They override the configuration file's values.

import { parseDuration } from '../config/layers.ts';
import { UsageError } from '../errors.ts';

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  stdin: () => string;
  env: NodeJS.ProcessEnv;
  /** stdout is a terminal: colour */
  isTTY: boolean;
  /** stderr is a terminal: progress */
  stderrIsTTY?: boolean;
  /** the terminal's width when stdout is one (COLUMNS overrides it) */
  columns?: number | undefined;
}

export const REGISTRY_FLAGS = {
  'insecure-registry': { type: 'string', multiple: true },
  'registry-ca': { type: 'string', multiple: true },
  'hosts-dir': { type: 'string' },
  'registries-conf': { type: 'string' },
  'registries-conf-dir': { type: 'string' },
  platform: { type: 'string', multiple: true },
  'docker-config': { type: 'string', multiple: true },
  timeout: { type: 'string' },
  config: { type: 'string' },
  'image-credential-provider-config': { type: 'string' },
  'image-credential-provider-bin-dir': { type: 'string' },
  'request-service-account-tokens': { type: 'boolean' },
} as const;

/** The cluster connection, as kubectl's flags: `check`, `diagnose` and `serve` take both. */
export const CLUSTER_FLAGS = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
} as const;

export function registryOverrides(values: {
  'insecure-registry'?: string[];
  'registry-ca'?: string[];
  'hosts-dir'?: string;
  'registries-conf'?: string;
  'registries-conf-dir'?: string;
  timeout?: string;
  platform?: string[];
  'image-credential-provider-config'?: string;
  'image-credential-provider-bin-dir'?: string;
  'request-service-account-tokens'?: boolean;
}): Record<string, unknown> {
  const registry: Record<string, unknown> = {};
  if (values['insecure-registry']?.length) registry.insecure = values['insecure-registry'];
  if (values['registry-ca']?.length) registry.caFiles = values['registry-ca'];
  // The nodes' own files, as they have them: containerd's config_path, CRI-O's registries.conf.
  if (values['hosts-dir']) registry.hostsDir = values['hosts-dir'];
  if (values['registries-conf']) registry.registriesConf = values['registries-conf'];
  if (values['registries-conf-dir']) registry.registriesConfDir = values['registries-conf-dir'];
  const out: Record<string, unknown> = { registry };
  // The kubelet's own flag names, so the nodes' values can be copied as they are.
  const credentials: Record<string, unknown> = {};
  if (values['image-credential-provider-config'])
    credentials.providerConfig = values['image-credential-provider-config'];
  if (values['image-credential-provider-bin-dir'])
    credentials.providerBinDir = values['image-credential-provider-bin-dir'];
  if (values['request-service-account-tokens']) credentials.serviceAccountTokens = true;
  if (Object.keys(credentials).length) out.credentials = credentials;
  if (values.timeout !== undefined) {
    try {
      out.deadline = parseDuration(values.timeout);
    } catch (err) {
      throw new UsageError(`--timeout: ${(err as Error).message}`);
    }
  }
  if (values.platform?.length)
    out.platforms = values.platform
      .flatMap((p) => p.split(','))
      .map((p) => p.trim())
      .filter(Boolean);
  return out;
}
