// One host a runtime may pull a domain's images from (a mirror, or the upstream), and containerd's
// defaults: what the client needs to send a request there. Apart from the nodes' files' parsers
// (hosts-dir.ts, registries-conf.ts) so that the client loads no TOML parser unless one is read.

import { registryHost } from './hosts.ts';

/** One place containerd may pull a domain's images from, in the order it tries them. */
export interface RegistryEndpoint {
  scheme: 'http' | 'https';
  /** host[:port] */
  host: string;
  /** the API root: /v2, or a mirror's own (`/us/v2`; with override_path exactly the URL's path) */
  path: string;
  /** asked for tags (a pull-only mirror is asked for digests only) */
  resolve: boolean;
  /** asked for content by digest */
  pull: boolean;
  /** the domain's upstream (hosts.toml's `server`, or containerd's default), tried after the mirrors */
  upstream: boolean;
  /** undefined: as configured elsewhere (registry.insecure) */
  skipVerify?: boolean;
  /** an insecure registry (registries.conf `insecure`): TLS unverified, plain HTTP when it has no TLS */
  insecure?: boolean;
  /** CA certificate files trusted for this host besides the system's, and their PEM once read */
  caFiles: string[];
  caPems: string[];
  /** client certificate and key files ('' : the key is in the certificate's file), and their PEM once read */
  clientPairs: [string, string][];
  clients: { cert: string; key: string }[];
  /** extra request headers (hosts.toml `[header]`) */
  header: Record<string, string[]>;
  /** the file it came from, for people */
  source?: string;
}

/** containerd's default for a domain no file configures. */
export function defaultEndpoint(domain: string): RegistryEndpoint {
  return {
    scheme: 'https',
    host: registryHost(domain),
    path: '/v2',
    resolve: true,
    pull: true,
    upstream: true,
    caFiles: [],
    caPems: [],
    clientPairs: [],
    clients: [],
    header: {},
  };
}

/** `registry.endpoints` as containerd would read `server = URL` alone: that URL, and nothing else. */
export function endpointOfUrl(url: string): RegistryEndpoint {
  const u = new URL(url);
  const path = u.pathname === '/' ? '' : cleanPath(u.pathname);
  return {
    ...defaultEndpoint(u.host),
    scheme: u.protocol === 'http:' ? 'http' : 'https',
    path: !path ? '/v2' : path.endsWith('/v2') ? path : `${path}/v2`,
  };
}

export /** Go's path.Clean for an absolute URL path. */
function cleanPath(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}
