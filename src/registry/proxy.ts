// Which HTTP proxy a registry request goes through. The rules are those of Go's
// golang.org/x/net/http/httpproxy, which containerd and the kubelet use, so pullguard takes the path
// the nodes' pulls take: HTTPS_PROXY for https, HTTP_PROXY for http (upper case first), NO_PROXY
// entries as host suffixes, `*.`/leading-dot domains, `*`, host:port, IP literals and CIDRs, and
// never a proxy for localhost or loopback addresses. test/fixtures/httpproxy.json pins the rules.

import { BlockList, isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { PullguardError } from '../errors.ts';
import { hostAndPort } from './hosts.ts';

export interface ProxySettings {
  httpProxy: string;
  httpsProxy: string;
  noProxy: string;
}

/** The environment's settings, as httpproxy.FromEnvironment reads them (upper-case names win). */
export function proxySettingsFromEnv(env: NodeJS.ProcessEnv): ProxySettings {
  const any = (...names: string[]) => names.map((n) => env[n]).find((v) => v !== undefined && v !== '') ?? '';
  return {
    httpProxy: any('HTTP_PROXY', 'http_proxy'),
    httpsProxy: any('HTTPS_PROXY', 'https_proxy'),
    noProxy: any('NO_PROXY', 'no_proxy'),
  };
}

/** The configuration's `registry.proxy` (one proxy for both schemes) wins over the environment. */
export function proxySettings(configured: { url: string; noProxy?: string } | undefined, env: NodeJS.ProcessEnv) {
  if (configured) return { httpProxy: configured.url, httpsProxy: configured.url, noProxy: configured.noProxy ?? '' };
  return proxySettingsFromEnv(env);
}

/** httpproxy's parseProxy: a value without a scheme (or that does not parse) is read as http://value. */
function parseProxyUrl(value: string): URL | undefined {
  if (value === '') return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url?.host) {
    try {
      return new URL(`http://${value}`);
    } catch {
      if (url) return url;
      throw new ProxyConfigError(`invalid proxy address "${redactProxy(value)}"`);
    }
  }
  return url;
}

/** A proxy URL fit for messages, logs and metrics: scheme, host and port, never its credentials. */
export function displayProxy(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

function redactProxy(value: string): string {
  return value.replace(/\/\/[^@/]*@/, '//');
}

export class ProxyConfigError extends PullguardError {
  readonly code = 'proxy-config';
}

type Matcher = (host: string, port: string, ip: string | undefined) => boolean;

export class ProxyRules {
  readonly #http: URL | undefined;
  readonly #https: URL | undefined;
  readonly #matchers: Matcher[] = [];

  constructor(settings: ProxySettings) {
    this.#http = parseProxyUrl(settings.httpProxy);
    this.#https = parseProxyUrl(settings.httpsProxy);
    this.#parseNoProxy(settings.noProxy);
  }

  /** Go would also hand out socks5:// and other schemes; pullguard speaks to HTTP(S) proxies only. */
  assertSupported(): this {
    for (const proxy of [this.#http, this.#https])
      if (proxy && proxy.protocol !== 'http:' && proxy.protocol !== 'https:')
        throw new ProxyConfigError(`proxy ${displayProxy(proxy)}: only http:// and https:// proxies are supported`);
    return this;
  }

  get configured(): boolean {
    return Boolean(this.#http || this.#https);
  }

  /** The proxy for a request to `host` (host[:port], IPv6 in brackets) over `scheme`; undefined: direct. */
  proxyFor(scheme: 'http' | 'https' | string, host: string): URL | undefined {
    const proxy = scheme === 'https' ? this.#https : scheme === 'http' ? this.#http : undefined;
    if (!proxy) return undefined;
    const { hostname, port } = hostAndPort(host);
    return this.useProxy(hostname, port || (scheme === 'https' ? '443' : '80')) ? proxy : undefined;
  }

  /** httpproxy's useProxy for a canonical host and port. */
  useProxy(hostname: string, port: string): boolean {
    if (hostname === '') return true;
    if (hostname === 'localhost') return false;
    // An IPv6 zone is never part of a name: "[1000::%25.example.com]" is not in example.com.
    const zone = hostname.indexOf('%');
    const bare = zone >= 0 && isIP(hostname.slice(0, zone)) === 6 ? hostname.slice(0, zone) : hostname;
    const ip = isIP(bare) ? bare : undefined;
    if (ip && isLoopback(ip)) return false;
    const host = (ip ?? toASCII(hostname)).trim().toLowerCase();
    return !this.#matchers.some((m) => m(host, port, ip));
  }

  #parseNoProxy(noProxy: string): void {
    for (const raw of noProxy.split(',')) {
      const p = raw.trim().toLowerCase();
      if (!p) continue;
      if (p === '*') {
        this.#matchers.splice(0, this.#matchers.length, () => true);
        return;
      }
      const cidr = parseCidr(p);
      if (cidr) {
        this.#matchers.push((_h, _p, ip) => ip !== undefined && cidr.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4'));
        continue;
      }
      let phost = p;
      let pport = '';
      const split = goSplitHostPort(p);
      if (split) {
        if (!split.host) continue; // ":1" and the like: malformed, ignored
        phost = split.host.startsWith('[') && split.host.endsWith(']') ? split.host.slice(1, -1) : split.host;
        pport = split.port;
      }
      if (isIP(phost)) {
        const list = new BlockList();
        const family = isIP(phost) === 6 ? 'ipv6' : 'ipv4';
        list.addAddress(phost, family);
        this.#matchers.push(
          (_h, port, ip) =>
            ip !== undefined && isIP(ip) === isIP(phost) && list.check(ip, family) && (!pport || pport === port),
        );
        continue;
      }
      if (!phost) continue;
      if (phost.startsWith('*.')) phost = phost.slice(1);
      const matchHost = !phost.startsWith('.');
      const suffix = toASCII(matchHost ? `.${phost}` : phost);
      this.#matchers.push(
        (host, port) =>
          (host.endsWith(suffix) || (matchHost && host === suffix.slice(1))) && (!pport || pport === port),
      );
    }
  }
}

function toASCII(name: string): string {
  // domainToASCII drops a leading dot's empty label badly: convert the labels, keep the dot.
  const dot = name.startsWith('.');
  const ascii = domainToASCII(dot ? name.slice(1) : name);
  return ascii ? (dot ? `.${ascii}` : ascii) : name;
}

function isLoopback(ip: string): boolean {
  const v4 = ip.toLowerCase().startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  const list = new BlockList();
  list.addAddress('::1', 'ipv6');
  return list.check(ip, 'ipv6');
}

function parseCidr(p: string): BlockList | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(p);
  if (!m) return undefined;
  const family = isIP(m[1]!);
  const prefix = Number(m[2]);
  if (!family || prefix > (family === 4 ? 32 : 128)) return undefined;
  const list = new BlockList();
  list.addSubnet(m[1]!, prefix, family === 6 ? 'ipv6' : 'ipv4');
  return list;
}

/** Go's net.SplitHostPort; undefined where it returns an error. */
function goSplitHostPort(hostport: string): { host: string; port: string } | undefined {
  const i = hostport.lastIndexOf(':');
  if (i < 0) return undefined;
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0 || end + 1 !== i) return undefined;
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(':')) return undefined;
  }
  if (hostport.slice(j).includes('[')) return undefined;
  if (hostport.slice(k).includes(']')) return undefined;
  return { host, port: hostport.slice(i + 1) };
}
