// One zod schema for the whole configuration, shared by `pullguard check` and `pullguard serve`.
// Sources, lowest first: defaults, the file (YAML or JSON), PULLGUARD_* environment, command flags.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { FAIL_REASONS, REASONS } from '../findings.ts';
import { PullguardError } from '../errors.ts';
import { systemErrorText } from '../system-errors.ts';
import { DEFAULTS, environmentOverrides, HOST_PORT, mergeLayers, parseDuration } from './layers.ts';

// Each setting says what it means with .describe(): README.md's configuration table is made from
// them (npm run docs:config, scripts/config-table.ts), and test/config.test.ts fails when the two
// differ. A `title` in .meta() names a value's kind in that table (duration, bytes, host[:port]).

const duration = z
  .union([
    z.number().int().nonnegative(),
    z.string().regex(/^\d+(ms|s|m|h)?$/, 'a duration such as 500ms, 8s, 5m, 1h or 8000 (milliseconds)'),
  ])
  .transform((v) => (typeof v === 'number' ? v : parseDuration(v)))
  .meta({ title: 'duration' });
const bytes = z.number().int().positive().meta({ title: 'bytes' });

export const MODES = ['enforce', 'warn', 'audit'] as const;
export type Mode = (typeof MODES)[number];
export const ACTIONS = ['deny', 'warn', 'ignore'] as const;
export type Action = (typeof ACTIONS)[number];

const hostPort = z.string().regex(HOST_PORT, 'a registry host, optionally with :port').meta({ title: 'host[:port]' });

export const configSchema = z.strictObject({
  mode: z
    .enum(MODES)
    .default(DEFAULTS.mode)
    .describe(
      '`enforce` denies what would fail and warns of risks, `warn` warns of everything, `audit` allows everything and records only (see [Choosing a mode](#choosing-a-mode)); `--mode`',
    ),
  actions: z
    .partialRecord(z.enum(REASONS).meta({ title: 'reason' }), z.enum(ACTIONS))
    .default(DEFAULTS.actions)
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
    })
    .describe(
      "per-reason action in `enforce` mode, e.g. `{platform-not-found: warn}` (in `warn` mode a deny is a warning). Only a reason that is a certain failure may deny: a risk is pullguard's own uncertainty",
    ),
  deadline: duration
    .pipe(z.number().min(100, 'at least 100ms').max(300_000, 'at most 5m'))
    .default(DEFAULTS.deadline)
    .describe(
      "one check's deadline, 100ms to 5m; unfinished images become `timeout` risks. Keep it under the webhook's `timeoutSeconds` (at most 30 s); `--timeout`",
    ),

  registry: z
    .strictObject({
      insecure: z
        .array(hostPort)
        .default(DEFAULTS.registry.insecure)
        .describe(
          "hosts reached without TLS verification, or over plain HTTP when they have no TLS, as containerd's insecure registries; `--insecure-registry`",
        ),
      caFiles: z
        .array(z.string())
        .default(DEFAULTS.registry.caFiles)
        .describe(
          "extra CA certificate files (PEM) trusted for every registry, besides Node.js's own trust (its bundled roots, `NODE_EXTRA_CA_CERTS`, the system's with `--use-system-ca`); `--registry-ca`",
        ),
      concurrency: z
        .number()
        .int()
        .positive()
        .default(DEFAULTS.registry.concurrency)
        .describe('requests in flight to one registry host at most'),
      rateLimitThreshold: z
        .number()
        .int()
        .nonnegative()
        .default(DEFAULTS.registry.rateLimitThreshold)
        .describe('report `rate-limited` when a registry says fewer pulls than this remain'),
      maxTagsForSuggestions: z
        .number()
        .int()
        .nonnegative()
        .default(DEFAULTS.registry.maxTagsForSuggestions)
        .describe(
          'tags read at most to suggest a missing tag\'s neighbours; also the most repository names read (one `/v2/_catalog` page, with the credential whose answer was "not found") to suggest a missing repository\'s',
        ),
      verifyLayers: z
        .boolean()
        .default(DEFAULTS.registry.verifyLayers)
        .describe(
          "check what the runtime fetches after the manifest: each wanted platform's own manifest, its config and every layer blob (HEAD, at most 128 a manifest, in parallel, cached by digest); a missing one is `manifest-missing` or `blob-missing`, one that cannot be checked (5xx, timeout, storage unreachable) only a note. Off: the manifests and a single manifest's config only; `--no-verify-layers`. The watch's re-verification always checks the manifests only, within its request budget",
        ),
      allowLinkLocal: z
        .array(hostPort)
        .default(DEFAULTS.registry.allowLinkLocal)
        .describe(
          'hosts that may be contacted although they resolve to link-local or metadata addresses (169.254.0.0/16, fe80::/10), which are refused otherwise: anyone who may create a pod chooses the host its image names',
        ),
      hostsDir: z
        .string()
        .optional()
        .describe(
          "the nodes' containerd hosts directory (`config_path`, e.g. `/etc/containerd/certs.d` mounted from a ConfigMap): `<host>/hosts.toml` mirrors are asked in order, then the `server`, as containerd falls back; `--hosts-dir`",
        ),
      registriesConf: z
        .string()
        .optional()
        .describe(
          "the nodes' CRI-O/podman `registries.conf` (v2): prefix and location rewrites, mirrors, `blocked`, short-name search; `--registries-conf`",
        ),
      registriesConfDir: z
        .string()
        .optional()
        .describe(
          "the nodes' `registries.conf.d` drop-in directory (`*.conf`, in name order); `--registries-conf-dir`",
        ),
      endpoints: z
        .record(
          z.string().meta({ title: 'domain' }),
          z.url({ protocol: /^https?$/, error: 'an http(s) URL such as https://mirror.internal:5000' }),
        )
        .default(DEFAULTS.registry.endpoints)
        .describe(
          'shorthand for a hosts directory whose `<domain>/hosts.toml` has only `server = URL`: where the nodes pull a registry\'s images from instead, with no fallback: `{"docker.io": "https://mirror.internal:5000"}`. Not together with `hostsDir` or `registriesConf` (write it there as `server`)',
        ),
      proxy: z
        .strictObject({
          url: z.union([
            z.literal(''),
            z.url({ protocol: /^https?$/, error: 'an http(s) URL such as http://proxy.corp:3128' }),
          ]),
          noProxy: z.string().optional(),
        })
        .optional()
        .describe(
          'the HTTP proxy registries are reached through; when set it wins over `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (`url: ""` turns proxies off); `noProxy` uses `NO_PROXY`\'s syntax. See [Proxies](#proxies)',
        ),
    })
    .prefault({}),

  cache: z
    .strictObject({
      maxEntries: z
        .number()
        .int()
        .positive()
        .default(DEFAULTS.cache.maxEntries)
        .describe('registry answers kept (LRU)'),
      positiveTtl: duration.default(DEFAULTS.cache.positiveTtl).describe('how long an image found by tag is trusted'),
      digestTtl: duration
        .default(DEFAULTS.cache.digestTtl)
        .describe('how long an image found by digest (immutable) is trusted'),
      negativeTtl: duration
        .default(DEFAULTS.cache.negativeTtl)
        .describe('how long a missing, denied or failing answer is kept (short, so that a push is seen soon)'),
    })
    .prefault({}),

  credentials: z
    .strictObject({
      nodeDockerConfigs: z
        .array(z.string())
        .default(DEFAULTS.credentials.nodeDockerConfigs)
        .describe(
          "the nodes' docker config files (mounted into pullguard), tried after the pod's secrets as the kubelet does; `--docker-config` for `serve`",
        ),
      providerImages: z
        .array(z.string())
        .default(DEFAULTS.credentials.providerImages)
        .describe(
          'image patterns (kubelet `matchImages` globs: ECR, GCR, Artifact Registry, ACR) whose credentials come from a kubelet credential provider: `unverifiable` rather than denied when no pull secret opens them',
        ),
      providerConfig: z
        .string()
        .optional()
        .describe(
          "the nodes' kubelet `CredentialProviderConfig` (`kubelet.config.k8s.io/v1`); its plugins are run as the kubelet runs them (`matchImages`, args, env, the response's auth map and cache), after the pod's secrets and the node's docker configs, so ECR/GCR/ACR images become verifiable; a plugin that fails, hangs, answers nonsense or is missing leaves them `unverifiable`, naming it. docs/operating.md has the set-up for EKS, GKE and AKS; `--image-credential-provider-config` (the kubelet's flag name, for `serve` and `check`)",
        ),
      providerBinDir: z
        .string()
        .optional()
        .describe(
          'where the plugins named in `providerConfig` are (needed with it, as the kubelet needs both flags); `--image-credential-provider-bin-dir`',
        ),
      imagePullCredentialsVerificationPolicy: z
        .enum(['NeverVerify', 'NeverVerifyPreloadedImages', 'NeverVerifyAllowlistedImages', 'AlwaysVerify'])
        .default(DEFAULTS.credentials.imagePullCredentialsVerificationPolicy)
        .describe(
          "the nodes' kubelet `imagePullCredentialsVerificationPolicy` (KEP-2535, on by default since 1.35): whether an `IfNotPresent` image already on a node (`node.status.images`) is used there without the pod's credentials. An image the registry refuses that a node has is then `unverifiable`, not denied, unless the policy is `AlwaysVerify` (or `NeverVerifyAllowlistedImages` and it is not allowlisted)",
        ),
      preloadedImagesVerificationAllowlist: z
        .array(
          z
            .string()
            .regex(
              /^[^\s/@*]+(\/[^\s/:@*]+)*(\/\*)?$/,
              'a repository (registry/path), optionally ending in /*, without tag or digest',
            ),
        )
        .default(DEFAULTS.credentials.preloadedImagesVerificationAllowlist)
        .describe(
          "the nodes' kubelet `preloadedImagesVerificationAllowlist`: repositories (`registry/path`, or a prefix ending in `/*`) used from the node without credentials under `NeverVerifyAllowlistedImages`",
        ),
      serviceAccountTokens: z
        .boolean()
        .default(DEFAULTS.credentials.serviceAccountTokens)
        .describe(
          "run the plugins whose provider has `tokenAttributes` (KEP-4412) as the kubelet does: with a short-lived token of the pod's ServiceAccount for the provider's audience (TokenRequest; needs `create` on `serviceaccounts/token`) and the annotations it names; off: their images stay `unverifiable`, unless the ServiceAccount lacks a required annotation (then the kubelet gets nothing from the plugin, and neither does pullguard). docs/operating.md states the trade-off; `--request-service-account-tokens`",
        ),
    })
    .refine((c) => !c.providerConfig || Boolean(c.providerBinDir), {
      message: 'providerConfig needs providerBinDir (the kubelet needs both flags too)',
      path: ['providerBinDir'],
    })
    .prefault({}),

  platforms: z
    .array(z.string())
    .default(DEFAULTS.platforms)
    .describe(
      "platforms to require (`os/arch[/variant]`); empty: the nodes' (from a watch of Node objects) when in a cluster; `--platform`",
    ),

  nodes: z
    .strictObject({
      runtime: z
        .enum(['containerd', 'cri-o'])
        .default(DEFAULTS.nodes.runtime)
        .describe(
          "the nodes' container runtime, where it changes the answer: on `cri-o` an image without a registry (`app:1.0`) is resolved by `registries.conf`'s short-name rules, not as docker.io's; `registry.registriesConf` (`--registries-conf`) implies `cri-o`",
        ),
    })
    .prefault({}),

  cluster: z
    .strictObject({
      kubeconfig: z
        .string()
        .optional()
        .describe('kubeconfig path; unset: `KUBECONFIG`, then in-cluster, then none; `--kubeconfig`'),
      cacheTtl: duration.default(DEFAULTS.cluster.cacheTtl).describe('how long secrets and ServiceAccounts are cached'),
      watchNodes: z
        .boolean()
        .default(DEFAULTS.cluster.watchNodes)
        .describe('watch Node objects for platforms and images'),
    })
    .prefault({}),

  server: z
    .strictObject({
      host: z.string().default(DEFAULTS.server.host).describe('listen address; `--host`'),
      port: z.number().int().min(0).max(65535).default(DEFAULTS.server.port).describe('webhook port; `--port`'),
      metricsPort: z
        .number()
        .int()
        .min(0)
        .max(65535)
        .default(DEFAULTS.server.metricsPort)
        .describe(
          'plain-HTTP port for `GET /metrics` (a NetworkPolicy and a ServiceMonitor address it alone); `0` serves `/metrics` on the webhook port; `--metrics-port`',
        ),
      tlsCert: z
        .string()
        .optional()
        .describe(
          'serving certificate (PEM), re-read when it changes; without it and `tlsKey` a self-signed certificate is made; `--tls-cert`',
        ),
      tlsKey: z.string().optional().describe("the serving certificate's key (PEM); `--tls-key`"),
      bodyLimit: bytes
        .default(DEFAULTS.server.bodyLimit)
        .describe(
          "largest AdmissionReview read: a review carries object and oldObject, each at most the API server's 3 MiB request limit, so one is ~7 MiB at most; a larger one is allowed unchecked, with a warning",
        ),
      bodyMemory: bytes
        .default(DEFAULTS.server.bodyMemory)
        .describe(
          "estimated memory all request bodies being read, parsed or reviewed may hold at once; past it reviews get 429 (the webhook's `failurePolicy` decides)",
        ),
      reviewsInFlight: z
        .number()
        .int()
        .positive()
        .default(DEFAULTS.server.reviewsInFlight)
        .describe("reviews running at once; more are answered 429 at once (the webhook's `failurePolicy` decides)"),
      maxConnections: z
        .number()
        .int()
        .positive()
        .default(DEFAULTS.server.maxConnections)
        .describe('open connections at most'),
    })
    .prefault({}),

  watch: z
    .strictObject({
      enabled: z
        .boolean()
        .default(DEFAULTS.watch.enabled)
        .describe(
          'the watch in `serve`: Events on pods stuck pulling, re-verification of running workloads ([above](#the-watch-serve-off-by-default)); `PULLGUARD_WATCH_ENABLED=true`',
        ),
      interval: duration
        .pipe(z.number().min(1000, 'at least 1s'))
        .default(DEFAULTS.watch.interval)
        .describe("how often every running workload's images are asked of their registries again"),
      eventInterval: duration
        .default(DEFAULTS.watch.eventInterval)
        .describe(
          'an Event is updated at most this often (per pod container or workload image) unless its cause changes',
        ),
      registryBudget: z
        .number()
        .int()
        .positive()
        .default(DEFAULTS.watch.registryBudget)
        .describe(
          'registry requests per registry host (as connected: `127.1` is `127.0.0.1`) in each re-verification round, and again for diagnosing stuck pods in each interval',
        ),
      roundBudget: z
        .number()
        .int()
        .positive()
        .default(DEFAULTS.watch.roundBudget)
        .describe('registry requests to all hosts together in each round, and again for diagnosis in each interval'),
      eventsPerNamespace: z
        .number()
        .int()
        .positive()
        .default(DEFAULTS.watch.eventsPerNamespace)
        .describe('Events created or updated per namespace in each interval; the rest follow in later ones'),
      maxSeries: z
        .number()
        .int()
        .positive()
        .default(DEFAULTS.watch.maxSeries)
        .describe(
          'series of `pullguard_workload_image_pullable` at most (unpullable first); `pullguard_workload_image_pullable_dropped` counts the rest',
        ),
      leaseName: z
        .string()
        .min(1)
        .default(DEFAULTS.watch.leaseName)
        .describe('the `coordination.k8s.io` Lease that picks the one acting replica'),
      leaseNamespace: z
        .string()
        .optional()
        .describe("the Lease's namespace; unset: pullguard's own (`POD_NAMESPACE`, else the service account's)"),
      leaseDuration: duration
        .pipe(z.number().min(1000, 'at least 1s'))
        .default(DEFAULTS.watch.leaseDuration)
        .describe('how long a leader holds the Lease without renewing it'),
    })
    .prefault({}),

  log: z
    .strictObject({
      level: z
        .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default(DEFAULTS.log.level)
        .describe('pino level; `debug` adds a line for every plain allow'),
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
  if (result.success) return withNodesRuntime(result.data);
  const issues = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
  throw new ConfigError(source, issues);
}

/** registries.conf is what CRI-O (and podman) nodes read: given it, the nodes are CRI-O's, from a flag or a file alike. */
function withNodesRuntime(config: Config): Config {
  const crio = config.registry.registriesConf !== undefined || config.registry.registriesConfDir !== undefined;
  return crio && config.nodes.runtime !== 'cri-o'
    ? { ...config, nodes: { ...config.nodes, runtime: 'cri-o' } }
    : config;
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
