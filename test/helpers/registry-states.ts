// The registry states users hit with pull-through caches and partial syncs (kube-image-keeper#626
// and #613, spegel#1378, harbor#22428 and #20079), built for real: a platform manifest deleted
// from an index, a layer or config blob deleted from the repository (distribution with
// storage.delete.enabled, as test/helpers/registry.ts starts it), and a stale cache whose tag
// answers with a digest it no longer serves (a small server of its own).
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { buildImage, type PushImageOptions } from './images.ts';
import type { TestRegistry } from './registry.ts';

type Deletable = Pick<TestRegistry, 'direct' | 'dispatcher' | 'admin' | 'auth'>;

async function del(reg: Deletable, path: string): Promise<void> {
  if (reg.auth === 'token') throw new Error('registry-states: deleting needs an anonymous or htpasswd registry');
  const headers: Record<string, string> =
    reg.auth === 'htpasswd'
      ? { authorization: `Basic ${Buffer.from(`${reg.admin.username}:${reg.admin.password}`).toString('base64')}` }
      : {};
  const res = await request(`${reg.direct.url}${path}`, { method: 'DELETE', headers, dispatcher: reg.dispatcher });
  const text = await res.body.text();
  if (res.statusCode !== 202) throw new Error(`DELETE ${path} -> ${res.statusCode} ${text}`);
}

/** Deletes a manifest (by digest) from a repository: an index's entry stays, its manifest is gone. */
export function deleteManifest(reg: Deletable, repo: string, digest: string): Promise<void> {
  return del(reg, `/v2/${repo}/manifests/${digest}`);
}

/** Unlinks a blob (a layer or a config) from a repository: GET and HEAD there answer 404 BLOB_UNKNOWN. */
export function deleteBlob(reg: Deletable, repo: string, digest: string): Promise<void> {
  return del(reg, `/v2/${repo}/blobs/${digest}`);
}

export interface StaleCache {
  /** '127.0.0.1:PORT' */
  host: string;
  url: string;
  /** the digest the tag points to, which is never served */
  digest: string;
  /** requests as "METHOD /path" */
  log: string[];
  stop(): Promise<void>;
}

/**
 * A cache whose tag index is stale: HEAD or GET of `repo:tag` answers with a manifest and its digest,
 * every request by digest (manifests and blobs) is a 404 MANIFEST_UNKNOWN/BLOB_UNKNOWN. Plain HTTP
 * on loopback, as containerd reaches 127.0.0.1 without a hosts.toml.
 */
export async function startStaleCache(repo: string, tag: string, image: PushImageOptions = {}): Promise<StaleCache> {
  const built = buildImage(image);
  const log: string[] = [];
  const notFound = (code: string) =>
    JSON.stringify({
      errors: [{ code, message: code === 'BLOB_UNKNOWN' ? 'blob unknown to registry' : 'manifest unknown' }],
    });
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    log.push(`${req.method} ${path}`);
    const headers = { 'docker-distribution-api-version': 'registry/2.0' };
    if (path === '/v2/' || path === '/v2') {
      res.writeHead(200, { ...headers, 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    if (path === `/v2/${repo}/manifests/${tag}`) {
      res.writeHead(200, {
        ...headers,
        'content-type': built.mediaType,
        'content-length': String(built.manifest.length),
        'docker-content-digest': built.digest,
      });
      res.end(req.method === 'HEAD' ? undefined : built.manifest);
      return;
    }
    const body = notFound(path.includes('/blobs/') ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN');
    res.writeHead(404, { ...headers, 'content-type': 'application/json', 'content-length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    digest: built.digest,
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Pushes an image of `layers` distinct small layers to an anonymous registry (the push helpers make
 * one-layer images): for the limits on layers checked. The bytes need not be tar archives, since
 * nothing here unpacks them.
 */
export async function pushLayered(
  reg: Pick<TestRegistry, 'direct' | 'dispatcher'>,
  repo: string,
  tag: string,
  layers: number,
): Promise<{ digest: string; layers: string[]; config: string }> {
  const put = async (blob: Buffer): Promise<string> => {
    const digest = sha256(blob);
    const start = await request(`${reg.direct.url}/v2/${repo}/blobs/uploads/`, {
      method: 'POST',
      dispatcher: reg.dispatcher,
    });
    await start.body.dump();
    const location = start.headers.location;
    if (start.statusCode !== 202 || typeof location !== 'string')
      throw new Error(`upload ${repo}: ${start.statusCode}`);
    const url = new URL(location, reg.direct.url);
    url.searchParams.set('digest', digest);
    const done = await request(url, {
      method: 'PUT',
      body: blob,
      headers: { 'content-type': 'application/octet-stream' },
      dispatcher: reg.dispatcher,
    });
    await done.body.dump();
    if (done.statusCode !== 201) throw new Error(`blob PUT ${repo}: ${done.statusCode}`);
    return digest;
  };
  const blobs = Array.from({ length: layers }, (_, i) => Buffer.from(`${repo}:${tag} layer ${i}\n`));
  const digests: string[] = [];
  for (const b of blobs) digests.push(await put(b));
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: digests } }),
  );
  const configDigest = await put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: blobs.map((b, i) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: digests[i],
        size: b.length,
      })),
    }),
  );
  const res = await request(`${reg.direct.url}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body: manifest,
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    dispatcher: reg.dispatcher,
  });
  await res.body.dump();
  if (res.statusCode !== 201) throw new Error(`manifest PUT ${repo}:${tag}: ${res.statusCode}`);
  return { digest: sha256(manifest), layers: digests, config: configDigest };
}
