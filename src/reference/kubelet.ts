// What the kubelet does with a container's image string: pkg/util/parsers.ParseImageName
// (ParseNormalizedNamed underneath; any error is InvalidImageName), then the CRI runtime pulls
// ParseDockerRef of it.

import { ImageReferenceError } from './errors.ts';
import { type Reference, referenceString } from './parse.ts';
import { DEFAULT_TAG, parseDockerRef, parseNormalizedNamed } from './normalize.ts';
import { goQuote } from './text.ts';

/** The OCI spec notes that many clients cap host[:port]/name at 255 characters. */
const FULL_NAME_WARN_LENGTH = 255;

function couldNotParse(image: string, err: ImageReferenceError): ImageReferenceError {
  return new ImageReferenceError(err.kind, `couldn't parse image name ${goQuote(image)}: ${err.message}`);
}

/**
 * kubelet ParseImageName: repo is the normalized name the credential keyring is asked about;
 * tag is "latest" when neither tag nor digest is given; absent parts are "".
 */
export function parseImageName(image: string): { repo: string; tag: string; digest: string } {
  let ref: Reference;
  try {
    ref = parseNormalizedNamed(image);
  } catch (err) {
    if (err instanceof ImageReferenceError) throw couldNotParse(image, err);
    throw err;
  }
  const digest = ref.digest ?? '';
  const tag = ref.tag ?? (digest ? '' : DEFAULT_TAG);
  return { repo: ref.name, tag, digest };
}

export interface ImageRef {
  input: string;
  domain: string;
  path: string;
  name: string;
  tag: string | null;
  digest: string | null;
  /** the reference containerd resolves: name@digest when a digest is given (tag ignored), else name:tag (default latest) */
  pullRef: string;
  /** name:tag@digest as normalized, for display */
  normalized: string;
  /** non-fatal notes, e.g. full name over 255 characters which some clients refuse */
  warnings: string[];
}

export type ParseImageResult = { ok: true; ref: ImageRef } | { ok: false; error: string; kind: string };

/** Parses an image as the kubelet will; an error is the kubelet's InvalidImageName. */
export function parseImage(input: string): ParseImageResult {
  if (typeof input !== 'string') {
    return { ok: false, error: 'image is not a string', kind: 'ErrReferenceInvalidFormat' };
  }
  let ref: Reference;
  let pull: Reference;
  try {
    ref = parseNormalizedNamed(input);
    pull = parseDockerRef(input);
  } catch (err) {
    if (err instanceof ImageReferenceError) {
      const e = couldNotParse(input, err);
      return { ok: false, error: e.message, kind: e.kind };
    }
    throw err;
  }
  const warnings: string[] = [];
  if (ref.name.length > FULL_NAME_WARN_LENGTH) {
    warnings.push(
      `the full name ${ref.name.length} characters long exceeds ${FULL_NAME_WARN_LENGTH}; the kubelet accepts it but some registries and clients refuse it`,
    );
  }
  if (ref.tag !== null && ref.digest !== null) {
    warnings.push(`tag "${ref.tag}" is ignored: the digest is pulled`);
  }
  return {
    ok: true,
    ref: {
      input,
      domain: ref.domain,
      path: ref.path,
      name: ref.name,
      tag: ref.tag,
      digest: ref.digest,
      pullRef: referenceString(pull),
      normalized: referenceString(ref),
      warnings,
    },
  };
}
