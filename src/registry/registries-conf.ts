// CRI-O's and podman's registries.conf (containers-registries.conf(5), version 2, and v1's three
// lists), with registries.conf.d drop-ins in name order, read as containers/image's sysregistriesv2
// does: [[registry]] by its longest matching prefix (`*.example.com` for subdomains), the location
// that rewrites it, `insecure`, `blocked`, [[registry.mirror]] in order with `pull-from-mirror` and
// `mirror-by-digest-only`; `unqualified-search-registries`, `short-name-mode` and [aliases] for
// names without a registry. Read whole at start-up, so a mistake stops it.

import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SetupError } from '../errors.ts';
import { systemErrorText } from '../system-errors.ts';
import { defaultEndpoint, type RegistryEndpoint } from './endpoint.ts';
import type { Endpoint, Route, Routes } from './routes.ts';
import { TomlFile, type TomlTable } from './toml-file.ts';

export type PullFromMirror = '' | 'all' | 'digest-only' | 'tag-only';
export type ShortNameMode = 'enforcing' | 'permissive' | 'disabled';

export interface ConfEndpoint {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface ConfRegistry extends ConfEndpoint {
  prefix: string;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: ConfEndpoint[];
  /** the file it came from, for people */
  source: string;
}

/** One place a reference is pulled from: the endpoint and the reference rewritten for it. */
export interface PullSource {
  endpoint: ConfEndpoint;
  mirror: boolean;
  reference: string;
}

const ROOT_KEYS = [
  'registry',
  'unqualified-search-registries',
  'short-name-mode',
  'aliases',
  'credential-helpers',
  'additional-layer-store-auth-helper',
  'registries',
];
const REGISTRY_KEYS = [
  'prefix',
  'location',
  'insecure',
  'blocked',
  'mirror',
  'mirror-by-digest-only',
  'pull-from-mirror',
];
const MIRROR_KEYS = ['location', 'insecure', 'pull-from-mirror'];
const DOMAIN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$/;
const RUNTIME = 'containers-registries.conf';

/** What one file sets; unset fields leave the earlier files' values (updateWithConfigurationFrom). */
interface Parsed {
  registries: ConfRegistry[];
  search?: string[];
  searchOrigin?: string;
  shortNameMode?: ShortNameMode;
  aliases: Map<string, string>;
}

export class RegistriesConf {
  /** sorted by prefix, one per prefix (the first in its file, the last file's across drop-ins) */
  readonly registries: ConfRegistry[];
  readonly search: string[];
  readonly searchOrigin: string | undefined;
  /** containers/image's default when no file sets it is enforcing */
  readonly shortNameMode: ShortNameMode;
  readonly aliases: ReadonlyMap<string, string>;
  readonly warnings: string[];

  /** Each file in the order the runtime reads them: later files' values win, [[registry]] merged by prefix. */
  constructor(files: readonly TomlFile[], warnings: string[]) {
    this.warnings = warnings;
    const merged = new Map<string, ConfRegistry>();
    let search: string[] | undefined;
    let origin: string | undefined;
    let mode: ShortNameMode | undefined;
    const aliases = new Map<string, string>();
    for (const f of files) {
      const p = parseFile(f);
      for (const r of p.registries) merged.set(r.prefix, r);
      if (p.search) {
        search = p.search;
        origin = p.searchOrigin;
      }
      if (p.shortNameMode) mode = p.shortNameMode;
      // an empty value in a later file removes the alias
      for (const [k, v] of p.aliases) v ? aliases.set(k, v) : aliases.delete(k);
    }
    this.registries = [...merged.keys()].sort().map((k) => merged.get(k)!);
    this.search = search ?? [];
    this.searchOrigin = origin;
    this.shortNameMode = mode ?? 'enforcing';
    this.aliases = aliases;
  }

  /** Files given as text (tests): `[{file, text}]` in reading order. */
  static parse(files: { file: string; text: string }[]): RegistriesConf {
    const warnings: string[] = [];
    return new RegistriesConf(
      files.map((f) => new TomlFile(f.file, f.text, warnings)),
      warnings,
    );
  }

  /** registries.conf and its drop-in directory (`*.conf` directly in it, in name order) as the runtime reads them. */
  static load(file: string | undefined, dir: string | undefined): RegistriesConf {
    const paths: string[] = [];
    if (file) paths.push(file);
    if (dir) {
      let names: string[];
      try {
        if (!statSync(dir).isDirectory()) throw new SetupError(`registries.conf.d ${dir}: not a directory`);
        names = readdirSync(dir);
      } catch (err) {
        if (err instanceof SetupError) throw err;
        throw new SetupError(
          `registries.conf.d ${dir}: ${systemErrorText(err, 'read')} (check --registries-conf-dir or registry.registriesConfDir)`,
        );
      }
      for (const n of names.sort()) {
        const p = join(dir, n);
        if (n.endsWith('.conf') && statSync(p).isFile()) paths.push(p);
      }
    }
    const warnings: string[] = [];
    return new RegistriesConf(
      paths.map((p) => TomlFile.read(p, warnings)),
      warnings,
    );
  }

  /** The registry with the longest prefix matching `ref` (a name, or a name with tag or digest). */
  find(ref: string): ConfRegistry | undefined {
    let best: ConfRegistry | undefined;
    for (const r of this.registries)
      if (refMatchingPrefix(ref, r.prefix) !== -1 && r.prefix.length > (best?.prefix.length ?? 0)) best = r;
    return best;
  }

  /**
   * For a short name (no registry in it): the references the runtime would try, in order, or why
   * it refuses (containers/image shortnames.Resolve, as a runtime without a terminal runs it).
   */
  resolveShortName(name: string): { candidates: string[]; why: string } | { error: string } {
    const { repo, suffix } = splitShort(name);
    const alias = this.aliases.get(repo);
    if (alias) return { candidates: [alias + suffix], why: `the alias ${repo} = "${alias}" of registries.conf` };
    if (!this.search.length)
      return {
        error: `short-name "${name}" did not resolve to an alias and no unqualified-search registries are defined${this.searchOrigin ? ` in "${this.searchOrigin}"` : ''}`,
      };
    const candidates = this.search.map((reg) => normalizedName(`${reg}/${repo}`) + suffix);
    if (candidates.length > 1 && this.shortNameMode === 'enforcing')
      return {
        error: `short-name resolution enforced but cannot prompt without a TTY: "${name}" could be any of ${candidates.map((c) => `"${c}"`).join(', ')}`,
      };
    return {
      candidates,
      why: `unqualified-search-registries ${JSON.stringify(this.search)}${candidates.length > 1 ? `, tried in order (short-name-mode ${this.shortNameMode})` : ''}`,
    };
  }
}

/** containers/image's refMatchingPrefix: the length of the match, or -1. */
export function refMatchingPrefix(ref: string, prefix: string): number {
  if (prefix.startsWith('*.')) return refMatchingSubdomainPrefix(ref, prefix);
  if (ref.length < prefix.length) return -1;
  if (ref.length === prefix.length) return ref === prefix ? prefix.length : -1;
  if (!ref.startsWith(prefix)) return -1;
  // ':' lets example.com:5000 match example.com, as upstream does (and says not to rely on)
  return ':/@'.includes(ref[prefix.length]!) ? prefix.length : -1;
}

/** `*.example.com` matches the host of `sub.example.com/…` (any depth), not a path. */
export function refMatchingSubdomainPrefix(ref: string, prefix: string): number {
  const rest = prefix.slice(1);
  let index = ref.indexOf(rest);
  if (index === -1) return -1;
  if (ref.slice(0, index).includes('/')) return -1;
  index += rest.length;
  if (index === ref.length) return index;
  return ':/@'.includes(ref[index]!) ? index : -1;
}

/** The sources a reference is pulled from, mirrors first (PullSourcesFromReference). */
export function pullSources(reg: ConfRegistry, ref: string, byDigest: boolean): PullSource[] {
  const endpoints: { e: ConfEndpoint; mirror: boolean }[] = [];
  if (reg.mirrorByDigestOnly) {
    if (byDigest) for (const m of reg.mirrors) endpoints.push({ e: m, mirror: true });
  } else
    for (const m of reg.mirrors) {
      if (m.pullFromMirror === 'digest-only' && !byDigest) continue;
      if (m.pullFromMirror === 'tag-only' && byDigest) continue;
      endpoints.push({ e: m, mirror: true });
    }
  endpoints.push({ e: reg, mirror: false });
  const n = refMatchingPrefix(ref, reg.prefix);
  return endpoints.map(({ e, mirror }) => ({
    endpoint: e,
    mirror,
    // an empty location (a *.example.com prefix) keeps the reference as it is
    reference: e.location ? e.location + ref.slice(n) : ref,
  }));
}

/** The routes CRI-O's registries.conf gives: its mirrors, then the (rewritten) location; blocked is a refusal. */
export class RegistriesConfRoutes implements Routes {
  readonly conf: RegistriesConf;
  constructor(conf: RegistriesConf) {
    this.conf = conf;
  }
  get warnings(): readonly string[] {
    return this.conf.warnings;
  }
  /**
   * The logical name's registry gives the sources (its mirrors, then its location); each source is
   * then judged by the registry its own, rewritten, reference falls under, as containers/image's
   * docker client does: that one's `blocked` refuses the source and its `insecure` applies.
   */
  route(domain: string, repository: string, byDigest: boolean): Route {
    const name = repository ? `${domain}/${repository}` : domain;
    const reg = this.conf.find(name);
    const sources: PullSource[] = reg
      ? pullSources(reg, name, byDigest)
      : [{ endpoint: { location: '', insecure: false, pullFromMirror: '' }, mirror: false, reference: name }];
    const endpoints: Endpoint[] = [];
    const refused: string[] = [];
    for (const s of sources) {
      const physical = this.conf.find(s.reference);
      if (physical?.blocked) {
        refused.push(`registry ${physical.prefix} is blocked in ${physical.source}`);
        continue;
      }
      const e = endpointOf(s, repository);
      if (physical?.insecure) e.insecure = true;
      endpoints.push(e);
    }
    if (!endpoints.length)
      return { endpoints, blocked: `${refused.join('; ')}: the nodes' CRI-O refuses to pull ${name}` };
    return { endpoints };
  }
  shortName(name: string): { candidates: string[]; why: string } | { error: string } {
    return this.conf.resolveShortName(name);
  }
  endpoints(): RegistryEndpoint[] {
    const out: RegistryEndpoint[] = [];
    for (const r of this.conf.registries)
      for (const e of [...r.mirrors, r])
        if (e.location)
          out.push({ ...defaultEndpoint(domainOf(e.location)), ...(e.insecure ? { insecure: true } : {}) });
    return out;
  }
}

function endpointOf(s: PullSource, repository: string): Endpoint {
  const domain = domainOf(s.reference);
  const rest = s.reference.slice(domain.length + 1);
  const e: Endpoint = { ...defaultEndpoint(domain), upstream: !s.mirror };
  if (s.endpoint.insecure) e.insecure = true;
  // docker.io names its official images library/…, as the reference parser does
  const path = domain === 'docker.io' && rest && !rest.includes('/') ? `library/${rest}` : rest;
  if (path && path !== repository) e.repository = path;
  return e;
}

/** The registry part of a location or reference (everything before the first '/'). */
function domainOf(location: string): string {
  const i = location.indexOf('/');
  return i === -1 ? location : location.slice(0, i);
}

/** `docker.io/app` as the reference parser normalizes it: `docker.io/library/app`. */
function normalizedName(name: string): string {
  const domain = domainOf(name);
  const rest = name.slice(domain.length + 1);
  return domain === 'docker.io' && !rest.includes('/') ? `docker.io/library/${rest}` : name;
}

/** A short name without its tag or digest (aliases are looked up so), and what to append again. */
function splitShort(name: string): { repo: string; suffix: string } {
  const at = name.indexOf('@');
  const beforeDigest = at === -1 ? name : name.slice(0, at);
  const digest = at === -1 ? '' : name.slice(at);
  const colon = beforeDigest.lastIndexOf(':');
  const tag = colon > beforeDigest.lastIndexOf('/') && colon !== -1 ? beforeDigest.slice(colon) : '';
  return { repo: beforeDigest.slice(0, beforeDigest.length - tag.length), suffix: tag + digest };
}

/** containers/image's parseLocation: trailing slashes off, no URL scheme. */
function location(toml: TomlFile, key: string, value: string): string {
  const trimmed = value.replace(/\/+$/, '');
  if (/^https?:\/\//.test(trimmed))
    throw toml.error(key, `invalid location '${value}': URI schemes are not supported (write host[:port][/path])`);
  return trimmed;
}

function parseFile(toml: TomlFile): Parsed {
  const root = toml.data;
  toml.unknownKeys(root, ROOT_KEYS, '', RUNTIME);
  const out: Parsed = { registries: [], aliases: new Map() };
  const v1 = toml.table(root, 'registries');
  const v2Set = ['registry', 'unqualified-search-registries', 'short-name-mode', 'aliases'].some((k) => k in root);
  if (v1) {
    if (v2Set) throw toml.error('registries', 'mixing sysregistry v1/v2 is not supported: write the v2 keys only');
    return parseV1(toml, v1, out);
  }
  toml.tables(root, 'registry').forEach((t, i) => {
    const key = `registry[${i}].`;
    toml.unknownKeys(t, REGISTRY_KEYS, key, `${RUNTIME} [[registry]]`);
    const loc = location(toml, `${key}location`, toml.string(t, 'location', key) ?? '');
    let prefix = toml.string(t, 'prefix', key) ?? '';
    if (!prefix) {
      if (!loc) throw toml.error(`${key}location`, 'invalid condition: both location and prefix are unset');
      prefix = loc;
    } else {
      prefix = location(toml, `${key}prefix`, prefix);
      if (!prefix.startsWith('*.') && !loc)
        throw toml.error(
          `${key}location`,
          'invalid condition: location is unset and prefix is not in the format: *.example.com',
        );
      if (prefix.startsWith('*.') && /[/@:]/.test(prefix))
        throw toml.error(
          `${key}prefix`,
          `Wildcarded prefix should be in the format: *.example.com. Current prefix "${prefix}" is incorrectly formatted`,
        );
    }
    if (toml.string(t, 'pull-from-mirror', key))
      throw toml.error(
        `${key}pull-from-mirror`,
        `pull-from-mirror must not be set for a non-mirror registry "${prefix}"`,
      );
    const byDigestOnly = toml.bool(t, 'mirror-by-digest-only', key) ?? false;
    const mirrors = toml.tables(t, 'mirror', key).map((m, j) => {
      const mk = `${key}mirror[${j}].`;
      toml.unknownKeys(m, MIRROR_KEYS, mk, `${RUNTIME} [[registry.mirror]]`);
      const ml = location(toml, `${mk}location`, toml.string(m, 'location', mk) ?? '');
      if (!ml) throw toml.error(`${mk}location`, 'invalid condition: mirror location is unset');
      const pfm = toml.string(m, 'pull-from-mirror', mk) ?? '';
      if (byDigestOnly && pfm)
        throw toml.error(
          `${mk}pull-from-mirror`,
          `cannot set mirror usage mirror-by-digest-only for the registry ("${prefix}") and pull-from-mirror for per-mirror ("${ml}") at the same time`,
        );
      if (pfm && pfm !== 'all' && pfm !== 'digest-only' && pfm !== 'tag-only')
        throw toml.error(
          `${mk}pull-from-mirror`,
          `unsupported pull-from-mirror value "${pfm}" for mirror "${ml}" (all, digest-only, tag-only)`,
        );
      return { location: ml, insecure: toml.bool(m, 'insecure', mk) ?? false, pullFromMirror: pfm as PullFromMirror };
    });
    out.registries.push({
      prefix,
      location: loc,
      insecure: toml.bool(t, 'insecure', key) ?? false,
      blocked: toml.bool(t, 'blocked', key) ?? false,
      mirrorByDigestOnly: byDigestOnly,
      pullFromMirror: '',
      mirrors,
      source: toml.file,
    });
  });
  // the same location twice must agree on insecure and blocked
  for (const r of out.registries)
    for (const o of out.registries) {
      const same = (r.location || r.prefix) === (o.location || o.prefix);
      if (same && r.insecure !== o.insecure)
        throw toml.error(
          'insecure',
          `registry '${r.location}' is defined multiple times with conflicting 'insecure' setting`,
        );
      if (same && r.blocked !== o.blocked)
        throw toml.error(
          'blocked',
          `registry '${r.location}' is defined multiple times with conflicting 'blocked' setting`,
        );
    }
  // the first of a prefix wins within a file
  const seen = new Set<string>();
  out.registries = out.registries.filter((r) => !seen.has(r.prefix) && seen.add(r.prefix));
  const search = toml.strings(root, 'unqualified-search-registries');
  if (search) {
    out.search = search.map((s) => {
      const reg = location(toml, 'unqualified-search-registries', s);
      if (!DOMAIN.test(reg))
        throw toml.error('unqualified-search-registries', `Invalid unqualified-search-registries entry "${reg}"`);
      return reg;
    });
    out.searchOrigin = toml.file;
  }
  const mode = toml.string(root, 'short-name-mode');
  if (mode !== undefined && mode !== '') {
    if (mode !== 'enforcing' && mode !== 'permissive' && mode !== 'disabled')
      throw toml.error('short-name-mode', `invalid short-name mode: "${mode}" (enforcing, permissive, disabled)`);
    out.shortNameMode = mode;
  }
  const aliases = toml.table(root, 'aliases');
  for (const [k, v] of Object.entries(aliases ?? {})) {
    if (typeof v !== 'string') throw toml.error(`aliases.${k}`, 'must be a fully qualified image name');
    if (!v) {
      out.aliases.set(k, '');
      continue;
    }
    if (k.includes('/') ? k.split('/')[0]!.includes('.') : false)
      throw toml.error(`aliases.${k}`, `invalid short name "${k}": must not name a registry`);
    if (/[:@]/.test(v.slice(v.indexOf('/'))))
      throw toml.error(`aliases.${k}`, `invalid alias value "${v}": must not have a tag or digest`);
    out.aliases.set(k, normalizedName(v));
  }
  return out;
}

/** v1's [registries.search|insecure|block] lists, as ConvertToV2 makes them v2 registries. */
function parseV1(toml: TomlFile, v1: TomlTable, out: Parsed): Parsed {
  const regs = new Map<string, ConfRegistry>();
  const get = (key: string, loc: string) => {
    const l = location(toml, key, loc);
    if (!l) throw toml.error(key, 'invalid location: cannot be empty');
    let r = regs.get(l);
    if (!r) {
      r = {
        prefix: l,
        location: l,
        insecure: false,
        blocked: false,
        mirrorByDigestOnly: false,
        pullFromMirror: '',
        mirrors: [],
        source: toml.file,
      };
      regs.set(l, r);
    }
    return r;
  };
  const list = (name: string) => {
    const t = toml.table(v1, name, 'registries.');
    return t ? (toml.strings(t, 'registries', `registries.${name}.`) ?? []) : undefined;
  };
  for (const b of list('block') ?? []) get('registries.block.registries', b).blocked = true;
  for (const i of list('insecure') ?? []) get('registries.insecure.registries', i).insecure = true;
  const search = list('search');
  if (search) {
    out.search = search.map((s) => location(toml, 'registries.search.registries', s));
    out.searchOrigin = toml.file;
  }
  out.registries = [...regs.values()];
  return out;
}
