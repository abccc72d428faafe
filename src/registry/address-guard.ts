// The link-local guard: anyone who may create a pod names the host its image comes from, so no
// request may reach a link-local or cloud metadata address unless the host is configured
// (registry.allowLinkLocal). Direct connections are guarded in name resolution (guardedLookup);
// through a proxy the proxy resolves the name, so the guard asks DNS itself before the proxy is asked.

import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { TransportError } from './failures.ts';
import { hostListed, isForbiddenAddress } from './hosts.ts';

export type LookupFunction = (
  hostname: string,
  options: { all: true },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/** proxied hosts whose guard result is remembered (GUARD_TTL_MS); past this the oldest is asked again */
export const MAX_GUARDED = 1024;
/** how long a proxied host that passed the link-local guard is trusted before DNS is asked again */
const GUARD_TTL_MS = 30_000;

export class AddressGuard {
  readonly #allowLinkLocal: readonly string[];
  readonly #lookup: LookupFunction;
  /** per host: when the guard last passed a proxied host */
  readonly #guarded = new Map<string, number>();

  constructor(allowLinkLocal: readonly string[], lookup: LookupFunction | undefined) {
    this.#allowLinkLocal = allowLinkLocal;
    this.#lookup = lookup ?? (dnsLookup as unknown as LookupFunction);
  }

  /** host[:port] may reach link-local addresses (configured) */
  allows(host: string): boolean {
    return hostListed(host, this.#allowLinkLocal);
  }

  /** A URL whose host is a forbidden IP literal is refused before anything is sent. */
  assertAllowedLiteral(url: URL): void {
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(hostname) && isForbiddenAddress(hostname) && !this.allows(url.host)) {
      throw new TransportError(
        'forbidden-address',
        `${url.host} is a link-local or metadata address; pullguard does not contact it unless configured (registry.allowLinkLocal)`,
      );
    }
  }

  /**
   * Through a proxy the proxy resolves the name, so the guard asks DNS first: a name that resolves
   * here to a link-local or metadata address is refused; one that does not resolve here (split DNS,
   * no DNS beyond the proxy) is left to the proxy.
   */
  async assertAllowedName(url: URL, signal: AbortSignal): Promise<void> {
    const host = url.host;
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(hostname) || this.allows(host)) return;
    const passed = this.#guarded.get(hostname);
    if (passed !== undefined && Date.now() - passed < GUARD_TTL_MS) return;
    const addresses = await new Promise<LookupAddress[]>((resolve) => {
      const onAbort = () => resolve([]);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#lookup(hostname, { all: true }, (err, found) => {
        signal.removeEventListener('abort', onAbort);
        resolve(err ? [] : found);
      });
    });
    if (addresses.some((a) => isForbiddenAddress(a.address))) {
      throw new TransportError(
        'forbidden-address',
        `${host} resolves to a link-local or metadata address; pullguard does not contact it, not even through a proxy, unless configured (registry.allowLinkLocal)`,
      );
    }
    this.#guarded.delete(hostname);
    this.#guarded.set(hostname, Date.now());
    if (this.#guarded.size > MAX_GUARDED) this.#guarded.delete(this.#guarded.keys().next().value as string);
  }

  /**
   * A lookup for direct connections to `host`: drops link-local and metadata answers (unless the
   * host is allowed them) and fails when nothing is left.
   */
  lookupFor(host: string) {
    const lookup = this.#lookup;
    const allowLinkLocal = this.allows(host);
    return (hostname: string, options: { all?: boolean; family?: number | string }, callback: LookupCallback): void => {
      lookup(hostname, { ...options, all: true } as { all: true }, (err, addresses) => {
        if (err) return callback(err, []);
        const usable = allowLinkLocal ? addresses : addresses.filter((a) => !isForbiddenAddress(a.address));
        if (!usable.length) {
          const e: NodeJS.ErrnoException = new Error(`${hostname} resolves only to link-local or metadata addresses`);
          e.code = 'EFORBIDDENADDRESS';
          return callback(e, []);
        }
        if (options.all) return callback(null, usable);
        callback(null, usable[0]!.address, usable[0]!.family);
      });
    };
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
