// The configuration's layers without its schema (schema.ts): the defaults, durations, PULLGUARD_*
// variables, the merge, apart so that a command can use them without loading zod.

/** 500ms, 8s, 5m, 1h, or bare milliseconds (8000), as the configuration file accepts them. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration (use 500ms, 8s, 5m, 1h or milliseconds such as 8000)`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
  return n * unit;
}

/**
 * PULLGUARD_* variables override the file: PULLGUARD_MODE, PULLGUARD_DEADLINE,
 * PULLGUARD_LOG_LEVEL, PULLGUARD_SERVER_HOST, PULLGUARD_SERVER_PORT, PULLGUARD_SERVER_METRICS_PORT, PULLGUARD_SERVER_TLS_CERT, PULLGUARD_SERVER_TLS_KEY,
 * PULLGUARD_CLUSTER_KUBECONFIG, PULLGUARD_WATCH_ENABLED (true/false), PULLGUARD_CREDENTIALS_SERVICE_ACCOUNT_TOKENS (true/false).
 */
export function environmentOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, Record<string, unknown> | unknown> = {};
  const set = (path: string[], value: unknown) => {
    let node = out as Record<string, unknown>;
    for (const key of path.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
    node[path[path.length - 1]!] = value;
  };
  if (env.PULLGUARD_MODE) set(['mode'], env.PULLGUARD_MODE);
  if (env.PULLGUARD_DEADLINE) set(['deadline'], env.PULLGUARD_DEADLINE);
  if (env.PULLGUARD_LOG_LEVEL) set(['log', 'level'], env.PULLGUARD_LOG_LEVEL);
  if (env.PULLGUARD_SERVER_HOST) set(['server', 'host'], env.PULLGUARD_SERVER_HOST);
  if (env.PULLGUARD_SERVER_PORT) set(['server', 'port'], Number(env.PULLGUARD_SERVER_PORT));
  if (env.PULLGUARD_SERVER_METRICS_PORT) set(['server', 'metricsPort'], Number(env.PULLGUARD_SERVER_METRICS_PORT));
  if (env.PULLGUARD_SERVER_TLS_CERT) set(['server', 'tlsCert'], env.PULLGUARD_SERVER_TLS_CERT);
  if (env.PULLGUARD_SERVER_TLS_KEY) set(['server', 'tlsKey'], env.PULLGUARD_SERVER_TLS_KEY);
  if (env.PULLGUARD_CLUSTER_KUBECONFIG) set(['cluster', 'kubeconfig'], env.PULLGUARD_CLUSTER_KUBECONFIG);
  // the kustomize component node-hosts points at the nodes' hosts directory with this
  if (env.PULLGUARD_REGISTRY_HOSTS_DIR) set(['registry', 'hostsDir'], env.PULLGUARD_REGISTRY_HOSTS_DIR);
  // the kustomize component and the Helm chart switch the watch on with this
  if (env.PULLGUARD_WATCH_ENABLED) set(['watch', 'enabled'], env.PULLGUARD_WATCH_ENABLED === 'true');
  // the kustomize component and the Helm value that grant create on serviceaccounts/token set this
  if (env.PULLGUARD_CREDENTIALS_SERVICE_ACCOUNT_TOKENS)
    set(['credentials', 'serviceAccountTokens'], env.PULLGUARD_CREDENTIALS_SERVICE_ACCOUNT_TOKENS === 'true');
  return out;
}

/** Deep merge of plain objects; arrays and scalars of later layers replace earlier ones. */
export function mergeLayers(...layers: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer || typeof layer !== 'object' || Array.isArray(layer)) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const prev = out[key];
      const isObj = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
      out[key] = isObj(prev) && isObj(value) ? mergeLayers(prev, value) : value;
    }
  }
  return out;
}

/**
 * Images the cloud providers' kubelet credential plugins serve (ECR, Artifact Registry/GCR, ACR):
 * without a plugin configured, one that no pull secret opens is unverifiable, not denied.
 */
export const PROVIDER_IMAGES: readonly string[] = [
  '*.dkr.ecr.*.amazonaws.com',
  '*.dkr.ecr.*.amazonaws.com.cn',
  '*.pkg.dev',
  'gcr.io',
  '*.gcr.io',
  '*.azurecr.io',
];

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const MIB = 1024 * 1024;

/**
 * Every setting's default, the lowest layer: configSchema gives each key its default from here, and
 * quickConfig (quick.ts) starts from them without loading zod. Durations in milliseconds.
 */
export const DEFAULTS = {
  mode: 'enforce' as const,
  actions: {},
  deadline: 8 * SECOND,
  registry: {
    insecure: [] as string[],
    caFiles: [] as string[],
    concurrency: 8,
    rateLimitThreshold: 10,
    maxTagsForSuggestions: 1000,
    verifyLayers: true,
    allowLinkLocal: [] as string[],
    endpoints: {} as Record<string, string>,
  },
  cache: { maxEntries: 10_000, positiveTtl: 5 * MINUTE, digestTtl: 60 * MINUTE, negativeTtl: 10 * SECOND },
  credentials: {
    nodeDockerConfigs: [] as string[],
    providerImages: [...PROVIDER_IMAGES],
    serviceAccountTokens: false,
    // the kubelet's default since KubeletEnsureSecretPulledImages (KEP-2535) is on (1.35)
    imagePullCredentialsVerificationPolicy: 'NeverVerifyPreloadedImages' as const,
    preloadedImagesVerificationAllowlist: [] as string[],
  },
  platforms: [] as string[],
  nodes: { runtime: 'containerd' as 'containerd' | 'cri-o' },
  cluster: { cacheTtl: 30 * SECOND, watchNodes: true },
  server: {
    host: '0.0.0.0',
    port: 8443,
    metricsPort: 9090,
    bodyLimit: 8 * MIB,
    bodyMemory: 48 * MIB,
    reviewsInFlight: 1000,
    maxConnections: 512,
  },
  watch: {
    enabled: false,
    interval: 10 * MINUTE,
    eventInterval: MINUTE,
    registryBudget: 100,
    roundBudget: 1000,
    eventsPerNamespace: 20,
    maxSeries: 5000,
    leaseName: 'pullguard-watch',
    leaseDuration: 15 * SECOND,
  },
  log: { level: 'info' as const },
};

/** A registry host, optionally with :port (registry.insecure, registry.allowLinkLocal). */
export const HOST_PORT = /^[A-Za-z0-9.\-[\]:]+$/;
