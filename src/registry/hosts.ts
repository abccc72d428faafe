// Where the kubelet's runtime sends a request for a reference's domain, and which addresses a
// webhook must never be made to call on a pod author's behalf.

import { isIP } from 'node:net';

/** containerd maps docker.io (and its old alias) to the real registry host. */
export function registryHost(domain: string): string {
  return domain === 'docker.io' || domain === 'index.docker.io' ? 'registry-1.docker.io' : domain;
}

export function isDockerHub(domain: string): boolean {
  return domain === 'docker.io' || domain === 'index.docker.io' || domain === 'registry-1.docker.io';
}

/** host[:port] → hostname without brackets, and the port (default for the scheme when absent). */
export function hostAndPort(host: string): { hostname: string; port: string } {
  const bracketed = /^\[([^\]]+)\](?::(\d*))?$/.exec(host);
  if (bracketed) return { hostname: bracketed[1]!, port: bracketed[2] ?? '' };
  const i = host.lastIndexOf(':');
  if (i > 0 && host.indexOf(':') === i) return { hostname: host.slice(0, i), port: host.slice(i + 1) };
  return { hostname: host, port: '' };
}

/**
 * Link-local and cloud metadata addresses: anyone who may create a pod names the host its image
 * comes from, so without this check pullguard would fetch from the node's metadata service for them.
 * An IPv6 address that carries an IPv4 one (mapped, compatible, NAT64, 6to4) is judged by that
 * IPv4 address: `[::ffff:169.254.169.254]` reaches the same service as `169.254.169.254`.
 */
export function isForbiddenAddress(address: string): boolean {
  const plain = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(plain);
  if (family === 4) {
    const [a, b] = plain.split('.').map(Number);
    return a === 169 && b === 254;
  }
  if (family !== 6) return false;
  const groups = ipv6Groups(plain);
  if (!groups) return false;
  const embedded = embeddedIpv4(groups);
  if (embedded) return isForbiddenAddress(embedded);
  // fe80::/10 link-local; fd00:ec2::254 is AWS's IPv6 metadata endpoint
  return (groups[0]! & 0xffc0) === 0xfe80 || groups.join(':') === [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254].join(':');
}

/** The eight 16-bit groups of an IPv6 address (a trailing dotted IPv4 part included). */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const front = part(head);
  const back = part(tail);
  const missing = 8 - front.length - back.length;
  if (tail !== undefined && missing < 1) return undefined;
  const groups = tail === undefined ? front : [...front, ...Array<number>(missing).fill(0), ...back];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/** The IPv4 address an IPv6 one stands for, if any: ::ffff:0:0/96, ::/96 (not :: or ::1), 64:ff9b::/96, 2002::/16. */
function embeddedIpv4(g: number[]): string | undefined {
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return v4(g[6]!, g[7]!);
  if (zeros(0, 6) && (g[6] !== 0 || g[7]! > 1)) return v4(g[6]!, g[7]!);
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4(g[6]!, g[7]!);
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!);
  return undefined;
}

/** Matches a host against a list of host[:port] entries; an entry without a port matches any port. */
export function hostListed(host: string, list: readonly string[]): boolean {
  const { hostname, port } = hostAndPort(host);
  return list.some((entry) => {
    const e = hostAndPort(entry);
    return e.hostname.toLowerCase() === hostname.toLowerCase() && (e.port === '' || e.port === port);
  });
}

/**
 * One spelling per place a request goes: the host as the transport connects to it. `127.1:5000`,
 * `2130706433:5000`, `0x7f000001:05000` and `[::ffff:7f00:1]:5000` all become `127.0.0.1:5000` (the
 * URL parser the transport uses reads IPv4 numbers so); names are lower-cased without a trailing
 * dot, and ports 80 and 443 are left out, so `h`, `h:80` and `h:443` share a key (a budget keyed
 * so errs towards fewer requests). Names that resolve to one address still differ: budgets kept
 * by this key need a cap over all hosts as well.
 */
export function connectedHost(host: string): string {
  let url: URL;
  try {
    url = new URL(`https://${host}`);
  } catch {
    return host.toLowerCase();
  }
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) return host.toLowerCase();
  let hostname = url.hostname.replace(/\.+$/, '');
  // an IPv4-mapped IPv6 address reaches the IPv4 host itself (::ffff:0:0/96)
  const mapped = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(hostname);
  if (mapped) {
    const hi = Number.parseInt(mapped[1]!, 16);
    const lo = Number.parseInt(mapped[2]!, 16);
    hostname = `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  const port = url.port === '80' ? '' : url.port; // 443 is already left out as https's own
  return port ? `${hostname}:${port}` : hostname;
}
