// Which platforms a node accepts, and in which order of preference, with containerd's rules.
// containerd CRI filters an image index with Only(node platform); pullguard asks the same question
// before the pull happens.

import { DEFAULT_HOST_PLATFORM, makePlatform, normalize, type Platform } from './platform.ts';
import { windowsVersionMatcher } from './windows.ts';

export interface Matcher {
  match(p: Platform): boolean;
}

export interface MatchComparer extends Matcher {
  /** true when `a` is preferred over `b` (sort ascending = best first) */
  less(a: Platform, b: Platform): boolean;
}

/** Every candidate feature must be one the matcher's platform has. */
function featuresCovered(candidate: readonly string[], offered: readonly string[]): boolean {
  if (candidate.length === 0) return true;
  const have = new Set(offered);
  return candidate.every((f) => have.has(f));
}

function featureCount(p: Platform): number {
  return p.osFeatures?.length ?? 0;
}

function withoutFeatures(p: Platform): Platform {
  return makePlatform(p.os, p.architecture, p.variant, p.osVersion);
}

function newMatcherFor(p: Platform, host: Platform): Matcher {
  const self = normalize(p, host);
  const selfFeatures = self.osFeatures ?? [];
  // Upstream looks at the OS as given, before normalisation, to decide on the Windows rules.
  if (p.os !== 'windows') {
    return {
      match(candidate) {
        const n = normalize(candidate, host);
        return sameArch(self, n) && featuresCovered(n.osFeatures ?? [], selfFeatures);
      },
    };
  }
  const versionOK = windowsVersionMatcher(p.osVersion ?? '');
  return {
    match(candidate) {
      // win32k was ignored by older containerd releases; one occurrence is dropped to stay compatible.
      const features = [...(candidate.osFeatures ?? [])];
      const i = features.indexOf('win32k');
      if (i >= 0) features.splice(i, 1);
      const n = normalize({ ...candidate, osFeatures: features }, host);
      return (
        sameArch(self, n) && versionOK(candidate.osVersion ?? '') && featuresCovered(n.osFeatures ?? [], selfFeatures)
      );
    },
  };
}

function sameArch(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/** Exact match after normalisation (plus the Windows build ABI rule when `p` is Windows). */
export function newMatcher(p: Platform): Matcher {
  return newMatcherFor(p, DEFAULT_HOST_PLATFORM);
}

function armVersion(variant: string): number | undefined {
  // Go strconv.Atoi on the variant without its "v"; a sign is accepted there too.
  const digits = variant.startsWith('v') ? variant.slice(1) : variant;
  return /^[+-]?[0-9]+$/.test(digits) ? Number(digits) : undefined;
}

/** arm64 variants containerd knows, as [major, highest minor] steps to walk down; v9.x implies v8.(x+5). */
function arm64Steps(variant: string): [number, number][] | undefined {
  const m = /^v([89])(?:\.([0-9]))?$/.exec(variant);
  if (!m) return undefined;
  const major = Number(m[1]);
  const minor = Number(m[2] ?? '0');
  if (major === 8) return [[8, minor]];
  if (minor > 7) return undefined;
  return [
    [9, minor],
    [8, Math.min(minor + 5, 9)],
  ];
}

/** The platforms a node of platform `p` (normalised) runs, best first. */
function compatibleVector(p: Platform): Platform[] {
  const like = (architecture: string, variant = ''): Platform =>
    makePlatform(p.os, architecture, variant, p.osVersion, p.osFeatures);
  const variant = p.variant ?? '';
  switch (p.architecture) {
    case 'amd64': {
      const out = [p];
      const n = armVersion(variant);
      if (n !== undefined) for (let v = n - 1; v >= 1; v--) out.push(like('amd64', `v${v}`));
      out.push(like('386'));
      return out;
    }
    case 'arm': {
      const out = [p];
      const n = armVersion(variant);
      if (n !== undefined) for (let v = n - 1; v >= 5; v--) out.push(like('arm', `v${v}`));
      return out;
    }
    case 'arm64': {
      const steps = arm64Steps(variant === '' ? 'v8' : variant);
      // An arm64 variant containerd does not know matches nothing at all, not even itself.
      if (steps === undefined) return [];
      const out: Platform[] = [];
      for (const [major, top] of steps) {
        for (let minor = top; minor >= 0; minor--)
          out.push(like('arm64', minor === 0 ? `v${major}` : `v${major}.${minor}`));
      }
      // Every arm64 core also runs 32-bit arm up to v8.
      return [...out, ...compatibleVector(like('arm', 'v8'))];
    }
    default:
      return [p];
  }
}

function orderedFor(ps: readonly Platform[], host: Platform): MatchComparer {
  const matchers = ps.map((p) => newMatcherFor(p, host));
  const match = (p: Platform): boolean => matchers.some((m) => m.match(p));
  const less = (a: Platform, b: Platform): boolean => {
    // The first matcher that accepts either one decides; on a tie, more OS features win.
    for (const m of matchers) {
      const am = m.match(a);
      const bm = m.match(b);
      if (am && !bm) return true;
      if (am && bm) return featureCount(a) > featureCount(b);
      if (bm) return false;
    }
    // Nobody accepts either: try again ignoring features, so the architecture still ranks them.
    if (featureCount(a) > 0 || featureCount(b) > 0) return less(withoutFeatures(a), withoutFeatures(b));
    return false;
  };
  return { match, less };
}

function anyFor(ps: readonly Platform[], host: Platform): MatchComparer {
  const matchers = ps.map((p) => newMatcherFor(p, host));
  const match = (p: Platform): boolean => matchers.some((m) => m.match(p));
  const less = (a: Platform, b: Platform): boolean => {
    const am = match(a);
    const bm = match(b);
    if (am && bm) return featureCount(a) > featureCount(b);
    if (!am && !bm && (featureCount(a) > 0 || featureCount(b) > 0)) return less(withoutFeatures(a), withoutFeatures(b));
    return am && !bm;
  };
  return { match, less };
}

function onlyFor(p: Platform, host: Platform): MatchComparer {
  return orderedFor(compatibleVector(normalize(p, host)), host);
}

function onlyOSFor(p: Platform, host: Platform): MatchComparer {
  const self = normalize(p, host);
  const selfFeatures = self.osFeatures ?? [];
  const versionOK = self.os === 'windows' ? windowsVersionMatcher(self.osVersion ?? '') : () => true;
  const archOrder = orderedFor([self], host);
  const match = (candidate: Platform): boolean => {
    const n = normalize(candidate, host);
    return (
      n.os === self.os && versionOK(candidate.osVersion ?? '') && featuresCovered(n.osFeatures ?? [], selfFeatures)
    );
  };
  const less = (a: Platform, b: Platform): boolean => {
    const am = match(a);
    const bm = match(b);
    if (am !== bm) return am;
    // Same OS on both sides: the exact architecture first, the rest unordered.
    return am && archOrder.less(a, b);
  };
  return { match, less };
}

/**
 * What a node of platform `p` runs, in containerd's order of preference: amd64/vN down to v1 then
 * 386; arm64/v9.x and v8.x down their ladders, then arm/v8..v5; arm/vN down to v5.
 */
export function only(p: Platform): MatchComparer {
  return onlyFor(p, DEFAULT_HOST_PLATFORM);
}

/** Exactly `p` after normalisation: no fallback to older variants or 386. */
export function onlyStrict(p: Platform): MatchComparer {
  return orderedFor([normalize(p)], DEFAULT_HOST_PLATFORM);
}

/** Same OS (and, on Windows, a compatible build) whatever the architecture; exact arch ranks first. */
export function onlyOS(p: Platform): MatchComparer {
  return onlyOSFor(p, DEFAULT_HOST_PLATFORM);
}

/** Any of the platforms, preferred in the order given. */
export function ordered(...ps: Platform[]): MatchComparer {
  return orderedFor(ps, DEFAULT_HOST_PLATFORM);
}

/** Any of the platforms, matching ones first but otherwise unordered. */
export function any(...ps: Platform[]): MatchComparer {
  return anyFor(ps, DEFAULT_HOST_PLATFORM);
}

/**
 * Whether an image index has a build containerd CRI would pull for `want` (the node's platform),
 * i.e. whether Only(want) accepts any entry. An entry without a platform always qualifies. The node
 * itself is the host here, so an entry that leaves its OS empty is read as the node's OS.
 */
export function indexHasPlatform(entries: readonly (Platform | undefined)[], want: Platform): boolean {
  const host: Platform = {
    os: want.os || DEFAULT_HOST_PLATFORM.os,
    architecture: want.architecture || DEFAULT_HOST_PLATFORM.architecture,
  };
  const accepts = onlyFor(want, host);
  return entries.some((e) => e === undefined || accepts.match(e));
}
