// One zod schema for the whole configuration, shared by `pullguard check` and `pullguard serve`.
// Sources, lowest first: defaults, the file (YAML or JSON), PULLGUARD_* environment, command flags.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { FAIL_REASONS, REASONS } from './findings.ts';
import { PullguardError } from './errors.ts';
import { systemErrorText } from './system-errors.ts';
import { environmentOverrides, HOST_PORT, mergeLayers, PROVIDER_IMAGES, parseDuration } from './config-layers.ts';

export { environmentOverrides, mergeLayers, parseDuration };

const duration = z
  .union([
    z.number().int().nonnegative(),
    z.string().regex(/^\d+(ms|s|m|h)?$/, 'a duration such as 500ms, 8s, 5m, 1h or 8000 (milliseconds)'),
  ])
  .transform((v) => (typeof v === 'number' ? v : parseDuration(v)));

export const MODES = ['enforce', 'warn', 'audit'] as const;
export type Mode = (typeof MODES)[number];
export const ACTIONS = ['deny', 'warn', 'ignore'] as const;
export type Action = (typeof ACTIONS)[number];

const hostPort = z.string().regex(HOST_PORT, 'a registry host, optionally with :port');

export const configSchema = z.strictObject({
  /** enforce: deny fail, warn risk; warn: warn everything; audit: allow everything, record only */
  mode: z.enum(MODES).default('enforce'),
  /**
   * per-reason action overrides in enforce mode, e.g. { "platform-not-found": "warn" }. Only a
   * reason that is a certain failure may deny: a risk is pullguard's own uncertainty.
   */
  actions: z
    .partialRecord(z.enum(REASONS), z.enum(ACTIONS))
    .default({})
    .check((ctx) => {
      for (const [reason, action] of Object.entries(ctx.value)) {
        if (action === 'deny' && !(FAIL_REASONS as readonly string[]).includes(reason)) {
          ctx.issues.push({
            code: 'custom',
            input: action,
            path: [reason],
            message: `"${reason}" is a risk, not a certain failure: it can warn or be ignored, never deny`,
          });
        }
      }
    }),
  /** a check's overall deadline; unfinished images become `timeout` risks (the webhook's timeoutSeconds is at most 30 s) */
  deadline: duration.pipe(z.number().min(100, 'at least 100ms').max(300_000, 'at most 5m')).default(8000),

  registry: z
    .strictObject({
      /** hosts reached over plain HTTP or with TLS verification off, as containerd's insecure registries */
      insecure: z.array(hostPort).default([]),
      /** extra CA certificate files (PEM) trusted for every registry */
      caFiles: z.array(z.string()).default([]),
      /** at most this many requests in flight to one registry host */
      concurrency: z.number().int().positive().default(8),
      /** report `rate-limited` when a registry says fewer pulls than this remain */
      rateLimitThreshold: z.number().int().nonnegative().default(10),
      /** how many tags to read at most when suggesting a missing tag's neighbours */
      maxTagsForSuggestions: z.number().int().nonnegative().default(1000),
      /** hosts that may be contacted although they resolve to link-local/metadata addresses */
      allowLinkLocal: z.array(hostPort).default([]),
      /**
       * where the nodes really pull a registry's images from (containerd hosts.toml `server`, a
       * pull-through mirror): domain -> base URL, e.g. { "docker.io": "https://mirror.internal:5000" }
       */
      endpoints: z
        .record(
          z.string(),
          z.url({ protocol: /^https?$/, error: 'an http(s) URL such as https://mirror.internal:5000' }),
        )
        .default({}),
      /**
       * the HTTP proxy registries are reached through; when set it wins over HTTPS_PROXY, HTTP_PROXY
       * and NO_PROXY (url "" turns proxies off). noProxy uses NO_PROXY's syntax.
       */
      proxy: z
        .strictObject({
          url: z.union([
            z.literal(''),
            z.url({ protocol: /^https?$/, error: 'an http(s) URL such as http://proxy.corp:3128' }),
          ]),
          noProxy: z.string().optional(),
        })
        .optional(),
    })
    .prefault({}),

  cache: z
    .strictObject({
      maxEntries: z.number().int().positive().default(10_000),
      /** an image that exists, by tag */
      positiveTtl: duration.prefault('5m'),
      /** an image that exists, by digest (immutable) */
      digestTtl: duration.prefault('1h'),
      /** an image that is missing or denied: short, so that a push is seen soon */
      negativeTtl: duration.prefault('10s'),
    })
    .prefault({}),

  credentials: z
    .strictObject({
      /** docker config files the nodes use (mounted into pullguard), joined after the pod's secrets */
      nodeDockerConfigs: z.array(z.string()).default([]),
      /**
       * image patterns (kubelet matchImages globs) served by node credential provider plugins: an image
       * they match is `unverifiable` when no pull secret opens it
       */
      providerImages: z.array(z.string()).default([...PROVIDER_IMAGES]),
      /**
       * the nodes' CredentialProviderConfig (kubelet --image-credential-provider-config): its plugins
       * are run as the kubelet runs them, so the images they serve can be checked
       */
      providerConfig: z.string().optional(),
      /** where the plugins named in providerConfig are (kubelet --image-credential-provider-bin-dir) */
      providerBinDir: z.string().optional(),
    })
    .refine((c) => !c.providerConfig || Boolean(c.providerBinDir), {
      message: 'providerConfig needs providerBinDir (the kubelet needs both flags too)',
      path: ['providerBinDir'],
    })
    .prefault({}),

  /** platforms to require (os/arch[/variant]); empty: the nodes' platforms when in a cluster */
  platforms: z.array(z.string()).default([]),

  cluster: z
    .strictObject({
      /** path of a kubeconfig; empty: KUBECONFIG, then in-cluster, then none */
      kubeconfig: z.string().optional(),
      /** cache secrets and service accounts this long */
      cacheTtl: duration.prefault('30s'),
      /** watch Node objects for platforms and images */
      watchNodes: z.boolean().default(true),
    })
    .prefault({}),

  server: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(8443),
      /** plain-HTTP GET /metrics on its own port; 0 serves /metrics on the webhook's port instead */
      metricsPort: z.number().int().min(0).max(65535).default(9090),
      tlsCert: z.string().optional(),
      tlsKey: z.string().optional(),
      /**
       * AdmissionReview bodies carry object and oldObject; the API server takes requests up to 3 MiB,
       * so a review is ~6 MiB at most
       */
      bodyLimit: z
        .number()
        .int()
        .positive()
        .default(8 * 1024 * 1024),
      /** estimated memory (bytes) all request bodies being read, parsed or reviewed may hold at once */
      bodyMemory: z
        .number()
        .int()
        .positive()
        .default(48 * 1024 * 1024),
      /** reviews running at once; more are answered 429 at once (the webhook's failurePolicy decides) */
      reviewsInFlight: z.number().int().positive().default(1000),
      /** open connections at most */
      maxConnections: z.number().int().positive().default(512),
    })
    .prefault({}),

  /** the watch in `pullguard serve`: Events on pods stuck pulling, re-verification of running workloads */
  watch: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** how often every running workload's images are asked of their registries again */
      interval: duration.pipe(z.number().min(1000, 'at least 1s')).prefault('10m'),
      /** an Event is updated at most this often (per pod container or workload image) unless its cause changes */
      eventInterval: duration.prefault('1m'),
      /**
       * registry requests per registry host (as connected: 127.1 and 127.0.0.1 are one) in each
       * re-verification round, and again for diagnosing stuck pods in each interval
       */
      registryBudget: z.number().int().positive().default(100),
      /** registry requests to all hosts together in each round, and again for diagnosis in each interval */
      roundBudget: z.number().int().positive().default(1000),
      /** Events created or updated per namespace in each interval; the rest follow in later ones */
      eventsPerNamespace: z.number().int().positive().default(20),
      /** series of pullguard_workload_image_pullable at most; the rest are counted as dropped */
      maxSeries: z.number().int().positive().default(5000),
      /** the coordination.k8s.io Lease that picks one acting replica */
      leaseName: z.string().min(1).default('pullguard-watch'),
      /** the Lease's namespace; default: pullguard's own (POD_NAMESPACE, else the service account's) */
      leaseNamespace: z.string().optional(),
      leaseDuration: duration.pipe(z.number().min(1000, 'at least 1s')).prefault('15s'),
    })
    .prefault({}),

  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

export class ConfigError extends PullguardError {
  readonly code = 'config';
  readonly issues: string[];
  constructor(source: string, issues: string[]) {
    super(`invalid configuration in ${source}: ${issues.join('; ')}`);
    this.issues = issues;
  }
}

/** Validates raw input; the error lists the path of every wrong field. */
export function validateConfig(input: unknown, source = 'configuration'): Config {
  const result = configSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
  throw new ConfigError(source, issues);
}

export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read: ${systemErrorText(err, 'read')} (check --config)`]);
  }
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError(file, [(err as Error).message.split('\n')[0] ?? 'not YAML or JSON']);
  }
}

export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; flags?: unknown }): Config {
  const fromFile = opts.file ? readConfigFile(opts.file) : {};
  const merged = mergeLayers(fromFile, environmentOverrides(opts.env ?? {}), opts.flags ?? {});
  // Without a file the values came from flags and the environment: say so ("in configuration" named nothing).
  return validateConfig(merged, opts.file ?? 'flags and PULLGUARD_* variables');
}
