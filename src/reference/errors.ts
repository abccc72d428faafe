// Errors carry the name of the upstream sentinel they stand for, so callers can branch on `kind`
// and tests can compare with the vectors, while `message` keeps upstream's text.

import { PullguardError } from '../errors.ts';

const SENTINEL_MESSAGES = {
  // distribution/reference
  ErrReferenceInvalidFormat: 'invalid reference format',
  ErrTagInvalidFormat: 'invalid tag format',
  ErrNameContainsUppercase: 'repository name must be lowercase',
  ErrNameEmpty: 'repository name must have at least one component',
  ErrNameTooLong: 'repository name must not be more than 255 characters',
  ErrNameNotCanonical: 'repository name must be canonical',
  // opencontainers/go-digest v1.0.0 (the version the kubelet vendors)
  ErrDigestInvalidFormat: 'invalid checksum digest format',
  ErrDigestInvalidLength: 'invalid checksum digest length',
  ErrDigestUnsupported: 'unsupported digest algorithm',
  // path.ErrBadPattern, from FamiliarMatch
  ErrBadPattern: 'syntax error in pattern',
} as const;

export type SentinelKind = keyof typeof SENTINEL_MESSAGES;

/**
 * kind is the upstream sentinel's name. Two upstream errors are formatted strings rather than
 * sentinels; they get kinds of their own: ErrNameContainsUppercase for ParseNormalizedNamed's
 * "invalid reference format: repository name (x) must be lowercase", and ErrNameIsIdentifier for
 * "invalid repository name (x), cannot specify 64-byte hexadecimal strings".
 * Note: distribution/reference's own ErrDigestInvalidFormat ("invalid digest format", from
 * WithDigest) shares its name with go-digest's; both use kind ErrDigestInvalidFormat.
 */
export class ImageReferenceError extends PullguardError {
  readonly code = 'image-reference';
  readonly kind: string;

  constructor(kind: string, message: string) {
    super(message);
    this.kind = kind;
  }
}

export function sentinel(kind: SentinelKind): ImageReferenceError {
  return new ImageReferenceError(kind, SENTINEL_MESSAGES[kind]);
}
