// `pullguard check`: the engine on images and manifests, for CI pipelines and people.
// Exit 0: every image verified (or only risks); 1: an image would fail (or, with --strict, might);
// 2: bad usage or input; 3: nothing failed but some image could not be verified.

import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, parseDuration, type Config } from '../config.ts';
import { CredentialFileError, keyringFromFiles } from '../credentials/files.ts';
import { type CredentialProviders, loadCredentialProviders, ProviderConfigError } from '../credentials/providers.ts';
import { defaultStorePaths, readStoreFiles, UserCredentials } from '../credentials/stores.ts';
import { oneLine, type Finding, type ImageUse } from '../findings.ts';
import { parsePlatform, type Platform } from '../platform/index.ts';
import type { CredentialContext, Preflight } from '../preflight/engine.ts';
import { ProxyConfigError, ProxyRules, proxySettings } from '../registry/proxy.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import type { LoadedKubeConfig } from '../cluster/kubeconfig.ts';
import { clusterConfigured, KubeConfigError } from '../cluster/source.ts';
import { imageFieldProblems, imageUsesOf, podSpecSite, pullSecretNames, type PodSpecSite } from '../workload/images.ts';
import { InputError, readManifests, type SourcedObject } from './manifests.ts';
import { offlineFindings } from './offline.ts';
import { parseOutputs, render, type OutputTarget } from './output/index.ts';
import { Progress } from './progress.ts';
import { buildReport, objectText } from './report.ts';
import { version } from './version.ts';

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

export const CHECK_USAGE = `Usage: pullguard check [IMAGE...] [-f FILE|DIR|-]... [options]

Checks that every image of the given images and manifests can be pulled, as the kubelet would.

Options:
  -f, --filename FILE|DIR|-     manifests (YAML or JSON, multi-document, List kinds); - reads stdin
      --docker-config FILE      docker config.json or .dockercfg with pull credentials (repeatable); without
                                it, your own stores: REGISTRY_AUTH_FILE, podman's auth.json, docker's
                                config.json and their credential helpers (see README)
      --platform OS/ARCH[/VAR]  platforms the pods may run on, comma-separated (repeatable)
      --insecure-registry HOST  registry reached without TLS verification or over plain HTTP (repeatable)
      --registry-ca FILE        extra CA certificate (PEM) trusted for registries (repeatable)
      --image-credential-provider-config FILE
                                the nodes' kubelet CredentialProviderConfig: its plugins open the images
                                they serve (ECR, GCR/Artifact Registry, ACR, ...)
      --image-credential-provider-bin-dir DIR
                                where those plugins are
      --timeout DURATION        overall deadline, e.g. 8s or 8000 (milliseconds; default from config: 8s)
      --offline                 no network: reference syntax and pull policies only; the rest is not-checked
      --strict                  treat risks as failures
      --allow-unverified        images that could not be verified do not make the exit status 3
      --allow-empty             input with no Kubernetes object is not an error
  -o, --output FORMAT[=FILE]    text, json, sarif, junit or github (default text), to stdout or a file;
                                repeatable: --output sarif=results.sarif --output text
  -q, --quiet                   text output: only what is not ok
      --version                 print the version
      --kubeconfig FILE         read pull secrets, ServiceAccounts and node platforms from this cluster
                                (default: KUBECONFIG; without either, docker config files only)
      --context NAME            the kubeconfig context to use (default: its current context)
  -n, --namespace NS            namespace of objects that name none (default: default)
      --config FILE             configuration file (YAML or JSON); flags override it
  -h, --help                    this help

Exit status: 0 every image verified (risks accepted unless --strict), 1 an image would fail,
2 bad usage or input (no Kubernetes object, an image field the API server would reject),
3 nothing failed but some images could not be verified (unreachable registry, timeout, --offline).
`;

export class UsageError extends Error {}

export interface CheckArgs {
  images: string[];
  files: string[];
  dockerConfigs: string[];
  platforms: Platform[];
  offline: boolean;
  strict: boolean;
  allowUnverified: boolean;
  allowEmpty: boolean;
  quiet: boolean;
  outputs: OutputTarget[];
  namespace: string;
  context?: string;
  config: Config;
}

/** Registry flags shared with `pullguard serve`: they override the configuration file. */
export const REGISTRY_FLAGS = {
  'insecure-registry': { type: 'string', multiple: true },
  'registry-ca': { type: 'string', multiple: true },
  platform: { type: 'string', multiple: true },
  'docker-config': { type: 'string', multiple: true },
  timeout: { type: 'string' },
  config: { type: 'string' },
  'image-credential-provider-config': { type: 'string' },
  'image-credential-provider-bin-dir': { type: 'string' },
} as const;

export function registryOverrides(values: {
  'insecure-registry'?: string[];
  'registry-ca'?: string[];
  timeout?: string;
  platform?: string[];
  'image-credential-provider-config'?: string;
  'image-credential-provider-bin-dir'?: string;
}): Record<string, unknown> {
  const registry: Record<string, unknown> = {};
  if (values['insecure-registry']?.length) registry.insecure = values['insecure-registry'];
  if (values['registry-ca']?.length) registry.caFiles = values['registry-ca'];
  const out: Record<string, unknown> = { registry };
  // The kubelet's own flag names, so the nodes' values can be copied as they are.
  const credentials: Record<string, unknown> = {};
  if (values['image-credential-provider-config'])
    credentials.providerConfig = values['image-credential-provider-config'];
  if (values['image-credential-provider-bin-dir'])
    credentials.providerBinDir = values['image-credential-provider-bin-dir'];
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

export function parsePlatforms(list: readonly string[]): Platform[] {
  return list.map((p) => {
    try {
      return parsePlatform(p);
    } catch (err) {
      throw new UsageError(`platform "${p}": ${(err as Error).message}`);
    }
  });
}

export function readCaFiles(files: readonly string[]): string[] {
  return files.map((f) => {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      throw new UsageError(`registry CA ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    // A file that holds no certificate would be ignored silently and trust nothing.
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (!blocks.length) throw new UsageError(`registry CA ${f}: no PEM certificate in the file`);
    for (const block of blocks) {
      try {
        new X509Certificate(block);
      } catch {
        throw new UsageError(`registry CA ${f}: a certificate in the file does not parse`);
      }
    }
    return text;
  });
}

export function parseCheckArgs(argv: string[], env: NodeJS.ProcessEnv): CheckArgs | 'help' | 'version' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...REGISTRY_FLAGS,
        filename: { type: 'string', short: 'f', multiple: true },
        offline: { type: 'boolean' },
        strict: { type: 'boolean' },
        'allow-unverified': { type: 'boolean' },
        'allow-empty': { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
        version: { type: 'boolean' },
        output: { type: 'string', short: 'o', multiple: true },
        kubeconfig: { type: 'string' },
        namespace: { type: 'string', short: 'n' },
        context: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.version) return 'version';
  let outputs: OutputTarget[];
  try {
    outputs = parseOutputs(v.output ?? []);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (!parsed.positionals.length && !v.filename?.length) throw new UsageError('name at least one IMAGE or -f FILE');
  const flags = registryOverrides(v);
  if (v.kubeconfig) flags.cluster = { kubeconfig: v.kubeconfig };
  const config = loadConfig({ ...(v.config ? { file: v.config } : {}), env, flags });
  return {
    images: parsed.positionals,
    files: v.filename ?? [],
    dockerConfigs: v['docker-config'] ?? [],
    platforms: parsePlatforms(config.platforms),
    offline: Boolean(v.offline),
    strict: Boolean(v.strict),
    allowUnverified: Boolean(v['allow-unverified']),
    allowEmpty: Boolean(v['allow-empty']),
    quiet: Boolean(v.quiet),
    outputs,
    namespace: v.namespace ?? 'default',
    ...(v.context ? { context: v.context } : {}),
    config,
  };
}

export interface Group {
  uses: ImageUse[];
  /** the pod spec the uses come from; none for images named on the command line */
  site?: PodSpecSite;
}

/** A field path such as spec.containers[0].image as keys and indexes. */
function pathOf(field: string): (string | number)[] {
  return field.split('.').flatMap((part) => {
    const [key, ...indexes] = part.split('[');
    return [key!, ...indexes.map((i) => Number(i.slice(0, -1)))];
  });
}

function isKubernetesObject(o: unknown): boolean {
  return o !== null && typeof o === 'object' && !Array.isArray(o) && typeof (o as { kind?: unknown }).kind === 'string';
}

/**
 * The image uses of the arguments and manifests, grouped by the object (pod spec) they belong to,
 * each with its place in its file. Input the API server would reject, and input without any
 * Kubernetes object (unless allowed), is an InputError that names every place.
 */
export function collectGroups(args: CheckArgs, stdin: () => string): Group[] {
  const groups: Group[] = [];
  const images: ImageUse[] = args.images.map((image, i) => ({
    object: { kind: 'Image' },
    container: '',
    field: `argument ${i + 1}`,
    image,
  }));
  if (images.length) groups.push({ uses: images });
  if (!args.files.length) return groups;
  const objects: SourcedObject[] = readManifests(args.files, stdin);
  const problems: string[] = [];
  for (const { object, locate } of objects) {
    const site = podSpecSite(object);
    if (!site) continue;
    const owner = {
      kind: site.kind,
      ...(site.namespace ? { namespace: site.namespace } : {}),
      ...(site.name ? { name: site.name } : {}),
    };
    for (const p of imageFieldProblems(site)) {
      const at = locate(pathOf(p.field));
      const holder = objectText({ object: owner, container: p.container, field: p.field });
      problems.push(`${at.file}:${at.line}:${at.column}: ${holder}: ${p.field}: ${p.problem}`);
    }
    const uses = imageUsesOf(site).map((u) => ({ ...u, source: locate(pathOf(u.field)) }));
    if (uses.length) groups.push({ uses, site });
  }
  if (problems.length) throw new InputError(problems.join('\n'));
  if (!args.allowEmpty && !objects.some((o) => isKubernetesObject(o.object)))
    throw new InputError(
      `no Kubernetes object in ${args.files.join(', ')}: empty input usually means the command before the pipe failed (set -o pipefail); --allow-empty accepts it`,
    );
  return groups;
}

/** Output width: COLUMNS when set, else the terminal's; none when piped (nothing is wrapped). */
function outputWidth(io: CliIO): number | undefined {
  const fromEnv = Number.parseInt(io.env.COLUMNS ?? '', 10);
  if (fromEnv > 0) return fromEnv;
  return io.isTTY && io.columns && io.columns > 0 ? io.columns : undefined;
}

export async function runCheck(argv: string[], io: CliIO): Promise<number> {
  let args: CheckArgs | 'help' | 'version';
  let groups: Group[];
  let user: UserCredentials | undefined;
  let providers: CredentialProviders | undefined;
  let skipped: string[] = [];
  let caPems: string[];
  let cluster: LoadedKubeConfig | null = null;
  try {
    args = parseCheckArgs(argv, io.env);
    if (args === 'help') {
      io.stdout(CHECK_USAGE);
      return 0;
    }
    if (args === 'version') {
      io.stdout(`pullguard ${version()}\n`);
      return 0;
    }
    groups = collectGroups(args, io.stdin);
    caPems = readCaFiles(args.config.registry.caFiles);
    if (!args.offline)
      providers = loadCredentialProviders(args.config.credentials, {
        timeoutMs: Math.floor(args.config.deadline / 2),
        env: io.env,
      });
    new ProxyRules(proxySettings(args.config.registry.proxy, io.env)).assertSupported();
    const kubeconfig = args.config.cluster.kubeconfig ? { kubeconfig: args.config.cluster.kubeconfig } : {};
    // The Kubernetes client is loaded only when a cluster may be used: most of a cold start otherwise.
    if (!args.offline && (args.context || clusterConfigured({ ...kubeconfig, env: io.env }))) {
      const { loadKubeConfig } = await import('../cluster/kubeconfig.ts');
      cluster = loadKubeConfig({ ...kubeconfig, ...(args.context ? { context: args.context } : {}), env: io.env });
    }
    // --docker-config replaces the defaults; with a cluster, only the files given stand for the
    // nodes' credentials (the person's own stores say nothing about what the kubelet has).
    const explicit = args.dockerConfigs.length > 0;
    if (explicit || (!cluster && !args.offline)) {
      const read = readStoreFiles(explicit ? args.dockerConfigs : defaultStorePaths(io.env), explicit);
      skipped = read.skipped;
      user = new UserCredentials(read.stores, { timeoutMs: Math.floor(args.config.deadline / 2), env: io.env });
    }
  } catch (err) {
    if (
      err instanceof UsageError ||
      err instanceof InputError ||
      err instanceof ConfigError ||
      err instanceof CredentialFileError ||
      err instanceof KubeConfigError ||
      err instanceof ProxyConfigError ||
      err instanceof ProviderConfigError
    ) {
      for (const line of err.message.split('\n')) io.stderr(`pullguard check: ${oneLine(line)}\n`);
      if (err instanceof UsageError) io.stderr('Run "pullguard check --help" for usage.\n');
      return 2;
    }
    throw err;
  }

  let findings: Finding[];
  if (args.offline) {
    findings = offlineFindings(
      groups.flatMap((g) => g.uses),
      args.platforms,
    );
  } else {
    if (!cluster && !args.quiet)
      io.stderr(
        `pullguard check: no cluster (no --kubeconfig or KUBECONFIG): checking with docker config files only (${user?.files.length ? user.files.join(', ') : 'none found'})\n`,
      );
    for (const s of skipped) io.stderr(`pullguard check: skipped ${s}\n`);
    const uses = groups.reduce((n, g) => n + g.uses.length, 0);
    const progress = io.stderrIsTTY ? new Progress(uses, io.stderr) : undefined;
    progress?.start();
    const onSettled = progress ? () => progress.tick() : undefined;
    const { Preflight } = await import('../preflight/engine.ts');
    const engine = new Preflight(args.config, caPems, { proxy: proxySettings(args.config.registry.proxy, io.env) });
    try {
      findings = cluster
        ? await checkInCluster(engine, groups, providers, args, cluster.kc, onSettled)
        : await checkWithFiles(
            engine,
            groups,
            user ?? new UserCredentials([], { timeoutMs: 0, env: {} }),
            providers,
            args,
            onSettled,
          );
    } finally {
      progress?.stop();
      await engine.close();
    }
  }
  const report = buildReport(findings, { strict: args.strict, allowUnverified: args.allowUnverified });
  const text = { color: io.isTTY && !io.env.NO_COLOR, width: outputWidth(io), quiet: args.quiet };
  for (const target of args.outputs) {
    if (!target.path) {
      io.stdout(render(target.format, report, { version: version(), text }));
      continue;
    }
    // A file gets the whole table, unwrapped and without colour.
    const body = render(target.format, report, { version: version(), text: { color: false, quiet: args.quiet } });
    try {
      writeFileSync(target.path, body);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      io.stderr(`pullguard check: cannot write ${target.path}: ${why}\n`);
      return 2;
    }
  }
  return report.exitCode;
}

/**
 * Without a cluster, the credential stores (the files given, or the person's own) stand for the pods'
 * pull secrets. A manifest that names secrets while no file was given is checked with that said: a
 * denial then is our uncertainty.
 */
async function checkWithFiles(
  engine: Preflight,
  groups: Group[],
  user: UserCredentials,
  providers: CredentialProviders | undefined,
  args: CheckArgs,
  onSettled?: () => void,
): Promise<Finding[]> {
  const results = await Promise.all(
    groups.map((group) => {
      const named = group.site ? pullSecretNames(group.site.spec) : [];
      const credentials: CredentialContext = {
        keyrings: [],
        dynamic: [{ lookup: (name, domain) => user.lookup(name, domain) }, ...(providers ? [providers] : [])],
        scope: args.dockerConfigs.length
          ? 'the docker config files given'
          : user.files.length
            ? `your credential stores (${user.files.join(', ')})`
            : 'the command line (no --docker-config given, no credential store found)',
        unreadSecrets: named.length > 0 && !args.dockerConfigs.length ? named : [],
      };
      return engine.check(group.uses, { credentials, platforms: args.platforms, ...(onSettled ? { onSettled } : {}) });
    }),
  );
  return results.flat();
}

/** With a cluster: the same keyring the webhook builds (pod or ServiceAccount secrets, then the files as node credentials), and the nodes' platforms. */
async function checkInCluster(
  engine: Preflight,
  groups: Group[],
  providers: CredentialProviders | undefined,
  args: CheckArgs,
  kc: KubeConfig,
  onSettled?: () => void,
): Promise<Finding[]> {
  const [{ ClusterReader }, { NodeWatcher }, { PodCredentials }] = await Promise.all([
    import('../cluster/reader.ts'),
    import('../cluster/nodes.ts'),
    import('../credentials/sources.ts'),
  ]);
  const reader = new ClusterReader(kc, {
    cacheTtlMs: args.config.cluster.cacheTtl,
    requestTimeoutMs: Math.floor(args.config.deadline / 2),
  });
  const sources = new PodCredentials(
    reader,
    args.dockerConfigs.length ? keyringFromFiles(args.dockerConfigs) : null,
    providers ? [providers] : [],
  );
  let platforms: readonly Platform[] = args.platforms;
  if (!platforms.length && args.config.cluster.watchNodes) {
    const nodes = new NodeWatcher(kc, {});
    nodes.start();
    try {
      if (await nodes.whenReady(args.config.deadline)) platforms = nodes.platforms();
    } finally {
      await nodes.stop();
    }
  }
  const results = await Promise.all(
    groups.map(async (group) => {
      const namespace = group.site?.namespace ?? args.namespace;
      const site = group.site ?? { kind: 'Pod', specPath: 'spec', spec: {}, template: false };
      const credentials = await sources.forSite(site, namespace, args.config.deadline);
      return engine.check(group.uses, { credentials, platforms, ...(onSettled ? { onSettled } : {}) });
    }),
  );
  return results.flat();
}
