// The questions the kubelet's runtime will ask a registry, asked the cheap way: HEAD the manifest
// with containerd's Accept list (a HEAD does not count against Docker Hub's pull limit), GET only
// when a registry makes it necessary, tags and index bodies only when a finding needs them.
// Each question makes one RequestContext and passes it to every request it sends (send.ts); what
// the answers mean is read in outcomes.ts.

import { cut } from '../text.ts';
import { credentialId, type Authenticator, type RegistryCredential } from './auth.ts';
import { endpointOfUrl, type RegistryEndpoint } from './endpoint.ts';
import { bareMediaType, parseVerified, sha256Digest } from './media.ts';
import { errorBody, header, outcomeOfStatus, transportOutcome, type Answer, type Outcome } from './outcomes.ts';
import { parseRateLimit, type RateLimit } from './ratelimit.ts';
import { MAX_REMEMBERED_HOSTS, remember } from './remember.ts';
import { CATALOG_SCOPE, pullScope, RequestContext } from './request-context.ts';
import { acrossHosts, DefaultRoutes, type Endpoint, type Need, type Routes } from './routes.ts';
import { Sender } from './send.ts';
import { RegistryTransport, type HttpResponse, type TransportOptions } from './transport.ts';

export { isIndexMediaType, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, MEDIA } from './media.ts';
export type { Answer, Outcome } from './outcomes.ts';
export { MAX_REMEMBERED_HOSTS } from './remember.ts';

export interface ManifestBody {
  digest: string;
  mediaType: string;
  json: Record<string, unknown>;
}

export interface Target {
  /** the reference's domain (docker.io, ghcr.io, 127.0.0.1:5000) */
  domain: string;
  /** repository path (library/nginx) */
  path: string;
}

export interface ClientOptions extends TransportOptions {
  /** domain -> base URL the nodes pull from instead: a hosts.toml with only `server` (config registry.endpoints) */
  endpoints?: Record<string, string>;
  /** the nodes' registry configuration (hosts.toml, registries.conf); wins over `endpoints` */
  routes?: Routes;
}

/** names asked for in one catalog request at most (distribution's own default page limit) */
export const MAX_CATALOG_PAGE = 1000;
/** tag list pages followed at most */
const MAX_TAG_PAGES = 50;

export class RegistryClient {
  readonly transport: RegistryTransport;
  /** last rate-limit figures per registry host and credential identity */
  readonly rateLimits = new Map<string, RateLimit & { host: string; at: number }>();
  readonly #sender: Sender;
  readonly routes: Routes;

  constructor(options: ClientOptions) {
    this.routes =
      options.routes ??
      new DefaultRoutes(
        new Map(Object.entries(options.endpoints ?? {}).map(([domain, base]) => [domain, endpointOfUrl(base)])),
      );
    const hosts = this.routes.endpoints();
    const insecure = [...options.insecure, ...hosts.filter((e) => e.insecure).map((e) => e.host)];
    this.transport = new RegistryTransport({ ...options, insecure, hostTls: hostTlsOf(hosts, options.hostTls) });
    this.#sender = new Sender(this.transport);
    for (const e of hosts) if (e.scheme === 'http') this.transport.usePlainHttp(e.host);
  }

  get auth(): Authenticator {
    return this.#sender.auth;
  }

  /** manifest requests sent (benchmarks) */
  get manifestRequests(): number {
    return this.#sender.manifestRequests;
  }

  /** The first host requests for a domain go to (a mirror, the configured server, else containerd's default). */
  hostFor(domain: string): string {
    // Routes are fixed at start-up; cache keys ask this on every review.
    let host = this.#firstHosts.get(domain);
    if (host === undefined) {
      if (this.#firstHosts.size >= MAX_REMEMBERED_HOSTS) this.#firstHosts.clear();
      host = this.routes.route(domain, '', false).endpoints[0]?.host ?? domain;
      this.#firstHosts.set(domain, host);
    }
    return host;
  }

  readonly #firstHosts = new Map<string, string>();

  /**
   * One question about `target`, asked of each host the nodes' configuration gives, in order, until
   * one answers (routes.ts): each host gets its own context, with the scope of the repository as
   * that host names it.
   */
  #asking<A extends Answer>(
    target: Target,
    need: Need,
    scope: (repository: string) => string,
    credential: RegistryCredential | null,
    signal: AbortSignal | undefined,
    question: (ctx: RequestContext, repository: string) => Promise<A | Answer>,
  ): Promise<A | Answer> {
    const route = this.routes.route(target.domain, target.path, need === 'pull');
    if (route.blocked)
      return Promise.resolve({ outcome: { kind: 'blocked', why: route.blocked }, evidence: [route.blocked] });
    return acrossHosts(route, need, (e: Endpoint) => {
      const repository = e.repository ?? target.path;
      const ctx = new RequestContext({
        host: e.host,
        scope: scope(repository),
        credential,
        signal,
        apiRoot: e.path,
        namespace: target.domain,
        headers: e.header,
      });
      return this.#one(ctx, () => question(ctx, repository));
    });
  }

  /** HEAD the manifest for a tag or digest, answering auth challenges with `cred` (null: anonymous). */
  resolve(target: Target, tagOrDigest: string, cred: RegistryCredential | null, signal?: AbortSignal): Promise<Answer> {
    const byDigest = tagOrDigest.includes(':');
    return this.#asking(target, byDigest ? 'pull' : 'resolve', pullScope, cred, signal, async (ctx, repository) => {
      const manifestPath = `/v2/${repository}/manifests/${tagOrDigest}`;
      let res = await this.#sender.send(ctx, 'HEAD', manifestPath);
      // Registries that never implemented HEAD: containerd retries as GET.
      if (!res.outcome && res.response.status === 405) res = await this.#sender.send(ctx, 'GET', manifestPath);
      if (res.outcome) return this.#answer(ctx, res.outcome, res.response);
      const r = res.response;
      if (r.status === 200) {
        let digest = header(r, 'docker-content-digest');
        const mediaType = bareMediaType(header(r, 'content-type') ?? '');
        if (!digest || !header(r, 'content-length')) {
          // No digest header (old registries): fetch the body and hash it, as containerd does.
          const got = r.body.length ? r : await this.#response(ctx, 'GET', manifestPath);
          if (got?.status !== 200) return this.#answer(ctx, { kind: 'error', ...(got ? { status: got.status } : {}) });
          digest = sha256Digest(got.body);
        }
        return this.#answer(ctx, { kind: 'found', digest, mediaType }, r);
      }
      // A tag can never contain ':', a digest always does.
      if (r.status === 404 && tagOrDigest.includes(':')) {
        // containerd retries a digest that is not a manifest on /blobs/.
        const blob = await this.#response(ctx, 'HEAD', `/v2/${repository}/blobs/${tagOrDigest}`);
        if (blob?.status === 200)
          return this.#answer(
            ctx,
            { kind: 'found', digest: tagOrDigest, mediaType: header(blob, 'content-type') ?? '' },
            blob,
          );
      }
      return this.#answer(ctx, outcomeOfStatus(r, res.authFailure), r);
    });
  }

  /** GET a manifest by digest (indexes, to read platforms). Verifies the body against the digest. */
  manifest(
    target: Target,
    digest: string,
    cred: RegistryCredential | null,
    signal?: AbortSignal,
  ): Promise<Answer & { body?: ManifestBody }> {
    return this.#asking(target, 'pull', pullScope, cred, signal, async (ctx, repository) => {
      const got = await this.#get(ctx, `/v2/${repository}/manifests/${digest}`);
      if (got.answer) return got.answer;
      const r = got.response;
      const body = parseVerified(r.body, digest);
      if (!body) return this.#notJson(ctx, `the manifest ${digest} is not JSON or does not match its digest`, r);
      const mediaType = bareMediaType(
        typeof body.mediaType === 'string' ? body.mediaType : (header(r, 'content-type') ?? ''),
      );
      return {
        ...this.#answer(ctx, { kind: 'found', digest, mediaType }, r),
        body: { digest, mediaType, json: body },
      };
    });
  }

  /**
   * A blob by digest, as the runtime fetches it: HEAD when its presence is enough (layers), GET for a
   * small JSON blob (an image config, whose body comes back as `json`). Registries redirect blobs to
   * storage (S3, GCS, a CDN); the transport follows without the registry's Authorization. `found`
   * is a 200 or 206 wherever it came from; `redirectedTo` names the storage host that answered.
   */
  blob(
    target: Target,
    digest: string,
    method: 'HEAD' | 'GET',
    cred: RegistryCredential | null,
    signal?: AbortSignal,
  ): Promise<Answer & { json?: Record<string, unknown>; redirectedTo?: string }> {
    // Each host of the nodes' configuration in turn, as containerd's fetcher: a 404 on a mirror
    // sends it to the next.
    return this.#asking(target, 'pull', pullScope, cred, signal, async (ctx, repository) => {
      const sent = await this.#sender.send(ctx, method, `/v2/${repository}/blobs/${digest}`);
      const r = sent.response;
      const redirectedTo = r.url.host !== ctx.host ? { redirectedTo: r.url.host } : {};
      if (sent.outcome) return { ...this.#answer(ctx, sent.outcome, r), ...redirectedTo };
      if (r.status === 200 || r.status === 206) {
        const json = method === 'GET' ? parseVerified(r.body, digest) : undefined;
        if (method === 'GET' && !json)
          return this.#notJson(ctx, `the blob ${digest} is not JSON or does not match its digest`, r);
        return {
          ...this.#answer(ctx, { kind: 'found', digest, mediaType: header(r, 'content-type') ?? '' }, r),
          ...(json ? { json } : {}),
          ...redirectedTo,
        };
      }
      return { ...this.#answer(ctx, outcomeOfStatus(r, sent.authFailure), r), ...redirectedTo };
    });
  }

  /**
   * Lists tags, following `Link: <…>; rel="next"` pages up to `max` tags.
   * `not-found` with code NAME_UNKNOWN tells a missing repository from a missing tag.
   */
  tags(
    target: Target,
    cred: RegistryCredential | null,
    max: number,
    signal?: AbortSignal,
  ): Promise<Answer & { tags?: string[] }> {
    return this.#asking(target, 'resolve', pullScope, cred, signal, async (ctx, repository) => {
      const tags: string[] = [];
      // Pages of 100: registries that page (distribution 3, Docker Hub) are followed by their Link header.
      let path: string | undefined = `/v2/${repository}/tags/list?n=${Math.min(Math.max(max, 1), 100)}`;
      for (let page = 0; path && tags.length < max && page < MAX_TAG_PAGES; page++) {
        const got = await this.#get(ctx, path);
        if (got.answer) return got.answer;
        const json = jsonObject<{ tags: unknown }>(got.response);
        if (!json) return this.#notJson(ctx, 'the tag list is not a JSON object', got.response);
        if (Array.isArray(json.tags)) for (const t of json.tags) if (typeof t === 'string') tags.push(t);
        path = nextLink(header(got.response, 'link'), ctx.host);
      }
      return {
        outcome: { kind: 'found', digest: '', mediaType: '' },
        evidence: ctx.evidence,
        tags: tags.slice(0, max),
      };
    });
  }

  /**
   * The first page of the registry's repository list (`GET /v2/_catalog?n=`), at most `max` names:
   * for "did you mean" on a missing repository. One page only, whatever Link says: a catalog can
   * hold millions of names. Registries that do not serve it (Docker Hub, most clouds) or refuse it
   * to this credential answer 401/403/404, and there is simply no list.
   */
  catalog(
    domain: string,
    cred: RegistryCredential | null,
    max: number,
    signal?: AbortSignal,
  ): Promise<Answer & { repositories?: string[] }> {
    const n = Math.min(Math.max(max, 1), MAX_CATALOG_PAGE);
    return this.#asking(
      { domain, path: '' },
      'resolve',
      () => CATALOG_SCOPE,
      cred,
      signal,
      async (ctx) => {
        const got = await this.#get(ctx, `/v2/_catalog?n=${n}`);
        if (got.answer) return got.answer;
        const json = jsonObject<{ repositories: unknown }>(got.response);
        if (!json) return this.#notJson(ctx, 'the catalog is not a JSON object', got.response);
        const repositories: string[] = [];
        if (Array.isArray(json.repositories))
          for (const name of json.repositories) {
            if (repositories.length >= n) break;
            // a repository name is at most 255 characters; anything else is not one
            if (typeof name === 'string' && name.length <= 255) repositories.push(name);
          }
        return { outcome: { kind: 'found', digest: '', mediaType: '' }, evidence: ctx.evidence, repositories };
      },
    );
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /** One host's answer, or, when a request got no answer (timeout, TLS, DNS…), what that means. */
  async #one<A extends Answer>(ctx: RequestContext, question: () => Promise<A | Answer>): Promise<A | Answer> {
    try {
      return await question();
    } catch (err) {
      return this.#answer(ctx, transportOutcome(err, ctx.evidence));
    }
  }

  /** The last response to a request, or undefined when authentication decided instead (a token server error). */
  async #response(ctx: RequestContext, method: 'HEAD' | 'GET', path: string): Promise<HttpResponse | undefined> {
    const sent = await this.#sender.send(ctx, method, path);
    return sent.outcome ? undefined : sent.response;
  }

  /** GET `path`: its 200 response, or the answer that ends the question. */
  async #get(
    ctx: RequestContext,
    path: string,
  ): Promise<{ response: HttpResponse; answer?: undefined } | { answer: Answer }> {
    const sent = await this.#sender.send(ctx, 'GET', path);
    if (sent.outcome) return { answer: this.#answer(ctx, sent.outcome, sent.response) };
    if (sent.response.status !== 200)
      return { answer: this.#answer(ctx, outcomeOfStatus(sent.response, sent.authFailure), sent.response) };
    return { response: sent.response };
  }

  #notJson(ctx: RequestContext, what: string, r: HttpResponse): Answer {
    ctx.evidence.push(what);
    return this.#answer(ctx, { kind: 'error', status: 200 }, r);
  }

  /** The answer: the registry's own error text (redacted) and rate-limit figures added from `r`. */
  #answer<T extends Outcome>(ctx: RequestContext, outcome: T, r?: HttpResponse): Answer<T> {
    const { evidence, host } = ctx;
    const err = r ? errorBody(r.body) : undefined;
    if (err?.code || err?.message) {
      // A registry may echo the request (its Authorization header, the bare token) in its error text.
      evidence.push(cut(ctx.redact(`registry says: ${[err.code, err.message].filter(Boolean).join(' ')}`), 200));
    }
    const rateLimit = r ? parseRateLimit(r.headers) : undefined;
    if (rateLimit)
      remember(this.rateLimits, `${host}|${credentialId(ctx.credential)}`, { ...rateLimit, host, at: Date.now() });
    return rateLimit ? { outcome, evidence, rateLimit } : { outcome, evidence };
  }
}

/** Each host's own TLS settings (hosts.toml), keyed as connections are: the first file to name a host decides. */
function hostTlsOf(hosts: RegistryEndpoint[], given: ClientOptions['hostTls']): ClientOptions['hostTls'] {
  const out = new Map(given ?? []);
  for (const e of hosts) {
    // keyed as the transport spells the host (lower case, no default port)
    const host = new URL(`${e.scheme}://${e.host}`).host;
    if (!out.has(host) && (e.skipVerify !== undefined || e.caPems.length || e.clients.length))
      out.set(host, {
        ...(e.skipVerify === undefined ? {} : { skipVerify: e.skipVerify }),
        caPems: e.caPems,
        clients: e.clients,
      });
  }
  return out.size ? out : undefined;
}

/** The body as a JSON object; undefined when it is not one (not JSON, or `null`, an array, a number…). */
function jsonObject<T extends object>(r: HttpResponse): Partial<T> | undefined {
  try {
    const json = JSON.parse(r.body.toString('utf8')) as unknown;
    return json && typeof json === 'object' && !Array.isArray(json) ? (json as Partial<T>) : undefined;
  } catch {
    return undefined;
  }
}

/** RFC 5988 `<url>; rel="next"`; only links on the same host are followed. */
function nextLink(link: string | undefined, host: string): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part);
    if (!m) continue;
    const url = new URL(m[1]!, `https://${host}`);
    if (url.host !== host) return undefined;
    return url.pathname + url.search;
  }
  return undefined;
}
