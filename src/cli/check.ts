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
import { imageUsesOf, podSpecSite, pullSecretNames } from '../workload/images.ts';
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

export function registryOverrides(values: { 'insecure-registry'?: string[]; 'registry-ca'?: string[]; timeout?: string; platform?: string[] }): Record<string, unknown> {
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
  if (values.platform?.length) out.platforms = values.platform.flatMap((p) => p.split(',')).map((p) => p.trim()).filter(Boolean);
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
  const config = loadConfig({ ...(v.config ? { file: v.config } : {}), env, flags: registryOverrides(v) });
  return {
    images: parsed.positionals,
    files: v.filename ?? [],
    dockerConfigs: v['docker-config'] ?? [],
    platforms: parsePlatforms(config.platforms),
    offline: Boolean(v.offline),
    strict: Boolean(v.strict),
    output,
    config,
  };
}

/** The image uses of the arguments and manifests, with the pull secrets each object names. */
export function collectUses(args: CheckArgs, stdin: () => string): { uses: ImageUse[]; secretsByObject: Map<ImageUse['object'], string[]> } {
  const uses: ImageUse[] = args.images.map((image, i) => ({ object: { kind: 'Image' }, container: '', field: `argument ${i + 1}`, image }));
  const secretsByObject = new Map<ImageUse['object'], string[]>();
  for (const { object } of readManifests(args.files, stdin)) {
    const site = podSpecSite(object);
    if (!site) continue;
    const found = imageUsesOf(site);
    if (found[0]) secretsByObject.set(found[0].object, pullSecretNames(site.spec));
    uses.push(...found);
  }
  return { uses, secretsByObject };
}

function offlineFindings(uses: ImageUse[]): Finding[] {
  return uses.map((u) => {
    const parsed = parseImage(u.image);
    if (!parsed.ok) {
      const text = explain({ reason: 'invalid-reference', image: u.image, detail: parsed.error });
      return { ...u, reference: '', verdict: 'fail', reason: 'invalid-reference', ...text, evidence: [parsed.error] };
    }
    const text = explain({ reason: 'available', image: u.image, detail: 'reference is valid; --offline: registry not asked' });
    return { ...u, reference: parsed.ref.pullRef, verdict: 'ok', reason: 'available', ...text, evidence: [] };
  });
}

export async function runCheck(argv: string[], io: CliIO): Promise<number> {
  let args: CheckArgs | 'help';
  let uses: ImageUse[];
  let secretsByObject: Map<ImageUse['object'], string[]>;
  let keyring: Keyring;
  let caPems: string[];
  try {
    args = parseCheckArgs(argv, io.env);
    if (args === 'help') {
      io.stdout(CHECK_USAGE);
      return 0;
    }
    ({ uses, secretsByObject } = collectUses(args, io.stdin));
    keyring = args.dockerConfigs.length ? keyringFromFiles(args.dockerConfigs) : new Keyring();
    caPems = readCaFiles(args.config.registry.caFiles);
  } catch (err) {
    if (err instanceof UsageError || err instanceof InputError || err instanceof ConfigError || err instanceof CredentialFileError) {
      io.stderr(`pullguard check: ${err.message}\n`);
      if (err instanceof UsageError) io.stderr('Run "pullguard check --help" for usage.\n');
      return 2;
    }
    throw err;
  }

  let findings: Finding[];
  if (args.offline) {
    findings = offlineFindings(uses);
  } else {
    const engine = new Preflight(args.config, caPems);
    try {
      findings = await checkByObject(engine, uses, secretsByObject, keyring, args);
    } finally {
      await engine.close();
    }
  }
  if (args.strict) findings = findings.map((f) => (f.verdict === 'risk' ? { ...f, verdict: 'fail' } : f));
  io.stdout(args.output === 'json' ? toJson(findings) : toText(findings, io.isTTY && !io.env.NO_COLOR));
  return findings.some((f) => f.verdict === 'fail') ? 1 : 0;
}

/** Objects that name pull secrets the CLI cannot read are checked with that said in their findings. */
async function checkByObject(engine: Preflight, uses: ImageUse[], secretsByObject: Map<ImageUse['object'], string[]>, keyring: Keyring, args: CheckArgs): Promise<Finding[]> {
  const groups = new Map<ImageUse['object'], ImageUse[]>();
  for (const u of uses) groups.set(u.object, [...(groups.get(u.object) ?? []), u]);
  const results = await Promise.all(
    [...groups].map(([object, group]) => {
      const named = secretsByObject.get(object) ?? [];
      const credentials: CredentialContext = {
        keyrings: [keyring],
        scope: args.dockerConfigs.length ? `the docker config files given` : 'the command line (no --docker-config given)',
        secretNames: named,
        // Without a cluster the secrets a manifest names are unknown: a denial then is our uncertainty.
        unreadSecrets: named.length > 0 && !args.dockerConfigs.length ? named : [],
      };
      return engine.check(group, { credentials, platforms: args.platforms });
    }),
  );
  const byUse = new Map<ImageUse, Finding>();
  [...groups.values()].forEach((group, i) => group.forEach((u, j) => byUse.set(u, results[i]![j]!)));
  return uses.map((u) => byUse.get(u)!);
}
