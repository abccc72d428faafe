// Pushes tiny but real images through the registry's own HTTP API (blob upload POST + monolithic
// PUT, manifest PUT), doing Basic or token auth as the registry asks. Content is deterministic:
// the same platform and seed always give the same digests.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { request, type Dispatcher } from 'undici';
import type { TestRegistry } from './registry.ts';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** The Accept header containerd sends when resolving. */
export const CONTAINERD_ACCEPT = [
  MEDIA.dockerManifest,
  MEDIA.dockerList,
  MEDIA.ociManifest,
  MEDIA.ociIndex,
  '*/*',
].join(', ');

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

export interface PushImageOptions {
  /** 'linux/arm64/v8' or an object. Default linux/amd64. */
  platform?: string | Platform;
  /** OCI (default) or Docker v2 schema 2 media types. */
  format?: 'oci' | 'docker';
  /** Changes the layer content, hence every digest. */
  seed?: string;
  annotations?: Record<string, string>;
  /** The layer's files instead of the default text file (a real program, for a kubelet to run). */
  files?: TarFile[];
  /** The image config's Entrypoint; default none (Cmd is the default text file). */
  entrypoint?: string[];
}

export interface TarFile {
  name: string;
  data: Buffer;
  /** default 0644 */
  mode?: number;
}

export interface PushIndexOptions {
  /** OCI image index (default) or Docker manifest list; children use the matching format. */
  format?: 'oci' | 'docker';
  seed?: string;
  annotations?: Record<string, string>;
}

/** Whatever can be pushed to: a TestRegistry, or just its direct URL, dispatcher and admin. */
export type PushTarget = Pick<TestRegistry, 'direct' | 'dispatcher' | 'admin'>;

/** What every push returns: where it went and the manifest bytes the registry now serves. */
interface Pushed {
  repo: string;
  tag: string | undefined;
  digest: string;
  mediaType: string;
  size: number;
  manifest: Buffer;
}

export interface PushedImage extends Pushed {
  configDigest: string;
  layerDigest: string;
  platform: Platform;
}

export interface PushedIndex extends Pushed {
  manifests: PushedImage[];
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export function parsePlatform(p: string | Platform): Platform {
  if (typeof p !== 'string') return p;
  const [os, architecture, variant] = p.split('/');
  if (!os || !architecture) throw new Error(`bad platform ${p}: want os/arch[/variant]`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function platformString(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

// A minimal ustar archive with regular files; fixed mtime/owner so the bytes never change.
export function tarFiles(files: TarFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const h = Buffer.alloc(512);
    const put = (s: string, off: number, len: number) => h.write(s, off, len, 'ascii');
    const octal = (n: number, len: number) => `${n.toString(8).padStart(len - 1, '0')}\0`;
    put(f.name, 0, 100);
    put(octal(f.mode ?? 0o644, 8), 100, 8);
    put(octal(0, 8), 108, 8);
    put(octal(0, 8), 116, 8);
    put(octal(f.data.length, 12), 124, 12);
    put(octal(1704067200, 12), 136, 12); // 2024-01-01
    put('        ', 148, 8);
    put('0', 156, 1);
    put('ustar\0', 257, 6);
    put('00', 263, 2);
    let sum = 0;
    for (const b of h) sum += b;
    put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    parts.push(h, f.data, Buffer.alloc((512 - (f.data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Build (without pushing) the blobs and manifest of a one-layer image. */
export function buildImage(opts: PushImageOptions = {}) {
  const platform = parsePlatform(opts.platform ?? 'linux/amd64');
  const docker = opts.format === 'docker';
  const tar = tarFiles(
    opts.files ?? [
      {
        name: 'pullguard.txt',
        data: Buffer.from(`pullguard test image\nplatform=${platformString(platform)}\nseed=${opts.seed ?? ''}\n`),
      },
    ],
  );
  const layer = gzipSync(tar, { level: 9 });
  const created = '2024-01-01T00:00:00Z';
  const config = Buffer.from(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      ...(platform['os.version'] ? { 'os.version': platform['os.version'] } : {}),
      created,
      config: opts.entrypoint ? { Entrypoint: opts.entrypoint } : { Cmd: ['/pullguard.txt'] },
      rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      history: [{ created, created_by: 'pullguard test helper' }],
    }),
  );
  const mediaType = docker ? MEDIA.dockerManifest : MEDIA.ociManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: docker ? MEDIA.dockerConfig : MEDIA.ociConfig, digest: sha256(config), size: config.length },
      layers: [{ mediaType: docker ? MEDIA.dockerLayer : MEDIA.ociLayer, digest: sha256(layer), size: layer.length }],
      ...(opts.annotations && !docker ? { annotations: opts.annotations } : {}),
    }),
  );
  return { platform, config, layer, manifest, mediaType, digest: sha256(manifest) };
}

// --- a small authenticated client -----------------------------------------------------------

// Authorization per registry and repository, so a tag loop does one token request, not hundreds.
const authCache = new WeakMap<object, Map<string, string>>();

function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/s.exec(h.trim());
  const params: Record<string, string> = {};
  for (const p of (m?.[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) if (p[1]) params[p[1].toLowerCase()] = p[2] ?? '';
  return { scheme: (m?.[1] ?? '').toLowerCase(), params };
}

async function authorize(target: PushTarget, repo: string, challenge: string): Promise<string> {
  const { scheme, params } = parseChallenge(challenge);
  const basic = `Basic ${Buffer.from(`${target.admin.username}:${target.admin.password}`).toString('base64')}`;
  if (scheme === 'basic') return basic;
  if (scheme !== 'bearer' || !params.realm) throw new Error(`push: unsupported challenge ${challenge}`);
  const u = new URL(params.realm);
  if (params.service) u.searchParams.set('service', params.service);
  u.searchParams.set('scope', `repository:${repo}:pull,push`);
  const res = await request(u, { headers: { authorization: basic }, dispatcher: target.dispatcher });
  if (res.statusCode !== 200) throw new Error(`push: token request ${res.statusCode}: ${await res.body.text()}`);
  const body = (await res.body.json()) as { token?: string; access_token?: string };
  return `Bearer ${body.token ?? body.access_token}`;
}

async function call(
  target: PushTarget,
  repo: string,
  method: Dispatcher.HttpMethod,
  url: string,
  headers: Record<string, string> = {},
  body?: Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  let cache = authCache.get(target);
  if (!cache) authCache.set(target, (cache = new Map()));
  for (let attempt = 0; attempt < 2; attempt++) {
    const auth = cache.get(repo);
    const res = await request(url, {
      method,
      headers: { ...headers, ...(auth ? { authorization: auth } : {}) },
      ...(body ? { body } : {}),
      dispatcher: target.dispatcher,
    });
    const text = await res.body.text();
    if (res.statusCode === 401 && attempt === 0) {
      const challenge = res.headers['www-authenticate'];
      if (typeof challenge !== 'string') throw new Error(`push: 401 without challenge on ${method} ${url}`);
      cache.set(repo, await authorize(target, repo, challenge));
      continue;
    }
    return { status: res.statusCode, headers: res.headers, text };
  }
  throw new Error('unreachable');
}

async function pushBlob(target: PushTarget, repo: string, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const base = target.direct.url;
  const head = await call(target, repo, 'HEAD', `${base}/v2/${repo}/blobs/${digest}`);
  if (head.status === 200) return digest;
  const start = await call(target, repo, 'POST', `${base}/v2/${repo}/blobs/uploads/`);
  const location = start.headers.location;
  if (start.status !== 202 || typeof location !== 'string') {
    throw new Error(`push: start upload ${repo} -> ${start.status} ${start.text}`);
  }
  const put = new URL(location, base);
  put.searchParams.set('digest', digest);
  const done = await call(target, repo, 'PUT', put.toString(), { 'content-type': 'application/octet-stream' }, blob);
  if (done.status !== 201) throw new Error(`push: blob PUT ${repo}@${digest} -> ${done.status} ${done.text}`);
  return digest;
}

async function putManifest(
  target: PushTarget,
  repo: string,
  ref: string,
  mediaType: string,
  manifest: Buffer,
): Promise<string> {
  const res = await call(
    target,
    repo,
    'PUT',
    `${target.direct.url}/v2/${repo}/manifests/${ref}`,
    { 'content-type': mediaType },
    manifest,
  );
  if (res.status !== 201) throw new Error(`push: manifest PUT ${repo}:${ref} -> ${res.status} ${res.text}`);
  const digest = sha256(manifest);
  const got = res.headers['docker-content-digest'];
  if (got !== undefined && got !== digest) throw new Error(`push: registry digest ${String(got)} != ${digest}`);
  return digest;
}

// --- public API -----------------------------------------------------------------------------

/** Push a one-layer image for one platform; `tag` undefined pushes by digest only. */
export async function pushImage(
  target: PushTarget,
  repo: string,
  tag: string | undefined,
  opts: PushImageOptions = {},
): Promise<PushedImage> {
  const img = buildImage(opts);
  const [configDigest, layerDigest] = await Promise.all([
    pushBlob(target, repo, img.config),
    pushBlob(target, repo, img.layer),
  ]);
  const digest = await putManifest(target, repo, tag ?? img.digest, img.mediaType, img.manifest);
  return {
    repo,
    tag,
    digest,
    mediaType: img.mediaType,
    size: img.manifest.length,
    manifest: img.manifest,
    configDigest,
    layerDigest,
    platform: img.platform,
  };
}

/** Push one image per platform (by digest), then an index (or Docker manifest list) over them. */
export async function pushIndex(
  target: PushTarget,
  repo: string,
  tag: string | undefined,
  platforms: (string | Platform)[],
  opts: PushIndexOptions = {},
): Promise<PushedIndex> {
  const docker = opts.format === 'docker';
  const children: PushedImage[] = [];
  for (const p of platforms) {
    children.push(
      await pushImage(target, repo, undefined, {
        platform: p,
        format: opts.format ?? 'oci',
        ...(opts.seed ? { seed: opts.seed } : {}),
      }),
    );
  }
  const mediaType = docker ? MEDIA.dockerList : MEDIA.ociIndex;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: children.map((c) => ({
        mediaType: c.mediaType,
        digest: c.digest,
        size: c.size,
        platform: c.platform,
      })),
      ...(opts.annotations && !docker ? { annotations: opts.annotations } : {}),
    }),
  );
  const digest = await putManifest(target, repo, tag ?? sha256(manifest), mediaType, manifest);
  return { repo, tag, digest, mediaType, size: manifest.length, manifest, manifests: children };
}

/** Push one image under many tags (blobs once, then one manifest PUT per tag). */
export async function pushTags(
  target: PushTarget,
  repo: string,
  tags: string[],
  opts: PushImageOptions = {},
): Promise<PushedImage & { tags: string[] }> {
  const img = await pushImage(target, repo, undefined, opts);
  const queue = [...tags];
  const worker = async () => {
    for (let t = queue.shift(); t !== undefined; t = queue.shift())
      await putManifest(target, repo, t, img.mediaType, img.manifest);
  };
  await Promise.all(Array.from({ length: Math.min(8, tags.length) }, worker));
  return { ...img, tags };
}
