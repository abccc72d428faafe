// Docker config decoding as the kubelet does it (pkg/credentialprovider/config.go): the
// `.dockerconfigjson` shape {"auths": {...}}, the legacy `.dockercfg` flat map, and the base64
// `auth` field. Go's encoding/json and encoding/base64 rules are reproduced where they change
// which secrets work, so that a secret pullguard accepts is one the kubelet accepts.
//
// Error messages never contain a credential value: only registry keys and field names.

import { PullguardError } from '../errors.ts';

export interface DockerConfigEntry {
  username: string;
  password: string;
  email: string;
}

export class DockerConfigError extends PullguardError {
  readonly code = 'docker-config';
}

/** The kubelet's wrapper message for any JSON failure when reading config bytes. */
export const UNMARSHAL_ERROR = 'error occurred while trying to unmarshal json';

const B64_CHARS = /^[A-Za-z0-9+/]*$/;
// StdEncoding: whole quanta, padding only in the last one.
const B64_PADDED = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes the `auth` field: base64("user:pass"). Like the kubelet, a value ending in `=` is read
 * with padding, anything else without; `\r` and `\n` anywhere are skipped (Go's decoder does),
 * every other stray character (a trailing space included) is an error, and so is a missing `:`.
 */
export function decodeAuthField(auth: string): { username: string; password: string } {
  const padded = auth.trim().endsWith('=');
  const compact = auth.replace(/[\r\n]/g, '');
  const valid = padded ? B64_PADDED.test(compact) : B64_CHARS.test(compact) && compact.length % 4 !== 1;
  if (!valid) {
    throw new DockerConfigError('"auth" is not valid base64 (expected base64 of "username:password")');
  }
  // Non-fatal UTF-8 decoding: Go keeps raw bytes, a registry password is text in practice.
  const decoded = Buffer.from(compact, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) {
    throw new DockerConfigError('"auth" must be formatted as base64(username:password)');
  }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** What the kubelet writes when it marshals an entry: omitempty fields plus the derived `auth`. */
export function encodeEntry(e: DockerConfigEntry): string {
  const auth = Buffer.from(`${e.username}:${e.password}`, 'utf8').toString('base64');
  const parts: string[] = [];
  if (e.username !== '') parts.push(`"username":${goJSONString(e.username)}`);
  if (e.password !== '') parts.push(`"password":${goJSONString(e.password)}`);
  if (e.email !== '') parts.push(`"email":${goJSONString(e.email)}`);
  parts.push(`"auth":${goJSONString(auth)}`);
  return `{${parts.join(',')}}`;
}

/**
 * One entry object, as DockerConfigEntry.UnmarshalJSON: `auth`, when non-empty, replaces
 * username and password. Fields match case-insensitively and unknown fields (identitytoken,
 * registrytoken, ...) are ignored, as Go's encoding/json does: the kubelet never uses them.
 * `key` only names the entry in error messages.
 */
export function decodeEntry(raw: unknown, key?: string): DockerConfigEntry {
  const where = key === undefined ? 'entry' : `entry ${JSON.stringify(key)}`;
  if (raw === null) return { username: '', password: '', email: '' };
  if (!isObject(raw)) throw new DockerConfigError(`${where}: expected a JSON object`);
  const fields = { username: '', password: '', email: '', auth: '' };
  for (const [name, value] of Object.entries(raw)) {
    const field = FIELDS.get(goFold(name));
    if (field === undefined) continue;
    if (value === null) continue; // null leaves a Go string unchanged
    if (typeof value !== 'string') throw new DockerConfigError(`${where}: field "${field}" must be a string`);
    fields[field] = value;
  }
  if (fields.auth === '') return { username: fields.username, password: fields.password, email: fields.email };
  try {
    return { ...decodeAuthField(fields.auth), email: fields.email };
  } catch (err) {
    throw new DockerConfigError(`${where}: ${(err as Error).message}`);
  }
}

/** `.dockerconfigjson` ({"auths": {...}}); any bad entry fails the whole secret, as in the kubelet. */
export function parseDockerConfigJSON(text: string): Map<string, DockerConfigEntry> {
  return decodeDockerConfigJSON(parseJSON(text));
}

function decodeDockerConfigJSON(top: unknown): Map<string, DockerConfigEntry> {
  if (top === null) return new Map();
  if (!isObject(top)) throw new DockerConfigError(UNMARSHAL_ERROR);
  let auths = new Map<string, DockerConfigEntry>();
  for (const [name, value] of Object.entries(top)) {
    const folded = goFold(name);
    if (folded === 'AUTHS') {
      // Go fills one map from every key that folds to "auths" ("auths", "Auths", ...), later
      // entries replacing equal keys. (Exact duplicate keys never reach here: JSON.parse keeps
      // only the last, where Go would merge them; no real secret has them.)
      if (value !== null) auths = decodeFlat(value, auths);
    } else if (folded === 'HTTPHEADERS') {
      // Declared on the kubelet's struct, so a wrong type is an error there too.
      if (
        value !== null &&
        (!isObject(value) || Object.values(value).some((v) => v !== null && typeof v !== 'string'))
      ) {
        throw new DockerConfigError('"HttpHeaders" must map names to strings');
      }
    }
  }
  return auths;
}

/** Legacy `.dockercfg`: a flat map of registry key to entry. */
export function parseDockercfg(text: string): Map<string, DockerConfigEntry> {
  return decodeDockercfg(parseJSON(text));
}

function decodeDockercfg(top: unknown): Map<string, DockerConfigEntry> {
  if (top === null) return new Map();
  return decodeFlat(top, new Map());
}

// Settings a docker CLI config.json can hold besides "auths"; a file with any of them is in the
// config.json shape even when it has no "auths" (for example only credsStore / credHelpers).
const CLI_CONFIG_KEYS = new Set(
  [
    'auths',
    'HttpHeaders',
    'credsStore',
    'credHelpers',
    'psFormat',
    'imagesFormat',
    'detachKeys',
    'proxies',
    'currentContext',
    'plugins',
    'experimental',
    'aliases',
    'features',
  ].map(goFold),
);

/**
 * A node's docker config file. The kubelet tells the two shapes apart by file name (config.json
 * vs .dockercfg); given only the content, the shape is config.json when the top level has an
 * `auths` key or another docker CLI setting, and the legacy flat map otherwise.
 */
export function parseDockerConfigFile(text: string): Map<string, DockerConfigEntry> {
  return parseDockerConfigFileJSON(text).entries;
}

/**
 * parseDockerConfigFile, parsing the text once and handing back the parsed JSON too, for the
 * settings besides the credentials that the kubelet does not read (docker's credential helpers).
 */
export function parseDockerConfigFileJSON(text: string): { entries: Map<string, DockerConfigEntry>; json: unknown } {
  const top = parseJSON(text);
  const cli = isObject(top) && Object.keys(top).some((k) => CLI_CONFIG_KEYS.has(goFold(k)));
  return { entries: cli ? decodeDockerConfigJSON(top) : decodeDockercfg(top), json: top };
}

function decodeFlat(value: unknown, into: Map<string, DockerConfigEntry>): Map<string, DockerConfigEntry> {
  if (!isObject(value)) throw new DockerConfigError(UNMARSHAL_ERROR);
  for (const [key, entry] of Object.entries(value)) into.set(key, decodeEntry(entry, key));
  return into;
}

function parseJSON(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // JSON.parse's message may quote the input, and the input holds secrets.
    throw new DockerConfigError(UNMARSHAL_ERROR);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Go's encoding/json matches object keys to struct fields case-insensitively: ASCII letters fold,
// and the only non-ASCII runes that fold onto ASCII are the Kelvin sign (K) and long s (S).
function goFold(s: string): string {
  return s.replace(/[a-z\u212a\u017f]/g, (c) => (c === '\u212a' ? 'K' : c === '\u017f' ? 'S' : c.toUpperCase()));
}

const FIELDS = new Map<string, 'username' | 'password' | 'email' | 'auth'>([
  ['USERNAME', 'username'],
  ['PASSWORD', 'password'],
  ['EMAIL', 'email'],
  ['AUTH', 'auth'],
]);

// Go's json.Marshal additionally escapes <, > and & and the JS line terminators U+2028/U+2029.
function goJSONString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
