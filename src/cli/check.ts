// `pullguard check`: the engine on images and manifests, for CI pipelines and people.
// Exit 0: every image verified (or only risks); 1: an image would fail (or, with --strict, might);
// 2: bad usage or input; 3: nothing failed but some image could not be verified.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { BuiltPodCheck } from '../app/build.ts';
import type { Group } from '../app/check.ts';
import { parsePlatforms } from '../app/platforms.ts';
import type { Config } from '../config/schema.ts';
import { Deadline } from '../deadline.ts';
import { UsageError } from '../errors.ts';
import type { Finding, ImageUse } from '../findings.ts';
import { oneLine } from '../text.ts';
import type { Platform } from '../platform/index.ts';
import { systemErrorText } from '../system-errors.ts';
import { imageFieldProblems, imageUsesOf, podSpecSite } from '../workload/images.ts';
import { loadCheckConfig } from '../config/quick.ts';
import { exitStatusFor } from './errors.ts';
import { REGISTRY_FLAGS, registryOverrides, type CliIO } from './flags.ts';
import { InputError } from './input.ts';
import { readManifests, type SourcedObject } from './manifests.ts';
import { offlineFindings } from './offline.ts';
import { parseOutputs, render, type OutputTarget } from './output/index.ts';
import { Progress } from './progress.ts';
import { buildReport, objectText } from './report.ts';
import { version } from './version.ts';

export const CHECK_USAGE = `Usage: pullguard check [IMAGE...] [-f FILE|DIR|-]... [options]

Checks that every image of the given images and manifests can be pulled, as the kubelet would.

Options:
  -f, --filename FILE|DIR|-     manifests (YAML or JSON, multi-document, List kinds); - reads stdin
      --docker-config FILE      docker config.json or .dockercfg with pull credentials (repeatable); without
                                it, your own stores: REGISTRY_AUTH_FILE, podman's auth.json, docker's
                                config.json and their credential helpers (see README)
      --platform OS/ARCH[/VAR]  platforms the pods may run on, comma-separated (repeatable)
      --insecure-registry HOST  registry reached without TLS verification or over plain HTTP (repeatable)
      --hosts-dir DIR           the nodes' containerd hosts directory (certs.d: <host>/hosts.toml mirrors)
      --registries-conf FILE    the nodes' CRI-O registries.conf (mirrors, rewrites, blocked, short names)
      --registries-conf-dir DIR its registries.conf.d drop-ins
      --registry-ca FILE        extra CA certificate (PEM) trusted for registries (repeatable)
      --image-credential-provider-config FILE
                                the nodes' kubelet CredentialProviderConfig: its plugins open the images
                                they serve (ECR, GCR/Artifact Registry, ACR, ...)
      --image-credential-provider-bin-dir DIR
                                where those plugins are
      --request-service-account-tokens
                                run plugins with tokenAttributes with a short-lived token of the pod's
                                ServiceAccount (TokenRequest), as the kubelet does; needs a cluster
      --timeout DURATION        overall deadline, e.g. 8s or 8000 (milliseconds; default from config: 8s)
      --no-verify-layers        check the manifests only, not each platform's config and layer blobs
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

export async function parseCheckArgs(argv: string[], env: NodeJS.ProcessEnv): Promise<CheckArgs | 'help' | 'version'> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...REGISTRY_FLAGS,
        filename: { type: 'string', short: 'f', multiple: true },
        offline: { type: 'boolean' },
        'no-verify-layers': { type: 'boolean' },
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
  if (v['no-verify-layers']) (flags.registry as Record<string, unknown>).verifyLayers = false;
  const config = await loadCheckConfig({ ...(v.config ? { file: v.config } : {}), env, flags });
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
  let built: BuiltPodCheck | null = null;
  let deadline: Deadline | undefined;
  try {
    args = await parseCheckArgs(argv, io.env);
    if (args === 'help') {
      io.stdout(CHECK_USAGE);
      return 0;
    }
    if (args === 'version') {
      io.stdout(`pullguard ${version()}\n`);
      return 0;
    }
    // --timeout is one deadline for the whole command, the wait for the nodes included.
    deadline = Deadline.after(args.config.deadline);
    groups = collectGroups(args, io.stdin);
    if (!args.offline) {
      // The engine and the cluster client load only when something will be asked of them.
      const { prepareCheck } = await import('../app/check.ts');
      built = await prepareCheck(args.config, {
        env: io.env,
        dockerConfigs: args.dockerConfigs,
        platforms: args.platforms,
        ...(args.context ? { context: args.context } : {}),
      });
    }
  } catch (err) {
    return exitStatusFor('check', err, io);
  }

  let findings: Finding[];
  if (!built) {
    findings = offlineFindings(
      groups.flatMap((g) => g.uses),
      args.platforms,
    );
  } else {
    const files = built.stores?.files ?? [];
    if (!built.cluster && !args.quiet)
      io.stderr(
        `pullguard check: no cluster (no --kubeconfig or KUBECONFIG): checking with docker config files only (${files.length ? files.join(', ') : 'none found'})\n`,
      );
    for (const s of built.stores?.skipped ?? []) io.stderr(`pullguard check: skipped ${s}\n`);
    for (const w of built.warnings) io.stderr(`pullguard check: ${oneLine(w)}\n`);
    const uses = groups.reduce((n, g) => n + g.uses.length, 0);
    const progress = io.stderrIsTTY ? new Progress(uses, io.stderr) : undefined;
    progress?.start();
    const onSettled = progress ? () => progress.tick() : undefined;
    const { checkGroups } = await import('../app/check.ts');
    try {
      findings = await checkGroups(built, groups, {
        namespace: args.namespace,
        deadline: deadline!,
        ...(onSettled ? { onSettled } : {}),
      });
    } finally {
      progress?.stop();
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
      const why = systemErrorText(err, 'write');
      io.stderr(`pullguard check: ${oneLine(`cannot write ${target.path}: ${why} (create it, or write elsewhere)`)}\n`);
      return 2;
    }
  }
  return report.exitCode;
}
