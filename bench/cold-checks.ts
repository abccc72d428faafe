// cold-checks: registry round trips and time per new image against a token-auth registry over TLS
// (private repository, credentials from a docker config), cold (new engine, no token) and with the
// repository's token cached (same engine, new tags), against `skopeo inspect --raw` on the same images.
// "before"/"after": the same checks with registry.verifyLayers off (the manifests and a single
// manifest's config, what a check for the nodes' platforms fetched before issue 22) and on (each
// build's config and layers too), in the same run, the two alternating image by image.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { validateConfig } from '../src/config/schema.ts';
import { keyringFromFiles } from '../src/credentials/files.ts';
import type { Keyring } from '../src/credentials/keyring.ts';
import type { ImageUse } from '../src/findings.ts';
import { Preflight } from '../src/preflight/engine.ts';
import { MANIFEST_ACCEPT } from '../src/registry/client.ts';
import { Agent, request } from 'undici';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.ts';
import {
  connectionCounter,
  figure,
  mean,
  noClusterEnv,
  percentile,
  QUICK,
  repoRoot,
  round,
  runProcess,
  since,
  versions,
  type Recorder,
} from './lib.ts';
import { checkFlags, skopeoInspectArgs, writeRegistryFiles } from './registry-files.ts';
import { registryClientFor } from '../src/app/build.ts';
import { parsePlatform, type Platform } from '../src/platform/index.ts';

/** The nodes' platform, as the webhook in a cluster checks with. */
const NODES = [parsePlatform('linux/amd64')];

interface PerImage {
  image: string;
  ms: number;
  /** blob requests (configs, layers) among `registry` */
  blobs: number;
  /** requests the registry (through the proxy) saw */
  registry: number;
  manifestHeads: number;
  manifestGets: number;
  /** requests the token server saw */
  token: number;
  /** connections pullguard's undici opened to the registry (proxy) during the check */
  connections?: number;
  ok: boolean;
}

const use = (image: string): ImageUse => ({
  object: { kind: 'Pod', namespace: 'bench', name: 'p' },
  container: 'app',
  field: 'spec.containers[0].image',
  image,
});

function counts(reg: TestRegistry): Omit<PerImage, 'image' | 'ms' | 'ok'> {
  const proxy = reg.proxy!;
  return {
    registry: proxy.count(),
    manifestHeads: proxy.count({ method: 'HEAD', path: /\/manifests\// }),
    manifestGets: proxy.count({ method: 'GET', path: /\/manifests\// }),
    blobs: proxy.count({ path: /\/blobs\// }),
    token: reg.tokenServer!.counts.total,
  };
}

async function pullguardCheck(
  engine: Preflight,
  keyring: Keyring,
  image: string,
  reg: TestRegistry,
  conns: ReturnType<typeof connectionCounter>,
  platforms: Platform[] = [],
): Promise<PerImage> {
  reg.resetCounters();
  conns.reset();
  const t0 = performance.now();
  const [f] = await engine.check([use(image)], { credentials: { keyrings: [keyring] }, platforms });
  const ms = since(t0);
  return { image, ms, ...counts(reg), connections: conns.count(reg.host), ok: f?.verdict === 'ok' };
}

/**
 * The floor for one HEAD with a known token: plain undici on a connection kept alive
 * (`reset: false`; undici otherwise closes the connection after every HEAD).
 */
async function keptAliveHeads(
  reg: TestRegistry,
  user: { username: string; password: string },
  tags: string[],
): Promise<number[]> {
  const agent = new Agent({ connect: { ca: reg.caPem! }, keepAliveTimeout: 30_000 });
  try {
    const ts = reg.tokenServer!;
    const tokenUrl = `${ts.url}/token?service=${encodeURIComponent(ts.service)}&scope=${encodeURIComponent('repository:private/app:pull')}`;
    const tok = await request(tokenUrl, {
      headers: { authorization: `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}` },
      dispatcher: agent,
    });
    const token = ((await tok.body.json()) as { token: string }).token;
    const head = async (tag: string) => {
      const r = await agent.request({
        origin: reg.url,
        path: `/v2/private/app/manifests/${tag}`,
        method: 'HEAD',
        reset: false,
        headers: { authorization: `Bearer ${token}`, accept: MANIFEST_ACCEPT },
      });
      await r.body.dump();
      if (r.statusCode !== 200) throw new Error(`HEAD ${tag}: ${r.statusCode}`);
    };
    await head('warm');
    const times: number[] = [];
    for (const tag of tags) {
      const t0 = performance.now();
      await head(tag);
      times.push(since(t0));
    }
    return times;
  } finally {
    await agent.close();
  }
}

export async function coldChecks(rec: Recorder): Promise<void> {
  const n = QUICK ? 3 : 20;
  const user = { username: 'bench', password: randomBytes(12).toString('hex') };
  const reg = await startRegistry({ auth: 'token', tls: true, proxy: true, users: [user] });
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-bench-cold-'));
  rec.settings = {
    images: n,
    registry:
      'docker-registry on loopback, TLS (test CA), token auth (in-process token server, RS256), private repository, behind the counting proxy',
    credentials: 'docker config file with auths[host].auth, read with keyringFromFiles',
    cold: 'a new Preflight (new connection pool, no challenge or token known) per image',
    tokenCached:
      'one Preflight; one other tag of the repository checked first, then each image (new tags, same repository scope)',
    skopeo: 'skopeo inspect --raw --cert-dir <CA> --creds user:pass docker://host/repo:tag, one process per image',
    beforeAfter:
      "for the nodes' platform linux/amd64, as the webhook in a cluster checks: registry.verifyLayers false (before) and true (after), alternating image by image; cold: new engine per check; token cached: one engine each; then the after engine checks every image again",
    cli: `node src/cli/main.ts check --docker-config --registry-ca -o json IMAGE, one process per image, the first ${QUICK ? 1 : Math.min(n, 10)} images`,
  };
  try {
    const tags = Array.from({ length: n }, (_, i) => `v${String(i).padStart(2, '0')}`);
    // Distinct images (a seed per tag), and one more tag to fetch the token with before the cached run.
    for (const tag of [...tags, 'warm']) await reg.pushImage('private/app', tag, { seed: tag });
    const images = tags.map((t) => `${reg.host}/private/app:${t}`);

    const files = writeRegistryFiles(dir, reg, user);
    const keyring = keyringFromFiles([files.dockerConfig]);
    const config = validateConfig({ cluster: { watchNodes: false } });
    const conns = connectionCounter();

    // Cold: everything new per image.
    const cold: PerImage[] = [];
    for (const image of images) {
      const engine = new Preflight(config, registryClientFor(config, [reg.caPem!]));
      try {
        cold.push(await pullguardCheck(engine, keyring, image, reg, conns));
      } finally {
        await engine.close();
      }
    }

    // Token cached: the challenge and the repository's token are known; each tag is new to the engine.
    const cached: PerImage[] = [];
    const engine = new Preflight(config, registryClientFor(config, [reg.caPem!]));
    try {
      await pullguardCheck(engine, keyring, `${reg.host}/private/app:warm`, reg, conns);
      for (const image of images) cached.push(await pullguardCheck(engine, keyring, image, reg, conns));
    } finally {
      await engine.close();
    }

    // Before and after, for the nodes' platform, alternating so that neither always comes second:
    // cold (new engines) and with the token cached (one engine each); then the after engine checks
    // every image again (a cached image: no request at all).
    const off = validateConfig({ cluster: { watchNodes: false }, registry: { verifyLayers: false } });
    const engineOf = (c: typeof config) => new Preflight(c, registryClientFor(c, [reg.caPem!]));
    const coldBefore: PerImage[] = [];
    const coldAfter: PerImage[] = [];
    for (const [i, image] of images.entries()) {
      for (const which of i % 2 ? ['after', 'before'] : ['before', 'after']) {
        const e = engineOf(which === 'after' ? config : off);
        try {
          (which === 'after' ? coldAfter : coldBefore).push(await pullguardCheck(e, keyring, image, reg, conns, NODES));
        } finally {
          await e.close();
        }
      }
    }
    const warmBefore = engineOf(off);
    const warmAfter = engineOf(config);
    const cachedBefore: PerImage[] = [];
    const cachedAfter: PerImage[] = [];
    const again: PerImage[] = [];
    try {
      await pullguardCheck(warmBefore, keyring, `${reg.host}/private/app:warm`, reg, conns, NODES);
      await pullguardCheck(warmAfter, keyring, `${reg.host}/private/app:warm`, reg, conns, NODES);
      for (const [i, image] of images.entries()) {
        const pair = [
          () => pullguardCheck(warmBefore, keyring, image, reg, conns, NODES).then((p) => cachedBefore.push(p)),
          () => pullguardCheck(warmAfter, keyring, image, reg, conns, NODES).then((p) => cachedAfter.push(p)),
        ];
        for (const run of i % 2 ? pair.reverse() : pair) await run();
      }
      for (const image of images) again.push(await pullguardCheck(warmAfter, keyring, image, reg, conns, NODES));
    } finally {
      await warmBefore.close();
      await warmAfter.close();
    }

    conns.stop();
    const floor = await keptAliveHeads(reg, user, tags);

    // skopeo: its own process per image, as a CI job would run it. No auth file of the machine.
    const env = { ...process.env, REGISTRY_AUTH_FILE: join(dir, 'no-auth.json') };
    const skopeo: PerImage[] = [];
    const haveSkopeo = !versions().skopeo.startsWith('unavailable');
    if (!haveSkopeo)
      rec.note('skopeo is not installed (apt package skopeo, .ci/apt-packages.txt): its baselines are empty');
    for (const image of haveSkopeo ? images : []) {
      reg.resetCounters();
      const t0 = performance.now();
      const r = await runProcess('skopeo', skopeoInspectArgs(files, user, image), env);
      const ms = since(t0);
      if (r.code !== 0) throw new Error(`skopeo inspect ${image} failed (${r.code}): ${r.stderr.trim()}`);
      skopeo.push({ image, ms, ...counts(reg), ok: r.code === 0 });
    }

    // pullguard's CLI, also one process per image: the same footing as skopeo.
    const cli: PerImage[] = [];
    const cliImages = images.slice(0, QUICK ? 1 : Math.min(n, 10));
    for (const image of cliImages) {
      reg.resetCounters();
      const t0 = performance.now();
      const r = await runProcess(
        process.execPath,
        [join(repoRoot, 'src/cli/main.ts'), 'check', ...checkFlags(files), image],
        noClusterEnv(),
      );
      const ms = since(t0);
      if (r.code !== 0)
        throw new Error(`pullguard check ${image} failed (${r.code}): ${r.stderr.trim()} ${r.stdout.slice(0, 300)}`);
      cli.push({ image, ms, ...counts(reg), ok: true });
    }

    const notOk = [...cold, ...cached, ...coldBefore, ...coldAfter, ...cachedBefore, ...cachedAfter, ...again].filter(
      (p) => !p.ok,
    );
    if (notOk.length) rec.note(`checks that did not answer ok: ${notOk.map((p) => p.image).join(', ')}`);

    const perImage = (list: PerImage[], key: 'registry' | 'token' | 'manifestHeads' | 'manifestGets' | 'blobs') =>
      mean(list.map((p) => p[key]));
    const total = (list: PerImage[]) => mean(list.map((p) => p.registry + p.token));
    const max = (list: PerImage[]) => Math.max(...list.map((p) => p.registry + p.token));
    const b = (name: string, value: number, unit: string) => ({ name, value, unit });
    const faster = { text: 'ratio < 1', met: (f: { ratio: number | null }) => (f.ratio ?? Infinity) < 1 };
    const p50 = (list: PerImage[]) =>
      percentile(
        list.map((p) => p.ms),
        50,
      );
    rec.add(
      // the 401, the token, the tag's HEAD, then what a pull fetches: the manifest by digest, the config, the layer
      figure('cold: requests per image (registry + token)', total(cold), '', b('skopeo', total(skopeo), ''), {
        text: 'each ≤ 3 + fetches (3 for these one-layer images)',
        met: () => max(cold) <= 6,
      }),
      figure(
        'cold: manifest HEADs per image',
        perImage(cold, 'manifestHeads'),
        '',
        b('skopeo manifest GETs', perImage(skopeo, 'manifestGets'), ''),
      ),
      figure('cold: token requests per image', perImage(cold, 'token'), '', b('skopeo', perImage(skopeo, 'token'), '')),
      figure('token cached: requests per image', total(cached), '', b('skopeo', total(skopeo), ''), {
        text: 'each = 1 HEAD + the fetches, no token',
        met: () => cached.every((p) => p.manifestHeads === 1 && p.registry === 4 && p.token === 0),
      }),
      figure(
        'before → after, cold: requests per image',
        total(coldAfter),
        '',
        b('verifyLayers off', total(coldBefore), ''),
      ),
      figure(
        'before → after, cold: manifest GETs per image',
        perImage(coldAfter, 'manifestGets'),
        '',
        b('verifyLayers off', perImage(coldBefore, 'manifestGets'), ''),
      ),
      figure(
        'before → after, cold: blob requests per image',
        perImage(coldAfter, 'blobs'),
        '',
        b('verifyLayers off', perImage(coldBefore, 'blobs'), ''),
      ),
      figure(
        'before → after, cold: time per image p50',
        p50(coldAfter),
        'ms',
        b('verifyLayers off p50', p50(coldBefore), 'ms'),
        { text: 'ratio ≤ 1.5', met: (f) => (f.ratio ?? Infinity) <= 1.5 },
      ),
      figure(
        'before → after, token cached: requests per image',
        total(cachedAfter),
        '',
        b('verifyLayers off', total(cachedBefore), ''),
      ),
      figure(
        'before → after, token cached: time per image p50',
        p50(cachedAfter),
        'ms',
        b('verifyLayers off p50', p50(cachedBefore), 'ms'),
        { text: 'ratio ≤ 1.5', met: (f) => (f.ratio ?? Infinity) <= 1.5 },
      ),
      figure('cached image (checked again): requests', total(again), '', b('extra requests wanted', 0, ''), {
        text: '= 0',
        met: () => again.every((p) => p.registry === 0 && p.token === 0),
      }),
      figure('cold: time per image p50', p50(cold), 'ms', b('skopeo p50', p50(skopeo), 'ms'), faster),
      figure(
        'cold: time per image mean',
        mean(cold.map((p) => p.ms)),
        'ms',
        b('skopeo mean', mean(skopeo.map((p) => p.ms)), 'ms'),
        faster,
      ),
      figure('token cached: time per image p50', p50(cached), 'ms', b('skopeo p50', p50(skopeo), 'ms'), faster),
      figure('token cached: time per image p50', p50(cached), 'ms', b('pullguard cold p50', p50(cold), 'ms')),
      figure(
        'token cached: time per image p50',
        p50(cached),
        'ms',
        b('raw HEAD, kept-alive conn. p50', percentile(floor, 50), 'ms'),
      ),
      figure(
        'token cached: new connections per image',
        mean(cached.map((p) => p.connections ?? NaN)),
        '',
        b('kept-alive client', 0, ''), // undici keeps a HEAD's connection only when the answer says Connection: keep-alive, which Go's
        // server omits: the first HEAD on a connection may still close it, so at most one new one in all.
        { text: '≤ 1 in all (keep-alive)', met: (f) => (f.value ?? Infinity) * cached.length <= 1 },
      ),
      figure(
        'cold: new connections per image',
        mean(cold.map((p) => p.connections ?? NaN)),
        '',
        b('requests to the registry', perImage(cold, 'registry'), ''),
      ),
      figure('CLI process: time per image p50', p50(cli), 'ms', b('skopeo process p50', p50(skopeo), 'ms')),
      figure('CLI process: requests per image', total(cli), '', b('skopeo', total(skopeo), '')),
    );
    const pick = (list: PerImage[]) =>
      list.map(({ image, ms, ...rest }) => ({ image: image.replace(reg.host, 'HOST'), ms: round(ms, 2), ...rest }));
    rec.details = {
      cold: pick(cold),
      tokenCached: pick(cached),
      skopeo: pick(skopeo),
      cli: pick(cli),
      coldBefore: pick(coldBefore),
      coldAfter: pick(coldAfter),
      cachedBefore: pick(cachedBefore),
      cachedAfter: pick(cachedAfter),
      cachedAgain: pick(again),
      keptAliveRawHeadMs: floor.map((m) => round(m, 2)),
    };
    rec.note(
      'engine times are in-process (what the webhook pays per new image); skopeo and the CLI rows include starting a process, so compare processes with processes',
    );
    rec.note(
      'cold includes new TLS connections for pullguard and skopeo alike; token-cached keeps the engine (and its pools), yet undici closes the connection after every HEAD unless asked not to (reset: false), so each HEAD pays a new TLS connection',
    );
    rec.note(
      'before → after: these images have one layer; the first 3 layers are HEADed beside the config GET, the rest 4 at a time, so an image of n layers adds about ceil(n/4) round trips, not n',
    );
    rec.note(
      `skopeo per image: ${[...new Set(skopeo.map((p) => `${p.registry} registry requests (GET /v2/, ${p.manifestGets} manifest GET) + ${p.token} token`))].join('; ')}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await reg.stop();
  }
}
