// Windows containers share the host kernel's ABI, so a Windows image only runs on a host whose
// build accepts it: exact builds before Server 2022, a window back to the previous LTSC after.

interface WindowsVersion {
  major: number;
  minor: number;
  build: number;
}

const NO_VERSION: WindowsVersion = { major: 0, minor: 0, build: 0 };

// Server 2022 (20348) and Server 2025 (26100): the stable-ABI LTSC releases, ascending.
const LTSC_2022 = 20348;
const STABLE_ABI_LTSC = [LTSC_2022, 26100];

/** Unsigned decimal that fits in `max`, as Go strconv.ParseUint with a bit size. */
function parseUint(text: string, max: number): number | undefined {
  if (!/^[0-9]+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
}

/** `major.minor.build[.revision]`; anything unreadable counts as "no version", as upstream does. */
export function parseWindowsVersion(osVersion: string): WindowsVersion {
  const fields = osVersion.split('.');
  if (fields.length < 3) return NO_VERSION;
  const major = parseUint(fields[0] ?? '', 0xff);
  const minor = parseUint(fields[1] ?? '', 0xff);
  const build = parseUint(fields[2] ?? '', 0xffff);
  if (major === undefined || minor === undefined || build === undefined) return NO_VERSION;
  return { major, minor, build };
}

export function windowsHostRunsContainer(host: WindowsVersion, ctr: WindowsVersion): boolean {
  if (host.major !== ctr.major || host.minor !== ctr.minor) return false;
  if (host.build < LTSC_2022) return host.build === ctr.build;
  // The oldest build the host accepts is the newest LTSC strictly older than itself (an LTSC host
  // accepts the previous LTSC), and never older than Server 2022.
  let floor = LTSC_2022;
  for (const ltsc of STABLE_ABI_LTSC) if (host.build > ltsc) floor = ltsc;
  return floor <= ctr.build && ctr.build <= host.build;
}

/** A check of candidate os.version strings against a Windows host's os.version. */
export function windowsVersionMatcher(hostOSVersion: string): (candidateOSVersion: string) => boolean {
  const host = parseWindowsVersion(hostOSVersion);
  const hostUnknown = host.major === 0 && host.minor === 0 && host.build === 0;
  // Without a version on either side there is nothing to compare: accept.
  return (candidate) =>
    hostUnknown || candidate === '' || windowsHostRunsContainer(host, parseWindowsVersion(candidate));
}
