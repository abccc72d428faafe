// Why a reference does not parse, and where: the upstream errors say only "invalid reference
// format"; people need the character and its position (1-based), as distribution/reference's
// finer errors (tag format, digest length, uppercase repository) would tell them.

const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const TAG = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;

const q = (s: string) => JSON.stringify(s);

/** One sentence on what is wrong and where, or undefined when nothing more specific is known. */
export function diagnoseReference(image: string): string | undefined {
  if (image === '') return 'the image is empty';
  const space = image.search(/\s/);
  if (space >= 0) return `whitespace at position ${space + 1}: an image reference has no spaces`;
  let rest = image;
  const at = image.indexOf('@');
  if (at >= 0) {
    const problem = digestProblem(image.slice(at + 1), at + 2);
    if (problem) return problem;
    rest = image.slice(0, at);
  }
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  let name = rest;
  if (colon > slash) {
    const problem = tagProblem(rest.slice(colon + 1), colon + 2);
    if (problem) return problem;
    name = rest.slice(0, colon);
  }
  return nameProblem(name);
}

function digestProblem(digest: string, pos: number): string | undefined {
  if (digest === '') return `nothing after "@" at position ${pos - 1}: a digest is sha256: and 64 hex characters`;
  const colon = digest.indexOf(':');
  if (colon < 0) return `digest ${q(digest)} at position ${pos} has no algorithm: write sha256:<64 hex characters>`;
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const want = DIGEST_HEX_LENGTH[algorithm];
  if (!want) return `digest algorithm ${q(algorithm)} at position ${pos} is not supported (sha256, sha384 or sha512)`;
  const bad = hex.search(/[^a-f0-9]/);
  if (bad >= 0)
    return `digest has ${q(hex[bad]!)} at position ${pos + colon + 1 + bad}: only lowercase hex characters (0-9, a-f)`;
  if (hex.length !== want)
    return `digest ${q(digest)} has ${hex.length} hex characters, ${algorithm} needs ${want} (a digest copied in part?)`;
  return undefined;
}

function tagProblem(tag: string, pos: number): string | undefined {
  if (tag === '') return `the tag after ":" at position ${pos - 1} is empty: write the tag, or leave out the ":"`;
  if (TAG.test(tag)) return undefined;
  if (tag.length > 128) return `tag ${q(tag.slice(0, 20))}… is ${tag.length} characters long, at most 128`;
  if (!/^\w/.test(tag))
    return `tag ${q(tag)} starts with ${q(tag[0]!)} at position ${pos}: a tag starts with a letter, digit or "_"`;
  const bad = tag.search(/[^\w.-]/);
  return `tag ${q(tag)} has ${q(tag[bad]!)} at position ${pos + bad}: a tag has only letters, digits, "_", "." and "-"`;
}

function nameProblem(name: string): string | undefined {
  const parts = name.split('/');
  let offset = 1;
  // A first component with "." or ":", or localhost, is the registry host (when more follow).
  if (parts.length > 1 && (/[.:]/.test(parts[0]!) || parts[0] === 'localhost')) {
    const [host, port] = parts[0]!.split(/:(.*)/s) as [string, string | undefined];
    for (const component of host.split('.')) {
      if (!DOMAIN_COMPONENT.test(component))
        return `registry host ${q(parts[0]!)} at position 1 is not a host name (letters, digits and "-" between dots)`;
    }
    if (port !== undefined && !/^\d+$/.test(port))
      return `registry port ${q(port)} at position ${host.length + 2} is not a number`;
    offset += parts[0]!.length + 1;
    parts.shift();
  }
  const path = parts.join('/');
  if (path.length > 255) return `repository name is ${path.length} characters long, at most 255`;
  for (const component of parts) {
    if (component === '')
      return `empty repository name component at position ${offset}: no "//", and no "/" at the start or end`;
    if (!PATH_COMPONENT.test(component)) {
      const upper = component.search(/[A-Z]/);
      if (upper >= 0)
        return `repository name must be lowercase: ${q(component[upper]!)} at position ${offset + upper} (only a tag may have uppercase letters)`;
      const bad = component.search(/[^a-z0-9._-]/);
      if (bad >= 0)
        return `${q(component[bad]!)} at position ${offset + bad} is not allowed in a repository name (lowercase letters, digits and the separators ".", "_", "__", "-")`;
      return `repository name component ${q(component)} at position ${offset}: separators (".", "_", "__", "-") stand between letters or digits`;
    }
    offset += component.length + 1;
  }
  return undefined;
}
