// distribution/reference Parse and the With* builders: syntax only, no Docker Hub defaults.

import { ImageReferenceError, sentinel } from './errors.ts';
import { anchoredDigestRegexp, anchoredNameRegexp, anchoredTagRegexp, referenceRegexp } from './grammar.ts';
import { validateDigest } from './digest.ts';
import { goToLower } from './text.ts';

export interface Reference {
  domain: string;
  path: string;
  /** domain ? domain + '/' + path : path */
  name: string;
  tag: string | null;
  digest: string | null;
}

/** A reference with no name, from ParseAnyReference on a bare digest or 64-hex identifier. */
export interface DigestReference {
  digest: string;
}

/** Upstream limits the path alone since v0.6.0; the domain does not count. */
export const PATH_MAX_LENGTH = 255;

export function makeReference(domain: string, path: string, tag: string | null, digest: string | null): Reference {
  return { domain, path, name: domain ? `${domain}/${path}` : path, tag, digest };
}

export function isNamed(r: Reference | DigestReference): r is Reference {
  return 'name' in r;
}

/** String(): name[:tag][@digest], or the digest alone for a digest-only reference. */
export function referenceString(r: Reference | DigestReference): string {
  if (!isNamed(r)) return r.digest;
  let s = r.name;
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

function splitName(name: string): { domain: string; path: string } | null {
  const m = anchoredNameRegexp.exec(name);
  if (!m) return null;
  return { domain: m[1] ?? '', path: m[2] ?? '' };
}

/** Parse: throws ImageReferenceError. */
export function parse(s: string): Reference {
  if (s === '') throw sentinel('ErrNameEmpty');
  const m = referenceRegexp.exec(s);
  if (!m) {
    // the lowercased input parsing means the only fault is uppercase in the repository name
    const lower = goToLower(s);
    if (lower !== s && referenceRegexp.test(lower)) throw sentinel('ErrNameContainsUppercase');
    throw sentinel('ErrReferenceInvalidFormat');
  }
  const name = m[1] ?? '';
  const { domain, path } = splitName(name) ?? { domain: '', path: name };
  if (path.length > PATH_MAX_LENGTH) throw sentinel('ErrNameTooLong');
  const digest = m[3] || null;
  if (digest !== null) validateDigest(digest);
  return makeReference(domain, path, m[2] || null, digest);
}

/** WithName: a name without tag or digest. */
export function withName(s: string): Reference {
  const parts = splitName(s);
  if (!parts) throw sentinel('ErrReferenceInvalidFormat');
  if (parts.path.length > PATH_MAX_LENGTH) throw sentinel('ErrNameTooLong');
  return makeReference(parts.domain, parts.path, null, null);
}

/** WithTag keeps any digest, as upstream does for a Canonical reference. */
export function withTag(r: Reference, tag: string): Reference {
  if (!anchoredTagRegexp.test(tag)) throw sentinel('ErrTagInvalidFormat');
  return makeReference(r.domain, r.path, tag, r.digest);
}

/** WithDigest checks the digest grammar only (not its length), as upstream does; keeps any tag. */
export function withDigest(r: Reference, digest: string): Reference {
  if (!anchoredDigestRegexp.test(digest)) {
    // distribution/reference's own ErrDigestInvalidFormat, worded unlike go-digest's
    throw new ImageReferenceError('ErrDigestInvalidFormat', 'invalid digest format');
  }
  return makeReference(r.domain, r.path, r.tag, digest);
}
