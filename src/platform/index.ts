// containerd/platforms semantics: parse, normalise, format and match OCI platforms.

export {
  DEFAULT_HOST_PLATFORM,
  PlatformError,
  fromOCI,
  isKnownArch,
  isKnownOS,
  makePlatform,
  normalize,
  normalizeArch,
  normalizeOS,
  toOCI,
  type OCIPlatform,
  type Platform,
} from './platform.ts';
export { format, formatAll, parsePlatform } from './specifier.ts';
export {
  any,
  indexHasPlatform,
  newMatcher,
  only,
  onlyOS,
  onlyStrict,
  ordered,
  type MatchComparer,
  type Matcher,
} from './match.ts';
export { parseWindowsVersion, windowsHostRunsContainer } from './windows.ts';
