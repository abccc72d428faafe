// Where one question about an image goes, as the nodes' runtime decides it: the hosts it tries in
// order (containerd's hosts.toml mirrors then the server; CRI-O's registries.conf mirrors then the
// location), and how it falls back: a host that answers 404, fails to connect or answers any other
// error is passed over for the next (containerd's resolver and fetcher); the first failure that is
// not a 404 is the answer when every host fails, else "not found". Every request kind of the client
// goes through here, so a new one gets the mirrors too.

import { type RegistryEndpoint, defaultEndpoint } from './endpoint.ts';
import type { Answer } from './outcomes.ts';

/** One host of a route; `repository` when the configuration rewrites the path (registries.conf location). */
export interface Endpoint extends RegistryEndpoint {
  repository?: string;
}

export interface Route {
  endpoints: Endpoint[];
  /** the runtime refuses to pull (registries.conf `blocked`): why, for people */
  blocked?: string;
}

/** What a question needs a host to be able to do: tags need `resolve`, digests `pull`. */
export type Need = 'resolve' | 'pull';

/** The nodes' configuration of registries: hosts.toml, registries.conf, or containerd's defaults. */
export interface Routes {
  route(domain: string, repository: string, byDigest: boolean): Route;
  /** every host any route names (their schemes and TLS settings are set up once) */
  endpoints(): RegistryEndpoint[];
  /** what was ignored in the files, for the start-up log */
  readonly warnings: readonly string[];
  /** CRI-O: the fully qualified names a short name stands for, in order, or why the runtime refuses it */
  shortName?(name: string): { candidates: string[]; why: string } | { error: string };
}

/** containerd's defaults, with `registry.endpoints` as a shorthand for a hosts.toml holding only `server`. */
export class DefaultRoutes implements Routes {
  readonly warnings: readonly string[] = [];
  readonly #servers: Map<string, RegistryEndpoint>;
  constructor(servers: Map<string, RegistryEndpoint> = new Map()) {
    this.#servers = servers;
  }
  route(domain: string): Route {
    return { endpoints: [this.#servers.get(domain) ?? defaultEndpoint(domain)] };
  }
  endpoints(): RegistryEndpoint[] {
    return [...this.#servers.values()];
  }
}

/** A hosts directory's routes (hosts.toml per domain), with containerd's defaults elsewhere. */
export class HostsDirRoutes implements Routes {
  readonly #dir: { endpointsFor(domain: string): RegistryEndpoint[]; all(): RegistryEndpoint[]; warnings: string[] };
  constructor(dir: {
    endpointsFor(domain: string): RegistryEndpoint[];
    all(): RegistryEndpoint[];
    warnings: string[];
  }) {
    this.#dir = dir;
  }
  get warnings(): readonly string[] {
    return this.#dir.warnings;
  }
  route(domain: string): Route {
    return { endpoints: this.#dir.endpointsFor(domain) };
  }
  endpoints(): RegistryEndpoint[] {
    return this.#dir.all();
  }
}

/** `mirror 127.0.0.1:5001` or `upstream up.example`: how evidence names a host. */
export function roleOf(e: Endpoint): string {
  return `${e.upstream ? 'upstream' : 'mirror'} ${e.host}${e.path && e.path !== '/v2' ? e.path.replace(/\/v2$/, '') : ''}`;
}

/**
 * Asks the route's hosts that can serve `need`, in order, until one has the answer. The answer's
 * evidence names each host tried; `servedBy` and `note` say which host serves it and what the
 * misses cost (a mirror that lacks an image the upstream has is slower, and on Docker Hub it spends
 * the pull quota), which is a note, never a failure.
 */
export async function acrossHosts<A extends Answer>(
  route: Route,
  need: Need,
  ask: (e: Endpoint) => Promise<A | Answer>,
): Promise<(A | Answer) & { servedBy?: string; note?: string }> {
  const hosts = route.endpoints.filter((e) => e[need]);
  if (!hosts.length)
    return {
      outcome: { kind: 'not-found' },
      evidence: [`no host of the nodes' configuration may ${need === 'resolve' ? 'resolve tags' : 'pull by digest'}`],
    };
  const many = route.endpoints.length > 1;
  const evidence: string[] = [];
  const missed: string[] = [];
  let firstFailure: (A | Answer) | undefined;
  let last: A | Answer | undefined;
  for (const e of hosts) {
    const answer = await ask(e);
    last = answer;
    for (const line of answer.evidence) evidence.push(many ? `${roleOf(e)}: ${line}` : line);
    const kind = answer.outcome.kind;
    if (kind === 'found') {
      const out: A | Answer = { ...answer, evidence };
      if (!many) return out;
      const note = missed.length
        ? `served by ${roleOf(e)}; ${missed.join(', ')} did not have it, so the nodes try there first and then pull from ${e.host}${e.upstream ? ' (slower, and a Docker Hub upstream counts the pull against its rate limit)' : ''}`
        : `served by ${roleOf(e)}`;
      return { ...out, servedBy: e.host, note };
    }
    missed.push(roleOf(e));
    // The deadline is spent: no later host could answer in time.
    if (kind === 'timeout' || kind === 'blocked') return { ...answer, evidence };
    if (kind !== 'not-found') firstFailure ??= answer;
  }
  const chosen = firstFailure ?? last!;
  return { ...chosen, evidence };
}
