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
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(host);
  if (bracketed) return { hostname: bracketed[1]!, port: bracketed[2] ?? '' };
  const i = host.lastIndexOf(':');
  if (i > 0 && host.indexOf(':') === i) return { hostname: host.slice(0, i), port: host.slice(i + 1) };
  return { hostname: host, port: '' };
}

/**
 * Link-local and cloud metadata addresses: anyone who may create a pod names the host its image
 * comes from, so without this check pullguard would fetch from the node's metadata service for them.
 */
export function isForbiddenAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) {
    const [a, b] = address.split('.').map(Number);
    return a === 169 && b === 254;
  }
  if (family === 6) {
    const lower = address.toLowerCase();
    if (lower.startsWith('::ffff:')) return isForbiddenAddress(lower.slice(7));
    // fe80::/10 link-local; fd00:ec2::254 is AWS's IPv6 metadata endpoint
    return /^fe[89ab][0-9a-f]:/.test(lower) || lower === 'fd00:ec2::254';
  }
  return false;
}

/** Matches a host against a list of host[:port] entries; an entry without a port matches any port. */
export function hostListed(host: string, list: readonly string[]): boolean {
  const { hostname, port } = hostAndPort(host);
  return list.some((entry) => {
    const e = hostAndPort(entry);
    return e.hostname.toLowerCase() === hostname.toLowerCase() && (e.port === '' || e.port === port);
  });
}
