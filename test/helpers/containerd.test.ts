// Proves the private containerd helper pulls for real: an intact image pulls (and leaves nothing
// behind for the next pull), a missing tag and a platform an index lacks fail with containerd's own
// words. Fails, never skips, where containerd cannot run: the tests that compare pullguard with it
// must not pass without it.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifyPullError, startContainerd, writeHostsDir } from './containerd.ts';
import { startRegistry } from './registry.ts';

const ctrd = await startContainerd();
t.teardown(() => ctrd.stop());
const reg = await startRegistry();
t.teardown(() => reg.stop());

t.test('the daemon is private: its socket and root are in its own folder, the version is 1.6 or later', async (t) => {
  t.ok(ctrd.socket.startsWith(ctrd.dir));
  t.match(ctrd.version, /^v?1\.(6|7)\.|^v?2\./);
  t.ok(['overlayfs', 'native'].includes(ctrd.snapshotter));
});

t.test('an intact image pulls, twice (the first pull left nothing behind to hit)', async (t) => {
  const img = await reg.pushImage('demo/app', '1.0');
  const a = await ctrd.pull(`${reg.host}/demo/app:1.0`);
  t.same(a, { pulled: true, error: null, class: 'ok', digest: img.digest }, ctrd.logTail(20));
  const b = await ctrd.pull(`${reg.host}/demo/app:1.0`);
  t.equal(b.pulled, true);
});

t.test('a missing tag is not found, in containerd words', async (t) => {
  const r = await ctrd.pull(`${reg.host}/demo/app:nope`);
  t.equal(r.pulled, false);
  t.equal(r.class, 'not-found');
  t.match(r.error, /not found/);
});

t.test('an index without the asked platform: no match for platform', async (t) => {
  const idx = await reg.pushIndex('demo/multi', '1.0', ['linux/amd64', 'linux/arm64']);
  const arm = await ctrd.pull(`${reg.host}/demo/multi:1.0`, { platform: 'linux/arm64' });
  t.equal(arm.pulled, true, arm.error ?? '');
  t.equal(arm.digest, idx.digest);
  const s390x = await ctrd.pull(`${reg.host}/demo/multi:1.0`, { platform: 'linux/s390x' });
  t.equal(s390x.class, 'platform', s390x.error ?? '');
});

t.test('a hosts dir sends the pull where it says (a TLS registry with the test CA)', async (t) => {
  const tls = await startRegistry({ auth: 'htpasswd', users: [{ username: 'u', password: 'p' }] });
  t.teardown(() => tls.stop());
  await tls.pushImage('demo/app', '1.0');
  const dir = mkdtempSync(join(tmpdir(), 'pg-hosts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeHostsDir(dir, [{ host: tls.host, tls: true, caFile: tls.caFile! }]);
  const ok = await ctrd.pull(`${tls.host}/demo/app:1.0`, { hostsDir: dir, user: 'u:p' });
  t.equal(ok.pulled, true, ok.error ?? '');
  const denied = await ctrd.pull(`${tls.host}/demo/app:1.0`, { hostsDir: dir });
  t.equal(denied.class, 'unauthorized', denied.error ?? '');
});

t.test('the classification follows the oracle: platform before not-found, auth before not-found', async (t) => {
  t.equal(classifyPullError(null), 'ok');
  t.equal(classifyPullError('no match for platform in manifest sha256:ab: not found'), 'platform');
  t.equal(classifyPullError('failed to resolve reference "x": x: not found'), 'not-found');
  t.equal(
    classifyPullError(
      'failed to resolve reference "x": pulling from host h failed with status code [manifests 1.0]: 401 Unauthorized',
    ),
    'unauthorized',
  );
  t.equal(classifyPullError('dial tcp 127.0.0.1:9: connect: connection refused'), 'unreachable');
});
