// The kubelet's credential keyring (pkg/credentialprovider/keyring.go): which stored credentials a
// pull of an image would try, and in which order. The rules are odd on purpose (raw string prefix
// on paths, per-label globs, reverse-sorted keys, a Docker Hub fallback); docs/protocol.md (Keyring matching) and the
// keyring vectors pin them. Go's net/url and path/filepath are reproduced only as far as they
// decide whether a key parses and matches.

import type { DockerConfigEntry } from './dockerconfig.ts';

export interface Credential {
  username: string;
  password: string;
  /** where it came from, for messages, e.g. 'secret shop/regcred' or 'file /etc/docker/config.json'; never the secret itself */
  source: string;
  /** the config key it was stored under */
  key: string;
}

/** The key under which Docker Hub credentials are found by the fallback (`https://index.docker.io/v1/` normalises to it). */
export const DEFAULT_REGISTRY_HOST = 'index.docker.io';

export class Keyring {
  // normalised key -> credentials in insertion order
  readonly #creds = new Map<string, Credential[]>();
  // normalised keys, reverse byte order, so deeper paths of a host come before the host
  #index: string[] = [];

  /** Adds one config key. Keys that do not parse as a URL are ignored, as the kubelet logs and skips them. */
  add(key: string, cred: Omit<Credential, 'key'>): void {
    const norm = normalizeKey(key);
    if (norm === undefined) return;
    const stored: Credential = Object.freeze({
      username: cred.username,
      password: cred.password,
      source: cred.source,
      key,
    });
    const list = this.#creds.get(norm);
    if (list) {
      list.push(stored);
      return;
    }
    this.#creds.set(norm, [stored]);
    this.#index.push(norm);
    this.#index.sort((a, b) => Buffer.compare(Buffer.from(b), Buffer.from(a)));
  }

  /** Adds every entry of one docker config, in the map's order. */
  addConfig(entries: Map<string, DockerConfigEntry>, source: string): void {
    for (const [key, e] of entries) this.add(key, { username: e.username, password: e.password, source });
  }

  /**
   * Every credential whose key matches `image` (the normalised repository name without tag or
   * digest, e.g. docker.io/library/nginx), most specific key first. Only when nothing matched does
   * a Docker Hub image fall back to the credentials stored under index.docker.io.
   */
  lookup(image: string): Credential[] {
    if (this.#creds.size === 0) return [];
    const out: Credential[] = [];
    for (const k of this.#index) {
      if (urlsMatchStr(k, image)) out.push(...(this.#creds.get(k) ?? []));
    }
    if (out.length > 0) return out;
    if (isDefaultRegistryMatch(image)) return [...(this.#creds.get(DEFAULT_REGISTRY_HOST) ?? [])];
    return [];
  }
}

/** kubelet's UnionDockerKeyring: each keyring looked up on its own (fallback included), results concatenated. */
export function unionLookup(keyrings: Keyring[], image: string): Credential[] {
  if (keyrings.length === 1) return keyrings[0]!.lookup(image);
  return keyrings.flatMap((k) => k.lookup(image));
}

/**
 * The index key the kubelet files a config key under: scheme dropped, a leading /v1/ or /v2/
 * dropped from the path, `host` or `host + path`. undefined when Go's url.Parse would reject it.
 */
export function normalizeKey(key: string): string | undefined {
  const value = key.startsWith('https://') || key.startsWith('http://') ? key : `https://${key}`;
  const url = parseGoURL(value);
  if (url === undefined) return undefined;
  let path = url.path;
  if (path.startsWith('/v2/') || path.startsWith('/v1/')) path = path.slice(3);
  return path.length > 0 && path !== '/' ? url.host + path : url.host;
}

/**
 * Does the key `glob` cover `target`? Both are read as `https://` + string. Ports must be equal
 * ('' when absent), hosts must have as many labels and each label must match as a filepath glob
 * (so `*` never crosses a dot), and the glob's path must be a plain string prefix of the target's.
 */
export function urlsMatchStr(glob: string, target: string): boolean {
  const g = parseGoURL(`https://${glob}`);
  const t = parseGoURL(`https://${target}`);
  if (g === undefined || t === undefined) return false;
  const gh = goSplitHostPort(g.host);
  const th = goSplitHostPort(t.host);
  if (gh.port !== th.port) return false;
  const gLabels = gh.host.split('.');
  const tLabels = th.host.split('.');
  if (gLabels.length !== tLabels.length) return false;
  if (!t.path.startsWith(g.path)) return false;
  return gLabels.every((label, i) => globMatch(label, tLabels[i] ?? ''));
}

/** Is `image` a Docker Hub name in the kubelet's eyes (for the index.docker.io fallback)? */
export function isDefaultRegistryMatch(image: string): boolean {
  const slash = image.indexOf('/');
  const first = slash < 0 ? image : image.slice(0, slash);
  if (first.length === 0) return false;
  if (slash < 0) return true;
  if (first === 'docker.io' || first === 'index.docker.io') return true;
  return !/[.:]/.test(first);
}

// ---------------------------------------------------------------------------------------------
// Go net/url.Parse, reduced to what decides host and path for an absolute http(s) URL.

interface GoURL {
  host: string;
  path: string;
}

function parseGoURL(raw: string): GoURL | undefined {
  if (/[\x00-\x1f\x7f]/.test(raw)) return undefined;
  const hash = raw.indexOf('#');
  const noFrag = hash < 0 ? raw : raw.slice(0, hash);
  if (hash >= 0 && percentDecode(raw.slice(hash + 1), false) === undefined) return undefined;
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(noFrag);
  if (!m) return undefined;
  let rest = noFrag.slice(m[0].length);
  const q = rest.indexOf('?');
  if (q >= 0) rest = rest.slice(0, q);
  if (!rest.startsWith('//')) return undefined; // never happens for our inputs: always scheme://
  let authority = rest.slice(2);
  let path = '';
  const slash = authority.indexOf('/');
  if (slash >= 0) {
    path = authority.slice(slash);
    authority = authority.slice(0, slash);
  }
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    if (!/^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(userinfo) || percentDecode(userinfo, false) === undefined)
      return undefined;
    authority = authority.slice(at + 1);
  }
  const host = parseGoHost(authority);
  const decodedPath = percentDecode(path, false);
  if (host === undefined || decodedPath === undefined) return undefined;
  return { host, path: decodedPath };
}

function parseGoHost(host: string): string | undefined {
  if (host.startsWith('[')) {
    const close = host.lastIndexOf(']');
    if (close < 0 || !validOptionalPort(host.slice(close + 1))) return undefined;
    // Recent Go accepts only an IPv6 address (plus an optional %25 zone) inside the brackets.
    const inside = host.slice(1, close);
    const zone = inside.indexOf('%25');
    const addr = zone < 0 ? inside : inside.slice(0, zone);
    if (!isIPv6(addr)) return undefined;
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0 && !validOptionalPort(host.slice(colon))) return undefined;
  }
  return percentDecode(host, true);
}

function validOptionalPort(port: string): boolean {
  return port === '' || /^:[0-9]*$/.test(port);
}

function isIPv6(s: string): boolean {
  // Shape check is enough here: a bracketed key that is not an address never matches an image.
  return /^[0-9A-Fa-f:.]+$/.test(s) && s.includes(':');
}

// Go's url.unescape: %XX must be well formed; in a host only non-ASCII bytes (and %25) may be
// escaped, and ASCII outside Go's host set is an error.
function percentDecode(s: string, host: boolean): string | undefined {
  const bytes: number[] = [];
  const utf8 = Buffer.from(s, 'utf8');
  for (let i = 0; i < utf8.length; i++) {
    const c = utf8[i] ?? 0;
    if (c === 0x25) {
      const hex = utf8.subarray(i + 1, i + 3).toString('latin1');
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      const v = parseInt(hex, 16);
      if (host && v < 0x80 && hex !== '25') return undefined;
      bytes.push(v);
      i += 2;
    } else {
      if (host && c < 0x80 && !HOST_CHAR.test(String.fromCharCode(c))) return undefined;
      bytes.push(c);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

const HOST_CHAR = /^[A-Za-z0-9\-_.~!$&'()*+,;=:[\]<>"]$/;

// Go net.SplitHostPort, as the kubelet's keyring matching uses it: on error the whole host is kept
// and the port is ''. (registry/hosts.ts' hostAndPort is the lenient one for registry hosts.)
function goSplitHostPort(hostport: string): { host: string; port: string } {
  const whole = { host: hostport, port: '' };
  const i = hostport.lastIndexOf(':');
  if (i < 0) return whole;
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0 || end + 1 !== i) return whole;
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(':')) return whole;
  }
  if (hostport.slice(j).includes('[') || hostport.slice(k).includes(']')) return whole;
  return { host, port: hostport.slice(i + 1) };
}

// ---------------------------------------------------------------------------------------------
// Go path/filepath.Match (Unix): `*`, `?`, `[...]` classes with `^` and ranges, `\` escapes.
// A malformed pattern matches nothing, which is what the kubelet makes of Match's error.

type GlobToken =
  | { t: 'star' }
  | { t: 'any' }
  | { t: 'lit'; c: number }
  | { t: 'class'; neg: boolean; ranges: [number, number][] };

function parseGlob(pattern: string): GlobToken[] | undefined {
  const p = Array.from(pattern, (ch) => ch.codePointAt(0) ?? 0);
  const out: GlobToken[] = [];
  let i = 0;
  const esc = (): number | undefined => {
    let c = p[i];
    if (c === undefined || c === 0x2d /* - */ || c === 0x5d /* ] */) return undefined;
    if (c === 0x5c /* \ */) {
      i++;
      c = p[i];
      if (c === undefined) return undefined;
    }
    i++;
    return c;
  };
  while (i < p.length) {
    const c = p[i] as number;
    if (c === 0x2a) {
      out.push({ t: 'star' });
      i++;
    } else if (c === 0x3f) {
      out.push({ t: 'any' });
      i++;
    } else if (c === 0x5c) {
      const n = p[i + 1];
      if (n === undefined) return undefined;
      out.push({ t: 'lit', c: n });
      i += 2;
    } else if (c === 0x5b) {
      i++;
      let neg = false;
      if (p[i] === 0x5e /* ^ */) {
        neg = true;
        i++;
      }
      const ranges: [number, number][] = [];
      for (;;) {
        if (p[i] === 0x5d && ranges.length > 0) {
          i++;
          break;
        }
        const lo = esc();
        if (lo === undefined) return undefined;
        let hi = lo;
        if (p[i] === 0x2d) {
          i++;
          const h = esc();
          if (h === undefined) return undefined;
          hi = h;
        }
        ranges.push([lo, hi]);
      }
      out.push({ t: 'class', neg, ranges });
    } else {
      out.push({ t: 'lit', c });
      i++;
    }
  }
  return out;
}

function globMatch(pattern: string, name: string): boolean {
  const tokens = parseGlob(pattern);
  if (tokens === undefined) return false;
  const s = Array.from(name, (ch) => ch.codePointAt(0) ?? 0);
  const SLASH = 0x2f;
  const one = (tok: GlobToken, c: number): boolean => {
    switch (tok.t) {
      case 'any':
        return c !== SLASH;
      case 'lit':
        return c === tok.c;
      case 'class':
        return tok.ranges.some(([lo, hi]) => lo <= c && c <= hi) !== tok.neg;
      case 'star':
        return false;
    }
  };
  // Classic wildcard matching with one backtrack point per star; a star stops at '/'.
  let ti = 0;
  let si = 0;
  let starT = -1;
  let starS = 0;
  while (si < s.length) {
    const tok = tokens[ti];
    const c = s[si] as number;
    if (tok?.t === 'star') {
      starT = ti++;
      starS = si;
    } else if (tok !== undefined && one(tok, c)) {
      ti++;
      si++;
    } else if (starT >= 0 && s[starS] !== SLASH) {
      ti = starT + 1;
      si = ++starS;
    } else {
      return false;
    }
  }
  while (tokens[ti]?.t === 'star') ti++;
  return ti === tokens.length;
}
