// Platform specifier strings: `os[(version[+feature]*)][/arch[/variant]]`, and back.
// Version and features are percent-encoded where their characters would collide with that syntax.

import {
  DEFAULT_HOST_PLATFORM,
  PlatformError,
  isKnownArch,
  isKnownOS,
  makePlatform,
  normalizeArch,
  normalizeOS,
  sortedUniqueFeatures,
  type Platform,
} from './platform.ts';

const OS_PART = /^(?<os>[A-Za-z0-9_-]+)(?:\((?<version>[A-Za-z0-9_.%-]*)(?<features>(?:\+[A-Za-z0-9_.%-]+)*)\))?$/;
const OTHER_PART = /^[A-Za-z0-9_.-]+$/;

/**
 * Parses a specifier as containerd does. A lone word is an OS if Go knows it (architecture taken
 * from `host`), else an architecture (OS taken from `host`); anything else is an error.
 */
export function parsePlatform(spec: string, host: Platform = DEFAULT_HOST_PLATFORM): Platform {
  const fail = (why: string): never => {
    throw new PlatformError(spec, `invalid platform ${JSON.stringify(spec)}: ${why}`);
  };
  if (spec.includes('*')) fail('wildcards are not supported');
  const parts = spec.split('/');
  if (parts.length > 3) fail('more than three components (os/arch/variant)');
  const [first = '', archPart, variantPart] = parts;

  const m = OS_PART.exec(first);
  if (!m?.groups) return fail(`${JSON.stringify(first)} is not an OS component of the form os[(version[+feature]*)]`);
  for (const part of parts.slice(1)) {
    if (!OTHER_PART.test(part)) fail(`${JSON.stringify(part)} must match ${OTHER_PART.source}`);
  }

  const os = normalizeOS(m.groups['os'] ?? '', host);
  const osVersion = decodeOption(spec, m.groups['version'] ?? '');
  // The features keep their written order here; only normalisation and formatting sort them.
  const osFeatures = (m.groups['features'] ?? '')
    .split('+')
    .slice(1)
    .map((raw) => decodeOption(spec, raw))
    .filter((f) => f !== '');

  if (archPart === undefined) {
    if (isKnownOS(os)) {
      const [hostArch, hostVariant] = normalizeArch(host.architecture, host.variant ?? '');
      // An arm host's variant is kept unless it is the default v7, which Parse spells as "".
      const variant = hostArch === 'arm' && hostVariant !== 'v7' ? hostVariant : '';
      return makePlatform(os, hostArch, variant, osVersion, osFeatures);
    }
    const [arch, variant] = normalizeArch(first, '');
    if (isKnownArch(arch)) {
      return makePlatform(host.os, arch, arch === 'arm' && variant === 'v7' ? '' : variant, osVersion, osFeatures);
    }
    return fail('unknown operating system or architecture');
  }

  if (variantPart === undefined) {
    const [arch, variant] = normalizeArch(archPart, '');
    return makePlatform(os, arch, arch === 'arm' && variant === 'v7' ? '' : variant, osVersion, osFeatures);
  }

  // An explicit variant is kept spelled out, so "linux/arm64/v8" stays distinct from "linux/arm64".
  const [arch, variant] = normalizeArch(archPart, variantPart);
  return makePlatform(os, arch, arch === 'arm64' && variant === '' ? 'v8' : variant, osVersion, osFeatures);
}

/** `os/arch[/variant]`, or "unknown" without an OS. */
export function format(p: Platform): string {
  if (p.os === '') return 'unknown';
  return joinPath(p.os, p.architecture, p.variant ?? '');
}

/** Like format, but with `(version+features)` after the OS when either is set. */
export function formatAll(p: Platform): string {
  if (p.os === '') return 'unknown';
  const version = encodeOption(p.osVersion ?? '');
  // Sorted and de-duplicated so that equal feature sets print alike; empty features say nothing.
  const features = sortedUniqueFeatures(p.osFeatures ?? [])
    .filter((f) => f !== '')
    .map(encodeOption)
    .join('+');
  let os = p.os;
  if (version !== '' || features !== '') os += `(${version}${features === '' ? '' : `+${features}`})`;
  return joinPath(os, p.architecture, p.variant ?? '');
}

const ENCODED: Record<string, string> = { '%': '%25', '+': '%2B', '(': '%28', ')': '%29', '/': '%2F' };

function encodeOption(value: string): string {
  return value.replace(/[%+()/]/g, (c) => ENCODED[c] ?? c);
}

/** Percent-decoding with Go url.PathUnescape's rules: every `%` needs two hex digits, `+` stays. */
function decodeOption(spec: string, value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c !== 0x25) {
      bytes.push(c); // the grammar admits ASCII only here
      continue;
    }
    const hex = value.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
      throw new PlatformError(
        spec,
        `invalid platform ${JSON.stringify(spec)}: bad escape ${JSON.stringify(value.slice(i, i + 3))}`,
      );
    }
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Go path.Join: empty elements dropped, then cleaned (no "//", ".", "..", trailing "/"). */
function joinPath(...elements: string[]): string {
  const joined = elements.filter((e) => e !== '').join('/');
  if (joined === '') return '';
  const rooted = joined.startsWith('/');
  const out: string[] = [];
  for (const seg of joined.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(seg);
  }
  const body = out.join('/');
  if (rooted) return `/${body}`;
  return body === '' ? '.' : body;
}
