// `pullguard check`: the engine on images and manifests, for CI pipelines and people.
// Exit 0: nothing fails; 1: an image would fail (or, with --strict, might); 2: bad usage or input.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, parseDuration, type Config } from '../config.ts';
import { CredentialFileError, keyringFromFiles } from '../credentials/files.ts';
import { Keyring } from '../credentials/keyring.ts';
import type { Finding, ImageUse } from '../findings.ts';
import { parsePlatform, type Platform } from '../platform/index.ts';
import { Preflight, type CredentialContext } from '../preflight/engine.ts';
import { explain } from '../preflight/messages.ts';
import { parseImage } from '../reference/index.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeConfigError, loadKubeConfig } from '../cluster/kubeconfig.ts';
import { NodeWatcher } from '../cluster/nodes.ts';
import { ClusterReader } from '../cluster/reader.ts';
import { PodCredentials } from '../credentials/sources.ts';
import { imageUsesOf, podSpecSite, pullSecretNames, type PodSpecSite } from '../workload/images.ts';
import { InputError, readManifests } from './manifests.ts';
import { toJson, toText } from './output.ts';

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  stdin: () => string;
  env: NodeJS.ProcessEnv;
  isTTY: boolean;
}

export const CHECK_USAGE = `Usage: pullguard check [IMAGE...] [-f FILE|DIR|-]... [options]

Checks that every image of the given images and manifests can be pulled, as the kubelet would.

Options:
  -f, --filename FILE|DIR|-     manifests (YAML or JSON, multi-document, List kinds); - reads stdin
      --docker-config FILE      docker config.json or .dockercfg with pull credentials (repeatable)
      --platform OS/ARCH[/VAR]  platforms the pods may run on, comma-separated (repeatable)
      --insecure-registry HOST  registry reached without TLS verification or over plain HTTP (repeatable)
      --registry-ca FILE        extra CA certificate (PEM) trusted for registries (repeatable)
      --timeout DURATION        overall deadline, e.g. 8s (default from config: 8s)
      --offline                 check references only, no network
      --strict                  treat risks as failures
  -o, --output text|json        output format (default text)
      --kubeconfig FILE         read pull secrets, ServiceAccounts and node platforms from this cluster
                                (default: KUBECONFIG; without either, docker config files only)
  -n, --namespace NS            namespace of objects that name none (default: default)
      --config FILE             configuration file (YAML or JSON); flags override it
  -h, --help                    this help

Exit status: 0 nothing fails, 1 an image would fail, 2 bad usage or unreadable input.
`;

export class UsageError extends Error {}

export interface CheckArgs {
  images: string[];
  files: string[];
  dockerConfigs: string[];
  platforms: Platform[];
  offline: boolean;
  strict: boolean;
  output: 'text' | 'json';
  namespace: string;
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
} as const;

export function registryOverrides(values: {
  'insecure-registry'?: string[];
  'registry-ca'?: string[];
  timeout?: string;
  platform?: string[];
}): Record<string, unknown> {
  const registry: Record<string, unknown> = {};
  if (values['insecure-registry']?.length) registry.insecure = values['insecure-registry'];
  if (values['registry-ca']?.length) registry.caFiles = values['registry-ca'];
  const out: Record<string, unknown> = { registry };
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
    try {
      return readFileSync(f, 'utf8');
    } catch (err) {
      throw new UsageError(`registry CA ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  });
}

export function parseCheckArgs(argv: string[], env: NodeJS.ProcessEnv): CheckArgs | 'help' {
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
        output: { type: 'string', short: 'o' },
        kubeconfig: { type: 'string' },
        namespace: { type: 'string', short: 'n' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const output = v.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError(`--output must be text or json, not "${output}"`);
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
    output,
    namespace: v.namespace ?? 'default',
    config,
  };
}

export interface Group {
  uses: ImageUse[];
  /** the pod spec the uses come from; none for images named on the command line */
  site?: PodSpecSite;
}

/** The image uses of the arguments and manifests, grouped by the object (pod spec) they belong to. */
export function collectGroups(args: CheckArgs, stdin: () => string): Group[] {
  const groups: Group[] = [];
  const images: ImageUse[] = args.images.map((image, i) => ({
    object: { kind: 'Image' },
    container: '',
    field: `argument ${i + 1}`,
    image,
  }));
  if (images.length) groups.push({ uses: images });
  for (const { object } of readManifests(args.files, stdin)) {
    const site = podSpecSite(object);
    if (!site) continue;
    const uses = imageUsesOf(site);
    if (uses.length) groups.push({ uses, site });
  }
  return groups;
}

function offlineFindings(uses: ImageUse[]): Finding[] {
  return uses.map((u) => {
    const parsed = parseImage(u.image);
    if (!parsed.ok) {
      const text = explain({ reason: 'invalid-reference', image: u.image, detail: parsed.error });
      return { ...u, reference: '', verdict: 'fail', reason: 'invalid-reference', ...text, evidence: [parsed.error] };
    }
    const text = explain({
      reason: 'available',
      image: u.image,
      detail: 'reference is valid; --offline: registry not asked',
    });
    return { ...u, reference: parsed.ref.pullRef, verdict: 'ok', reason: 'available', ...text, evidence: [] };
  });
}

export async function runCheck(argv: string[], io: CliIO): Promise<number> {
  let args: CheckArgs | 'help';
  let groups: Group[];
  let keyring: Keyring;
  let caPems: string[];
  let cluster: ReturnType<typeof loadKubeConfig> = null;
  try {
    args = parseCheckArgs(argv, io.env);
    if (args === 'help') {
      io.stdout(CHECK_USAGE);
      return 0;
    }
    groups = collectGroups(args, io.stdin);
    keyring = args.dockerConfigs.length ? keyringFromFiles(args.dockerConfigs) : new Keyring();
    caPems = readCaFiles(args.config.registry.caFiles);
    if (!args.offline)
      cluster = loadKubeConfig({
        ...(args.config.cluster.kubeconfig ? { kubeconfig: args.config.cluster.kubeconfig } : {}),
        env: io.env,
      });
  } catch (err) {
    if (
      err instanceof UsageError ||
      err instanceof InputError ||
      err instanceof ConfigError ||
      err instanceof CredentialFileError ||
      err instanceof KubeConfigError
    ) {
      io.stderr(`pullguard check: ${err.message}\n`);
      if (err instanceof UsageError) io.stderr('Run "pullguard check --help" for usage.\n');
      return 2;
    }
    throw err;
  }

  let findings: Finding[];
  if (args.offline) {
    findings = offlineFindings(groups.flatMap((g) => g.uses));
  } else {
    if (!cluster && args.output === 'text')
      io.stderr(
        'pullguard check: no cluster (no --kubeconfig or KUBECONFIG): checking with docker config files only\n',
      );
    const engine = new Preflight(args.config, caPems);
    try {
      findings = cluster
        ? await checkInCluster(engine, groups, keyring, args, cluster.kc)
        : await checkWithFiles(engine, groups, keyring, args);
    } finally {
      await engine.close();
    }
  }
  if (args.strict) findings = findings.map((f) => (f.verdict === 'risk' ? { ...f, verdict: 'fail' } : f));
  io.stdout(args.output === 'json' ? toJson(findings) : toText(findings, io.isTTY && !io.env.NO_COLOR));
  return findings.some((f) => f.verdict === 'fail') ? 1 : 0;
}

/**
 * Without a cluster, the docker config files stand for the pods' pull secrets. A manifest that names
 * secrets while none were given is checked with that said: a denial then is our uncertainty.
 */
async function checkWithFiles(
  engine: Preflight,
  groups: Group[],
  keyring: Keyring,
  args: CheckArgs,
): Promise<Finding[]> {
  const results = await Promise.all(
    groups.map((group) => {
      const named = group.site ? pullSecretNames(group.site.spec) : [];
      const credentials: CredentialContext = {
        keyrings: [keyring],
        scope: args.dockerConfigs.length
          ? 'the docker config files given'
          : 'the command line (no --docker-config given)',
        unreadSecrets: named.length > 0 && !args.dockerConfigs.length ? named : [],
      };
      return engine.check(group.uses, { credentials, platforms: args.platforms });
    }),
  );
  return results.flat();
}

/** With a cluster: the same keyring the webhook builds (pod or ServiceAccount secrets, then the files as node credentials), and the nodes' platforms. */
async function checkInCluster(
  engine: Preflight,
  groups: Group[],
  keyring: Keyring,
  args: CheckArgs,
  kc: KubeConfig,
): Promise<Finding[]> {
  const reader = new ClusterReader(kc, {
    cacheTtlMs: args.config.cluster.cacheTtl,
    requestTimeoutMs: Math.floor(args.config.deadline / 2),
  });
  const sources = new PodCredentials(reader, args.dockerConfigs.length ? keyring : null);
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
      return engine.check(group.uses, { credentials, platforms });
    }),
  );
  return results.flat();
}
