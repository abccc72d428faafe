// indexHasPlatform on image indexes as registries serve them (platforms in OCI JSON spelling).

import t from 'tap';
import { fromOCI, indexHasPlatform, parsePlatform, type Platform } from '../../src/platform/index.ts';

const idx = (...platforms: (Record<string, unknown> | undefined)[]): (Platform | undefined)[] =>
  platforms.map((p) => (p === undefined ? undefined : fromOCI(p)));
const want = (spec: string): Platform => parsePlatform(spec);

// What buildx pushes: two builds plus one attestation manifest per build.
const attestation = { os: 'unknown', architecture: 'unknown' };
const amd64Arm64 = idx(
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
  attestation,
  attestation,
);

t.test('amd64 + arm64/v8 index', async (t) => {
  t.ok(indexHasPlatform(amd64Arm64, want('linux/amd64')), 'linux/amd64: yes');
  t.ok(indexHasPlatform(amd64Arm64, want('linux/arm64')), 'linux/arm64 takes arm64/v8');
  t.notOk(indexHasPlatform(amd64Arm64, want('linux/arm/v7')), 'linux/arm/v7: a 32-bit node cannot run arm64');
  t.notOk(indexHasPlatform(amd64Arm64, want('linux/386')), 'linux/386: no');
  t.notOk(indexHasPlatform(amd64Arm64, want('linux/s390x')), 'linux/s390x: no');
  t.notOk(indexHasPlatform(amd64Arm64, want('windows/amd64')), 'windows/amd64: linux builds do not count');
});

t.test('fallbacks go one way only', async (t) => {
  const amd64Only = idx({ os: 'linux', architecture: 'amd64' });
  const i386Only = idx({ os: 'linux', architecture: '386' });
  t.notOk(indexHasPlatform(amd64Only, want('linux/386')), 'amd64-only index, 386 node: no');
  t.ok(indexHasPlatform(i386Only, want('linux/amd64')), '386-only index, amd64 node: yes');
  const armV7Only = idx({ os: 'linux', architecture: 'arm', variant: 'v7' });
  t.ok(indexHasPlatform(armV7Only, want('linux/arm64')), 'arm64 node runs arm/v7');
  t.notOk(indexHasPlatform(armV7Only, want('linux/arm/v6')), 'arm/v6 node does not run arm/v7');
  const armV6Only = idx({ os: 'linux', architecture: 'arm', variant: 'v6' });
  t.ok(indexHasPlatform(armV6Only, want('linux/arm')), 'arm (= v7) node runs arm/v6');
  const amd64V3 = idx({ os: 'linux', architecture: 'amd64', variant: 'v3' });
  t.notOk(indexHasPlatform(amd64V3, want('linux/amd64')), 'plain amd64 node does not take amd64/v3');
});

t.test('entries without a platform, attestations, empty indexes', async (t) => {
  t.ok(indexHasPlatform(idx(undefined), want('linux/s390x')), 'an entry without platform always matches');
  t.ok(indexHasPlatform(idx(attestation, undefined), want('windows/arm64')), 'even next to attestations');
  t.notOk(indexHasPlatform(idx(attestation, attestation), want('linux/amd64')), 'unknown/unknown never matches');
  t.notOk(indexHasPlatform([], want('linux/amd64')), 'an empty index has nothing');
  // containerd fills a missing OS with its own, which is the node's.
  const noOS = idx({ architecture: 'amd64' });
  t.ok(indexHasPlatform(noOS, want('linux/amd64')), 'entry without os on a linux node');
  t.notOk(indexHasPlatform(noOS, want('linux/arm64')), 'entry without os, other arch');
  t.ok(
    indexHasPlatform(idx({ os: 'Linux', architecture: 'x86_64' }), want('linux/amd64')),
    'non-canonical spelling normalises',
  );
});

t.test('windows builds', async (t) => {
  const ltsc = idx(
    { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.6414' },
    { os: 'windows', architecture: 'amd64', 'os.version': '10.0.20348.2762' },
  );
  const ltsc2019Only = idx({ os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.6414' });
  t.ok(indexHasPlatform(ltsc, want('windows(10.0.17763)/amd64')), 'Server 2019 node takes the 2019 build');
  t.ok(indexHasPlatform(ltsc, want('windows(10.0.26100)/amd64')), 'Server 2025 node takes the 2022 build');
  t.notOk(
    indexHasPlatform(ltsc2019Only, want('windows(10.0.20348)/amd64')),
    'Server 2022 node cannot run a 2019 build',
  );
  t.notOk(
    indexHasPlatform(ltsc2019Only, want('windows(10.0.26100)/amd64')),
    'Server 2025 node cannot run a 2019 build',
  );
  t.ok(indexHasPlatform(ltsc2019Only, want('windows/amd64')), 'a node of unknown build accepts any build');
  t.notOk(indexHasPlatform(ltsc, want('linux/amd64')), 'linux node: no');
  const win32k = idx({ os: 'windows', architecture: 'amd64', 'os.version': '10.0.20348.1', 'os.features': ['win32k'] });
  t.ok(indexHasPlatform(win32k, want('windows(10.0.20348)/amd64')), 'the win32k feature is ignored');
});
