// Image references parsed and normalized as distribution/reference and the kubelet do.

export { ImageReferenceError } from './errors.ts';
export type { SentinelKind } from './errors.ts';
export type { DigestReference, Reference } from './parse.ts';
export { isNamed, parse, referenceString, withDigest, withName, withTag } from './parse.ts';
export {
  DEFAULT_DOMAIN,
  DEFAULT_TAG,
  familiarName,
  familiarString,
  parseAnyReference,
  parseDockerRef,
  parseNamed,
  parseNormalizedNamed,
} from './normalize.ts';
export { familiarMatch } from './match.ts';
export type { ImageRef, ParseImageResult } from './kubelet.ts';
export { parseImage, parseImageName } from './kubelet.ts';
