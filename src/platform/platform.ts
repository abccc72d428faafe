// The platform value, its OCI JSON form, and normalisation as containerd/platforms does it.
// Canonical names matter: the matchers compare normalised strings, so "aarch64" must become "arm64"
// before anything is compared.

import { PullguardError } from '../errors.ts';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  osVersion?: string;
  osFeatures?: string[];
}

/** The OCI image-index spelling of a platform (`os.version`, `os.features`). */
export interface OCIPlatform {
  os?: string;
  architecture?: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export class PlatformError extends PullguardError {
  readonly code = 'platform';
  readonly input: string;
  constructor(input: string, message: string) {
    super(message);
    this.input = input;
  }
}

/**
 * containerd fills gaps from the machine it runs on (runtime.GOOS/GOARCH). pullguard runs on no node
 * in particular, so the "host" is an explicit value; linux/amd64 is what most clusters run and what
 * the upstream vectors are resolved for.
 */
export const DEFAULT_HOST_PLATFORM: Readonly<Platform> = Object.freeze({ os: 'linux', architecture: 'amd64' });

/** Builds a Platform that omits empty optional fields, so equal platforms deep-compare equal. */
export function makePlatform(
  os: string,
  architecture: string,
  variant = '',
  osVersion = '',
  osFeatures: readonly string[] = [],
): Platform {
  const p: Platform = { os, architecture };
  if (variant !== '') p.variant = variant;
  if (osVersion !== '') p.osVersion = osVersion;
  if (osFeatures.length > 0) p.osFeatures = [...osFeatures];
  return p;
}

export function fromOCI(obj: unknown): Platform {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new PlatformError(String(obj), 'platform must be a JSON object');
  }
  const o = obj as Record<string, unknown>;
  const str = (key: string): string => {
    const v = o[key];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new PlatformError(JSON.stringify(obj), `platform field "${key}" must be a string`);
    return v;
  };
  let features: string[] = [];
  const rawFeatures = o['os.features'];
  if (rawFeatures !== undefined && rawFeatures !== null) {
    if (!Array.isArray(rawFeatures) || !rawFeatures.every((f) => typeof f === 'string')) {
      throw new PlatformError(JSON.stringify(obj), 'platform field "os.features" must be an array of strings');
    }
    features = rawFeatures as string[];
  }
  return makePlatform(str('os'), str('architecture'), str('variant'), str('os.version'), features);
}

export function toOCI(p: Platform): OCIPlatform {
  const o: OCIPlatform = { os: p.os, architecture: p.architecture };
  if (p.variant) o.variant = p.variant;
  if (p.osVersion) o['os.version'] = p.osVersion;
  if (p.osFeatures && p.osFeatures.length > 0) o['os.features'] = [...p.osFeatures];
  return o;
}

// GOOS and GOARCH values Go knows (go/build syslist); a one-word specifier is read as an OS if it is
// in the first list, else as an architecture if it is in the second.
const KNOWN_OS = new Set([
  'aix',
  'android',
  'darwin',
  'dragonfly',
  'freebsd',
  'hurd',
  'illumos',
  'ios',
  'js',
  'linux',
  'nacl',
  'netbsd',
  'openbsd',
  'plan9',
  'solaris',
  'windows',
  'zos',
]);
const KNOWN_ARCH = new Set([
  '386',
  'amd64',
  'amd64p32',
  'arm',
  'armbe',
  'arm64',
  'arm64be',
  'ppc64',
  'ppc64le',
  'loong64',
  'mips',
  'mipsle',
  'mips64',
  'mips64le',
  'mips64p32',
  'mips64p32le',
  'ppc',
  'riscv',
  'riscv64',
  's390',
  's390x',
  'sparc',
  'sparc64',
  'wasm',
]);

export function isKnownOS(os: string): boolean {
  return KNOWN_OS.has(os);
}

export function isKnownArch(arch: string): boolean {
  return KNOWN_ARCH.has(arch);
}

export function normalizeOS(os: string, host: Platform = DEFAULT_HOST_PLATFORM): string {
  if (os === '') return host.os;
  const lower = os.toLowerCase();
  return lower === 'macos' ? 'darwin' : lower;
}

/**
 * Canonical architecture and variant. The defaults are folded in both directions on purpose:
 * amd64/v1 and arm64/v8 lose their variant, plain arm gains v7, so "arm" and "arm/v7" compare equal.
 */
export function normalizeArch(architecture: string, variant: string): [string, string] {
  const arch = architecture.toLowerCase();
  const v = variant.toLowerCase();
  switch (arch) {
    case 'i386':
      return ['386', ''];
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return ['amd64', v === 'v1' ? '' : v];
    case 'aarch64':
    case 'arm64':
      if (v === '8' || v === 'v8' || v === 'v8.0') return ['arm64', ''];
      if (v === '9' || v === '9.0' || v === 'v9.0') return ['arm64', 'v9'];
      return ['arm64', v];
    case 'armhf':
      return ['arm', 'v7'];
    case 'armel':
      return ['arm', 'v6'];
    case 'arm':
      if (v === '' || v === '7') return ['arm', 'v7'];
      if (v === '5' || v === '6' || v === '8') return ['arm', `v${v}`];
      return ['arm', v];
    default:
      return [arch, v];
  }
}

/**
 * Sorted, de-duplicated copy of the features (empty strings are kept, as upstream keeps them).
 * Plain string order: features are ASCII in practice, where it equals Go's byte order.
 */
export function sortedUniqueFeatures(features: readonly string[]): string[] {
  const sorted = [...features].sort();
  return sorted.filter((f, i) => i === 0 || f !== sorted[i - 1]);
}

/** Canonical form; `host.os` fills an empty OS, as containerd fills it with its own GOOS. */
export function normalize(p: Platform, host: Platform = DEFAULT_HOST_PLATFORM): Platform {
  const [architecture, variant] = normalizeArch(p.architecture, p.variant ?? '');
  return makePlatform(
    normalizeOS(p.os, host),
    architecture,
    variant,
    p.osVersion ?? '',
    sortedUniqueFeatures(p.osFeatures ?? []),
  );
}
