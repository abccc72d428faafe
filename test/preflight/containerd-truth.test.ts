// pullguard's verdict against a real containerd's pull of the same reference, in every registry
// state a partial sync or a stale cache leaves behind, per platform: an image pullguard calls
// available must pull, and one it denies (manifest-missing, blob-missing) must fail with "not found".
// Needs root and Debian's containerd (test/helpers/containerd.ts): without them this test fails.
import t from 'tap';
import { startContainerd, type PullClass } from '../helpers/containerd.ts';
import { startRegistry } from '../helpers/registry.ts';
import { deleteBlob, deleteManifest, startStaleCache } from '../helpers/registry-states.ts';
import { checkImage, engineFor } from './lib.ts';

const ctrd = await startContainerd();
t.teardown(() => ctrd.stop());
const reg = await startRegistry({ auth: 'none' });
t.teardown(() => reg.stop());
const stale = await startStaleCache('state/stale', '1.0', { seed: 'stale' });
t.teardown(() => stale.stop());

// One repository per state: a blob deleted from one repository is still served by the others.
await reg.pushImage('state/intact', '1.0', { seed: 'intact' });
const noLayer = await reg.pushImage('state/layer', '1.0', { seed: 'layer' });
await deleteBlob(reg, 'state/layer', noLayer.layerDigest);
const noConfig = await reg.pushImage('state/config', '1.0', { seed: 'config' });
await deleteBlob(reg, 'state/config', noConfig.configDigest);
await reg.pushIndex('state/index', '1.0', ['linux/amd64', 'linux/arm64'], { seed: 'index' });
const partial = await reg.pushIndex('state/partial', '1.0', ['linux/amd64', 'linux/arm64'], { seed: 'partial' });
await deleteManifest(reg, 'state/partial', partial.manifests[1]!.digest);
const armLayer = await reg.pushIndex('state/armlayer', '1.0', ['linux/amd64', 'linux/arm64'], { seed: 'armlayer' });
await deleteBlob(reg, 'state/armlayer', armLayer.manifests[1]!.layerDigest);
const armConfig = await reg.pushIndex('state/armconfig', '1.0', ['linux/amd64', 'linux/arm64'], { seed: 'armcfg' });
await deleteBlob(reg, 'state/armconfig', armConfig.manifests[1]!.configDigest);

interface Case {
  state: string;
  image: string;
  platform: string;
  /** what containerd is known to do here (the oracle's recording): checked, not assumed */
  runtime: PullClass;
  pullguard: string;
}
const cases: Case[] = [
  {
    state: 'intact image',
    image: `${reg.host}/state/intact:1.0`,
    platform: 'linux/amd64',
    runtime: 'ok',
    pullguard: 'available',
  },
  {
    state: 'intact index',
    image: `${reg.host}/state/index:1.0`,
    platform: 'linux/amd64',
    runtime: 'ok',
    pullguard: 'available',
  },
  {
    state: 'intact index',
    image: `${reg.host}/state/index:1.0`,
    platform: 'linux/arm64',
    runtime: 'ok',
    pullguard: 'available',
  },
  {
    state: 'platform manifest deleted',
    image: `${reg.host}/state/partial:1.0`,
    platform: 'linux/arm64',
    runtime: 'not-found',
    pullguard: 'manifest-missing',
  },
  {
    state: 'platform manifest deleted',
    image: `${reg.host}/state/partial:1.0`,
    platform: 'linux/amd64',
    runtime: 'ok',
    pullguard: 'available',
  },
  {
    state: 'layer deleted',
    image: `${reg.host}/state/layer:1.0`,
    platform: 'linux/amd64',
    runtime: 'not-found',
    pullguard: 'blob-missing',
  },
  {
    state: 'layer deleted (by digest)',
    image: `${reg.host}/state/layer@${noLayer.digest}`,
    platform: 'linux/amd64',
    runtime: 'not-found',
    pullguard: 'blob-missing',
  },
  {
    state: 'arm64 layer deleted',
    image: `${reg.host}/state/armlayer:1.0`,
    platform: 'linux/arm64',
    runtime: 'not-found',
    pullguard: 'blob-missing',
  },
  {
    state: 'arm64 layer deleted',
    image: `${reg.host}/state/armlayer:1.0`,
    platform: 'linux/amd64',
    runtime: 'ok',
    pullguard: 'available',
  },
  {
    state: 'config missing',
    image: `${reg.host}/state/config:1.0`,
    platform: 'linux/amd64',
    runtime: 'not-found',
    pullguard: 'blob-missing',
  },
  {
    state: 'arm64 config missing',
    image: `${reg.host}/state/armconfig:1.0`,
    platform: 'linux/arm64',
    runtime: 'not-found',
    pullguard: 'blob-missing',
  },
  {
    state: 'digest gone (stale cache)',
    image: `${stale.host}/state/stale:1.0`,
    platform: 'linux/amd64',
    runtime: 'not-found',
    pullguard: 'manifest-missing',
  },
];

const rows: string[] = [];
for (const c of cases) {
  t.test(`${c.state}, ${c.platform}: pullguard and containerd agree`, async (t) => {
    const engine = engineFor({ registry: { insecure: [reg.host, stale.host] } });
    t.teardown(() => engine.close());
    const v = await checkImage(engine, c.image, { platforms: [c.platform] });
    const pulled = await ctrd.pull(c.image, { platform: c.platform });
    rows.push(
      `| ${c.state} | ${c.platform} | ${v.verdict} ${v.reason} | ${pulled.pulled ? 'pulled' : `${pulled.class}: ${pulled.error}`} |`,
    );
    t.equal(pulled.class, c.runtime, `containerd: ${pulled.error ?? 'pulled'}`);
    t.equal(v.reason, c.pullguard, v.message);
    // The agreement itself: pullguard denies exactly what containerd cannot pull.
    t.equal(v.verdict === 'fail', !pulled.pulled, 'fail <=> the pull fails');
    if (!pulled.pulled) t.match(pulled.error, /not found/);
  });
}

t.teardown(() => {
  if (process.env.PULLGUARD_SHOW_TABLE)
    process.stderr.write(`containerd ${ctrd.version}, ${ctrd.snapshotter}\n${rows.join('\n')}\n`);
});
