// containerd's hosts directory (`config_path`, e.g. /etc/containerd/certs.d), read as containerd's
// remotes/docker/config does: `DIR/<host[:port]>/hosts.toml` (or `<host>_<port>_`), else
// `DIR/_default/hosts.toml`; its `[host."URL"]` tables in file order, then the `server` last. A
// directory without hosts.toml holds Docker's certs.d files (*.crt CAs, *.cert/*.key pairs).
// Everything is read once at start-up, so a mistake stops it instead of surfacing on a review.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { SetupError } from '../errors.ts';
import { systemErrorText } from '../system-errors.ts';
import { cleanPath, defaultEndpoint, type RegistryEndpoint } from './endpoint.ts';
import { TomlFile, type TomlTable } from './toml-file.ts';

export type { RegistryEndpoint } from './endpoint.ts';

const HOST_KEYS = ['capabilities', 'ca', 'client', 'skip_verify', 'header', 'override_path', 'dial_timeout'];
const ROOT_KEYS = [...HOST_KEYS, 'server', 'host'];

/** A parsed hosts.toml: the mirrors in file order and the server last (host '' when `server` is unset). */
export function parseHostsToml(file: string, text: string, baseDir: string, warnings: string[]): RegistryEndpoint[] {
  const toml = new TomlFile(file, text, warnings);
  const root = toml.data;
  toml.unknownKeys(root, ROOT_KEYS, '', 'containerd hosts.toml');
  const hosts = toml.table(root, 'host') ?? {};
  if (!('host' in root) && toml.string(root, 'server'))
    warnings.push(
      `${file}: has no [host."…"] table: containerd 1.6 ignores such a file (containerd#10027) and pulls from the domain itself; add an empty [host."${toml.string(root, 'server')}"] table for it`,
    );
  const out: RegistryEndpoint[] = [];
  for (const [url, value] of Object.entries(hosts)) {
    const prefix = `host."${url}".`;
    if (!value || typeof value !== 'object' || Array.isArray(value))
      throw toml.error(`host."${url}"`, 'must be a table ([host."https://mirror.example"])');
    toml.unknownKeys(value as TomlTable, HOST_KEYS, prefix, 'containerd hosts.toml host');
    out.push(hostConfig(toml, url, value as TomlTable, prefix, baseDir, false));
  }
  out.push(hostConfig(toml, toml.string(root, 'server') ?? '', root, '', baseDir, true));
  return out;
}

function hostConfig(
  toml: TomlFile,
  server: string,
  t: TomlTable,
  prefix: string,
  baseDir: string,
  upstream: boolean,
): RegistryEndpoint {
  const overridePath = toml.bool(t, 'override_path', prefix) ?? false;
  const out: RegistryEndpoint = {
    scheme: 'https',
    host: '',
    path: '',
    resolve: true,
    pull: true,
    upstream,
    caFiles: [],
    caPems: [],
    clientPairs: [],
    clients: [],
    header: {},
    source: toml.file,
  };
  if (server) {
    const text = server.startsWith('http') ? server : `https://${server}`;
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      throw toml.error(upstream ? 'server' : `host."${server}"`, `${JSON.stringify(server)} is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw toml.error(upstream ? 'server' : `host."${server}"`, 'must be an http:// or https:// URL');
    out.scheme = u.protocol === 'http:' ? 'http' : 'https';
    out.host = u.host;
    // containerd: path.Clean, and /v2 appended unless already there or override_path says the path is the API root
    let path = u.pathname === '/' ? '' : cleanPath(u.pathname);
    if (path) {
      if (!path.endsWith('/v2') && !overridePath) path += '/v2';
    } else if (!overridePath) path = '/v2';
    out.path = path;
  }
  const skip = toml.bool(t, 'skip_verify', prefix);
  if (skip !== undefined) out.skipVerify = skip;
  const caps = toml.strings(t, 'capabilities', prefix);
  if (caps?.length) {
    out.resolve = out.pull = false;
    for (const c of caps) {
      const cap = c.toLowerCase();
      if (cap === 'pull') out.pull = true;
      else if (cap === 'resolve') out.resolve = true;
      else if (cap !== 'push' && cap !== 'referrers')
        throw toml.error(`${prefix}capabilities`, `unknown capability ${JSON.stringify(c)} (pull, resolve, push)`);
    }
  }
  const ca = t.ca;
  if (ca !== undefined) {
    const files = typeof ca === 'string' ? [ca] : toml.strings(t, 'ca', prefix)!;
    out.caFiles = files.map((f) => abs(f, baseDir));
  }
  const client = t.client;
  if (client !== undefined) {
    const pairs: [string, string][] = [];
    const bad = () => toml.error(`${prefix}client`, 'must be a file, a list of files, or a list of [cert, key] pairs');
    if (typeof client === 'string') pairs.push([client, '']);
    else if (Array.isArray(client))
      for (const p of client) {
        if (typeof p === 'string') pairs.push([p, '']);
        else if (Array.isArray(p) && p.length === 2 && p.every((s) => typeof s === 'string'))
          pairs.push([p[0] as string, p[1] as string]);
        else throw bad();
      }
    else throw bad();
    out.clientPairs = pairs.map(([cert, key]) => [abs(cert, baseDir), key ? abs(key, baseDir) : '']);
  }
  const header = toml.table(t, 'header', prefix);
  if (header)
    for (const [k, v] of Object.entries(header)) {
      if (typeof v === 'string') out.header[k] = [v];
      else if (Array.isArray(v) && v.every((s) => typeof s === 'string')) out.header[k] = v as string[];
      else throw toml.error(`${prefix}header.${k}`, 'must be a string or a list of strings');
    }
  return out;
}

/** containerd's hostDirectory: `host:port` is looked up as `host_port_` first. */
function hostDirectories(host: string): string[] {
  const i = host.lastIndexOf(':');
  const dirs = i > 0 ? [`${host.slice(0, i)}_${host.slice(i + 1)}_`, host] : [host];
  return [...dirs, '_default'];
}

/** A hosts directory read whole: the endpoints of each domain it configures. */
export class HostsDir {
  readonly dir: string;
  readonly warnings: string[] = [];
  readonly #entries = new Map<string, RegistryEndpoint[]>();

  constructor(dir: string) {
    this.dir = dir;
    let names: string[];
    try {
      if (!statSync(dir).isDirectory()) throw new SetupError(`hosts directory ${dir}: not a directory`);
      names = readdirSync(dir);
    } catch (err) {
      if (err instanceof SetupError) throw err;
      throw new SetupError(
        `hosts directory ${dir}: ${systemErrorText(err, 'read')} (check --hosts-dir or registry.hostsDir)`,
      );
    }
    for (const name of names.sort()) {
      const sub = join(dir, name);
      let isDir = false;
      try {
        isDir = statSync(sub).isDirectory();
      } catch (err) {
        throw new SetupError(`hosts directory ${sub}: ${systemErrorText(err, 'read')}`);
      }
      if (isDir) this.#entries.set(name, this.#load(sub));
    }
  }

  #load(sub: string): RegistryEndpoint[] {
    const file = join(sub, 'hosts.toml');
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new SetupError(`${file}: ${systemErrorText(err, 'read')}`);
    }
    if (!text.trim()) return [certsDirHost(sub)];
    const list = parseHostsToml(file, text, sub, this.warnings);
    for (const e of list) {
      e.caPems = e.caFiles.map((f) => {
        const pem = readPem(file, 'ca', f);
        if (!pem.includes('-----BEGIN CERTIFICATE-----'))
          throw new SetupError(`${file}: key ca: ${f}: no PEM certificate in the file`);
        return pem;
      });
      e.clients = e.clientPairs.map(([cert, key]) => {
        const pem = readPem(file, 'client', cert);
        const pair = { cert: pem, key: key ? readPem(file, 'client', key) : pem };
        try {
          // a pair that does not load would fail every connection to the host: stop start-up instead
          createSecureContext(pair);
        } catch {
          throw new SetupError(
            `${file}: key client: ${cert}${key ? ` and ${key}` : ''}: not a certificate and private key that match`,
          );
        }
        return pair;
      });
    }
    return list;
  }

  /**
   * Where containerd pulls `domain`'s images from, in order: the configured mirrors, then the
   * upstream (hosts.toml's server, or containerd's default for the domain).
   */
  endpointsFor(domain: string): RegistryEndpoint[] {
    for (const d of hostDirectories(domain)) {
      const found = this.#entries.get(d);
      if (found) return withDefaultServer(found, domain);
    }
    return [defaultEndpoint(domain)];
  }

  /** every endpoint any file names (their TLS settings and schemes are set up once) */
  all(): RegistryEndpoint[] {
    return [...this.#entries.values()].flat().filter((e) => e.host);
  }
}

function withDefaultServer(list: RegistryEndpoint[], domain: string): RegistryEndpoint[] {
  const last = list.at(-1);
  if (!last || last.host) return list;
  const d = defaultEndpoint(domain);
  return [...list.slice(0, -1), { ...last, scheme: d.scheme, host: d.host, path: '/v2' }];
}

/** Docker's certs.d layout: *.crt are CAs, *.cert with the *.key of the same name a client pair. */
function certsDirHost(sub: string): RegistryEndpoint {
  const e: RegistryEndpoint = { ...defaultEndpoint(''), host: '', caPems: [], clients: [], source: sub };
  let files: string[] = [];
  try {
    files = readdirSync(sub).sort();
  } catch (err) {
    throw new SetupError(`hosts directory ${sub}: ${systemErrorText(err, 'read')}`);
  }
  const read = (f: string) => {
    try {
      return readFileSync(join(sub, f), 'utf8');
    } catch (err) {
      throw new SetupError(`${join(sub, f)}: ${systemErrorText(err, 'read')}`);
    }
  };
  for (const f of files) {
    if (f.endsWith('.crt')) e.caPems.push(read(f));
    else if (f.endsWith('.cert')) {
      const key = `${f.slice(0, -'.cert'.length)}.key`;
      if (!files.includes(key)) throw new SetupError(`${join(sub, f)}: client certificate without ${key} beside it`);
      e.clients.push({ cert: read(f), key: read(key) });
    }
  }
  return e;
}

function readPem(source: string, key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new SetupError(`${source}: key ${key}: ${file}: ${systemErrorText(err, 'read')}`);
  }
}

function abs(p: string, base: string): string {
  return isAbsolute(p) ? p : join(base, p);
}
