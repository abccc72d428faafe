// The manifest vocabulary pullguard shares with containerd: media types, the Accept list it resolves
// with, its size limit, and bodies checked against the digest they were asked by.

import { createHash } from 'node:crypto';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** What containerd sends when it resolves: without the OCI types, registries answer "not found" for indexes. */
export const MANIFEST_ACCEPT = [MEDIA.dockerManifest, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.ociIndex, '*/*'].join(
  ', ',
);

/** containerd's MaxManifestSize (4 * 1048 * 1048, sic). */
export const MAX_MANIFEST_SIZE = 4 * 1048 * 1048;

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList;
}

/** A Content-Type or mediaType without its parameters. */
export function bareMediaType(value: string): string {
  return value.split(';')[0]!.trim();
}

/** The body as a JSON object, when it matches the digest (of a known algorithm) and is one. */
export function parseVerified(body: Buffer, digest: string): Record<string, unknown> | undefined {
  const [algorithm, hex] = digest.split(':');
  const known = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' }[algorithm ?? ''];
  if (known && createHash(known).update(body).digest('hex') !== hex) return undefined;
  try {
    const json = JSON.parse(body.toString('utf8')) as unknown;
    return json && typeof json === 'object' && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The sha256 digest of a body, for registries that send none (containerd hashes it too). */
export function sha256Digest(body: Buffer): string {
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}
