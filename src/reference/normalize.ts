// distribution/reference normalize.go: the Docker defaults (docker.io, library/) and the
// familiar (short) forms.

import { ImageReferenceError, sentinel } from './errors.ts';
import { anchoredIdentifierRegexp } from './grammar.ts';
import { isValidDigest } from './digest.ts';
import {
  type DigestReference,
  type Reference,
  isNamed,
  makeReference,
  parse,
  referenceString,
  withDigest,
  withName,
  withTag,
} from './parse.ts';
import { escapeNonPrintable, goToLower } from './text.ts';

export const DEFAULT_DOMAIN = 'docker.io';
export const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
export const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';

/** splitDockerDomain: which part is the registry, with the Docker Hub rewrites. */
export function splitDockerDomain(name: string): { domain: string; remainder: string } {
  const slash = name.indexOf('/');
  // a single component is always a Docker Hub image, even "localhost:5000" (image localhost, tag 5000)
  if (slash === -1) return { domain: DEFAULT_DOMAIN, remainder: OFFICIAL_REPO_PREFIX + name };
  const first = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  let domain: string;
  let remainder: string;
  if (first === 'localhost') {
    [domain, remainder] = [first, rest];
  } else if (first === LEGACY_DEFAULT_DOMAIN) {
    [domain, remainder] = [DEFAULT_DOMAIN, rest];
  } else if (first.includes('.') || first.includes(':')) {
    [domain, remainder] = [first, rest];
  } else if (goToLower(first) !== first) {
    // namespaces are lowercase, so an uppercase first component can only be a host
    [domain, remainder] = [first, rest];
  } else {
    [domain, remainder] = [DEFAULT_DOMAIN, name];
  }
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/** ParseNormalizedNamed: what the kubelet and containerd call on an image string. */
export function parseNormalizedNamed(s: string): Reference {
  if (anchoredIdentifierRegexp.test(s)) {
    throw new ImageReferenceError(
      'ErrNameIsIdentifier',
      `invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`,
    );
  }
  const { domain, remainder } = splitDockerDomain(s);
  const colon = remainder.indexOf(':');
  const remote = colon === -1 ? remainder : remainder.slice(0, colon);
  if (goToLower(remote) !== remote) {
    // the echoed text is escaped so that no control character reaches a log line or a response
    throw new ImageReferenceError(
      'ErrNameContainsUppercase',
      `invalid reference format: repository name (${escapeNonPrintable(remote)}) must be lowercase`,
    );
  }
  // every successful Parse of "domain/..." has a name, so upstream's "has no name" cannot happen
  return parse(`${domain}/${remainder}`);
}

/** ParseNamed: like ParseNormalizedNamed, but the input must already be in canonical form. */
export function parseNamed(s: string): Reference {
  const ref = parseNormalizedNamed(s);
  if (referenceString(ref) !== s) throw sentinel('ErrNameNotCanonical');
  return ref;
}

/** ParseAnyReference: a bare 64-hex identifier or a valid digest gives a digest-only reference. */
export function parseAnyReference(s: string): Reference | DigestReference {
  if (anchoredIdentifierRegexp.test(s)) return { digest: `sha256:${s}` };
  if (isValidDigest(s)) return { digest: s };
  return parseNormalizedNamed(s);
}

/** ParseDockerRef (containerd CRI): name only gets :latest; tag and digest keep only the digest. */
export function parseDockerRef(s: string): Reference {
  const ref = parseNormalizedNamed(s);
  if (ref.tag !== null && ref.digest !== null) return withDigest(withName(ref.name), ref.digest);
  return tagNameOnly(ref);
}

/** TagNameOnly: adds the default tag to a reference with neither tag nor digest. */
export function tagNameOnly(ref: Reference): Reference {
  if (ref.tag === null && ref.digest === null) return withTag(ref, DEFAULT_TAG);
  return ref;
}

function familiarize(ref: Reference): Reference {
  if (ref.domain !== DEFAULT_DOMAIN) return ref;
  let path = ref.path;
  // only a single component under library/ loses the prefix ("library/foo/bar" keeps it)
  if (path.startsWith(OFFICIAL_REPO_PREFIX) && !path.slice(OFFICIAL_REPO_PREFIX.length).includes('/')) {
    path = path.slice(OFFICIAL_REPO_PREFIX.length);
  }
  return makeReference('', path, ref.tag, ref.digest);
}

/** FamiliarName: the name as Docker shows it ("docker.io/library/redis" -> "redis"). */
export function familiarName(r: Reference): string {
  return familiarize(r).name;
}

/** FamiliarString: FamiliarName with tag and digest. */
export function familiarString(r: Reference | DigestReference): string {
  return isNamed(r) ? referenceString(familiarize(r)) : r.digest;
}
