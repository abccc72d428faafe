// go-digest's Digest.Validate, with the algorithms the kubelet links in: pkg/util/parsers imports
// crypto/sha256 and crypto/sha512, which register sha256, sha384 and sha512.

import { ImageReferenceError, sentinel } from './errors.ts';

const HEX_LENGTH = new Map<string, number>([
  ['sha256', 64],
  ['sha384', 96],
  ['sha512', 128],
]);

// go-digest's DigestRegexpAnchored: for an unknown algorithm it decides between
// "invalid format" and "unsupported"
const digestSyntax = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Throws a ImageReferenceError (ErrDigestInvalidFormat, ErrDigestInvalidLength, ErrDigestUnsupported). */
export function validateDigest(d: string): void {
  const colon = d.indexOf(':');
  if (colon <= 0 || colon + 1 === d.length) throw sentinel('ErrDigestInvalidFormat');
  const encoded = d.slice(colon + 1);
  const length = HEX_LENGTH.get(d.slice(0, colon));
  if (length === undefined) {
    throw sentinel(digestSyntax.test(d) ? 'ErrDigestUnsupported' : 'ErrDigestInvalidFormat');
  }
  if (encoded.length !== length) throw sentinel('ErrDigestInvalidLength');
  // lowercase hex only
  if (!/^[a-f0-9]+$/.test(encoded)) throw sentinel('ErrDigestInvalidFormat');
}

export function isValidDigest(d: string): boolean {
  try {
    validateDigest(d);
    return true;
  } catch (err) {
    if (err instanceof ImageReferenceError) return false;
    throw err;
  }
}
