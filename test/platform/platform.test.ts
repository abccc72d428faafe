// Behaviour beyond the upstream vectors: OCI conversion, the host parameter, error cases.

import t from 'tap';
import {
  format,
  formatAll,
  fromOCI,
  normalize,
  only,
  onlyOS,
  parsePlatform,
  parseWindowsVersion,
  PlatformError,
  toOCI,
} from '../../src/platform/index.ts';

t.test('OCI conversion', async (t) => {
  const oci = { os: 'windows', architecture: 'amd64', 'os.version': '10.0.20348.1', 'os.features': ['win32k'] };
  const p = fromOCI(oci);
  t.strictSame(p, { os: 'windows', architecture: 'amd64', osVersion: '10.0.20348.1', osFeatures: ['win32k'] });
  t.strictSame(toOCI(p), oci, 'round-trips');
  t.strictSame(
    fromOCI({ os: 'linux', architecture: 'arm64', variant: '', 'os.features': [] }),
    { os: 'linux', architecture: 'arm64' },
    'empty fields are dropped',
  );
  t.strictSame(fromOCI({}), { os: '', architecture: '' }, 'missing fields are empty');
  t.throws(() => fromOCI(null), PlatformError, 'null');
  t.throws(() => fromOCI('linux/amd64'), PlatformError, 'a string');
  t.throws(() => fromOCI({ os: 7 }), PlatformError, 'a number as os');
  t.throws(() => fromOCI({ os: 'linux', 'os.features': 'gpu' }), PlatformError, 'features not an array');
});

t.test('host parameter', async (t) => {
  const armV6 = { os: 'linux', architecture: 'arm', variant: 'v6' };
  t.strictSame(parsePlatform('linux', armV6), armV6, 'an OS alone takes the host architecture and variant');
  t.strictSame(
    parsePlatform('linux', { os: 'linux', architecture: 'arm', variant: 'v7' }),
    { os: 'linux', architecture: 'arm' },
    'arm/v7 is spelled arm',
  );
  t.strictSame(
    parsePlatform('linux', { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    { os: 'linux', architecture: 'arm64' },
    'arm64 hosts add no variant',
  );
  t.strictSame(
    parsePlatform('arm64', { os: 'windows', architecture: 'amd64' }),
    { os: 'windows', architecture: 'arm64' },
    'an arch alone takes the host OS',
  );
  t.equal(normalize({ os: '', architecture: 'amd64' }).os, 'linux', 'empty OS defaults to linux');
  t.equal(
    normalize({ os: '', architecture: 'amd64' }, { os: 'windows', architecture: 'amd64' }).os,
    'windows',
    'or to the given host OS',
  );
});

t.test('errors', async (t) => {
  for (const bad of ['linux/*', 'windows(1%zz)', 'windows(1%2)', 'plan10', 'linux/amd64/v1/x', 'linux(a(b))/amd64']) {
    t.throws(() => parsePlatform(bad), PlatformError, `${bad} is rejected`);
  }
  const err = t.throws(() => parsePlatform('linux/&arm'));
  t.match(err, { name: 'PlatformError', input: 'linux/&arm', message: /linux\/&arm/ }, 'the error names the input');
});

t.test('formatting', async (t) => {
  t.equal(format({ os: '', architecture: 'amd64' }), 'unknown');
  t.equal(formatAll({ os: '', architecture: 'amd64' }), 'unknown');
  t.equal(
    format({ os: 'linux', architecture: 'arm', variant: 'v7', osVersion: '1' }),
    'linux/arm/v7',
    'format leaves the version out',
  );
  t.equal(
    formatAll({ os: 'linux', architecture: 'amd64', osFeatures: ['b', 'a', 'b'] }),
    'linux(+a+b)/amd64',
    'features sorted and de-duplicated',
  );
  t.equal(
    formatAll({ os: 'linux', architecture: 'amd64', osFeatures: [''] }),
    'linux/amd64',
    'only empty features: no parentheses',
  );
  t.equal(format({ os: 'linux', architecture: '' }), 'linux', 'empty parts are skipped');
});

t.test('matcher corners', async (t) => {
  t.notOk(
    only(parsePlatform('linux/arm64/v8.10')).match(parsePlatform('linux/arm64/v8.10')),
    'an arm64 variant containerd does not know matches nothing',
  );
  t.ok(only(parsePlatform('linux/amd64/v3')).match(parsePlatform('linux/amd64/v2')), 'amd64/v3 runs v2');
  t.notOk(
    only(parsePlatform('linux')).match({ os: 'linux', architecture: 'amd64', osFeatures: ['gpu'] }),
    'a build that needs a feature the node lacks',
  );
  const win = onlyOS(parsePlatform('windows(10.0.17763)/amd64'));
  t.notOk(win.match(parsePlatform('windows(10.0.20348)/amd64')), 'OnlyOS applies the Windows build rule');
  t.strictSame(parseWindowsVersion('10.0.17763.1'), { major: 10, minor: 0, build: 17763 });
  t.strictSame(
    parseWindowsVersion('10.0.70000'),
    { major: 0, minor: 0, build: 0 },
    'a build over 16 bits is no version',
  );
  t.strictSame(parseWindowsVersion('10.0'), { major: 0, minor: 0, build: 0 }, 'two fields is no version');
});
