// The questions the kubelet's runtime will ask a registry, asked the cheap way: HEAD the manifest
// with containerd's Accept list (a HEAD does not count against Docker Hub's pull limit), GET only
// when a registry makes it necessary, tags and index bodies only when a finding needs them.

import { createHash } from 'node:crypto';
import { cut, oneLine, redact } from '../findings.ts';
import { parseChallenges, pickChallenge, type Challenge } from './challenge.ts';
import { Authenticator, credentialId, type RegistryCredential } from './auth.ts';
import { registryHost } from './hosts.ts';
import { parseRateLimit, parseRetryAfter, type RateLimit } from './ratelimit.ts';
import type { TlsProblem } from '../system-errors.ts';
import { RegistryTransport, TransportError, type HttpResponse, type TransportOptions } from './transport.ts';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** What containerd sends when it resolves: without the OCI types, registries answer "not found" for indexes. */
export const MANIFEST_ACCEPT = [MEDIA.dockerManifest, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.ociIndex, '*/*'].join(
  ', ',
);

/** containerd's MaxManifestSize (4 * 1048 * 1048, sic). */
export const MAX_MANIFEST_SIZE = 4 * 1048 * 1048;

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList;
}

/** The registry's answer, reduced to what decides a finding. */
export type Outcome =
  | { kind: 'found'; digest: string; mediaType: string }
  | { kind: 'not-found'; code?: string }
  | { kind: 'unauthorized'; insufficientScope: boolean; rejected: boolean; noCredentials: boolean }
  | { kind: 'denied' }
  | { kind: 'rate-limited'; retryAfter?: number }
  | { kind: 'error'; status?: number }
  | { kind: 'unreachable'; transport: string; tls?: TlsProblem }
  | { kind: 'timeout' };

export interface Answer<T extends Outcome = Outcome> {
  outcome: T;
  /** one-line facts for people: statuses, hosts, error codes; never a credential */
  evidence: string[];
  rateLimit?: RateLimit;
}

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
  /** domain -> base URL the nodes pull from instead (a mirror); see config registry.endpoints */
  endpoints?: Record<string, string>;
}

interface ErrorBody {
  code?: string;
  message?: string;
}

export class RegistryClient {
  readonly transport: RegistryTransport;
  readonly auth: Authenticator;
  /** the last challenge each host sent: later requests answer it up front and skip the 401 round trip */
  private readonly challenges = new Map<string, Challenge>();
  /** last rate-limit figures per registry host and credential identity */
  readonly rateLimits = new Map<string, RateLimit & { host: string; at: number }>();
  manifestRequests = 0;

  private readonly endpoints = new Map<string, string>();

  constructor(options: ClientOptions) {
    this.transport = new RegistryTransport(options);
    this.auth = new Authenticator(this.transport);
    for (const [domain, base] of Object.entries(options.endpoints ?? {})) {
      const url = new URL(base);
      this.endpoints.set(domain, url.host);
      if (url.protocol === 'http:') this.transport.usePlainHttp(url.host);
    }
  }

  /** The host requests for a domain go to: its configured endpoint, else containerd's default. */
  hostFor(domain: string): string {
    return this.endpoints.get(domain) ?? registryHost(domain);
  }

  /** HEAD the manifest for a tag or digest, answering auth challenges with `cred` (null: anonymous). */
  async resolve(
    target: Target,
    tagOrDigest: string,
    cred: RegistryCredential | null,
    signal?: AbortSignal,
  ): Promise<Answer> {
    const host = this.hostFor(target.domain);
    const evidence: string[] = [];
    const sent = secretsOf(cred);
    const manifestPath = `/v2/${target.path}/manifests/${tagOrDigest}`;
    try {
      let res = await this.send(host, pullScope(target.path), 'HEAD', manifestPath, cred, evidence, sent, signal);
      if (!res.response) return res.answer;
      let r = res.response;
      // Registries that never implemented HEAD: containerd retries as GET.
      if (r.status === 405) {
        res = await this.send(host, pullScope(target.path), 'GET', manifestPath, cred, evidence, sent, signal);
        if (!res.response) return res.answer;
        r = res.response;
      }
      if (r.status === 200) {
        let digest = header(r, 'docker-content-digest');
        const mediaType = (header(r, 'content-type') ?? '').split(';')[0]!.trim();
        if (!digest || !header(r, 'content-length')) {
          // No digest header (old registries): fetch the body and hash it, as containerd does.
          const got = r.body.length
            ? r
            : (await this.send(host, pullScope(target.path), 'GET', manifestPath, cred, evidence, sent, signal))
                .response;
          if (got?.status !== 200)
            return this.answer({ kind: 'error', ...(got ? { status: got.status } : {}) }, evidence, host, cred, sent);
          digest = `sha256:${createHash('sha256').update(got.body).digest('hex')}`;
        }
        return this.answer({ kind: 'found', digest, mediaType }, evidence, host, cred, sent, r);
      }
      // A tag can never contain ':', a digest always does.
      if (r.status === 404 && tagOrDigest.includes(':')) {
        // containerd retries a digest that is not a manifest on /blobs/.
        const blob = await this.send(
          host,
          pullScope(target.path),
          'HEAD',
          `/v2/${target.path}/blobs/${tagOrDigest}`,
          cred,
          evidence,
          sent,
          signal,
        );
        if (blob.response?.status === 200)
          return this.answer(
            { kind: 'found', digest: tagOrDigest, mediaType: header(blob.response, 'content-type') ?? '' },
            evidence,
            host,
            cred,
            sent,
            blob.response,
          );
      }
      return this.answer(this.outcomeOfStatus(r, res.authFailure), evidence, host, cred, sent, r);
    } catch (err) {
      return this.answer(transportOutcome(err, evidence), evidence, host, cred, sent);
    }
  }

  /** GET a manifest by digest (indexes, to read platforms). Verifies the body against the digest. */
  async manifest(
    target: Target,
    digest: string,
    cred: RegistryCredential | null,
    signal?: AbortSignal,
  ): Promise<Answer & { body?: ManifestBody }> {
    const host = this.hostFor(target.domain);
    const evidence: string[] = [];
    const sent = secretsOf(cred);
    try {
      const res = await this.send(
        host,
        pullScope(target.path),
        'GET',
        `/v2/${target.path}/manifests/${digest}`,
        cred,
        evidence,
        sent,
        signal,
      );
      if (!res.response) return res.answer;
      const r = res.response;
      if (r.status !== 200) return this.answer(this.outcomeOfStatus(r, res.authFailure), evidence, host, cred, sent, r);
      const body = parseVerified(r.body, digest);
      if (!body) {
        evidence.push(`the manifest ${digest} is not JSON or does not match its digest`);
        return this.answer({ kind: 'error', status: 200 }, evidence, host, cred, sent, r);
      }
      const mediaType = (typeof body.mediaType === 'string' ? body.mediaType : (header(r, 'content-type') ?? ''))
        .split(';')[0]!
        .trim();
      return {
        ...this.answer({ kind: 'found', digest, mediaType }, evidence, host, cred, sent, r),
        body: { digest, mediaType, json: body },
      };
    } catch (err) {
      return this.answer(transportOutcome(err, evidence), evidence, host, cred, sent);
    }
  }

  /** GET a small JSON blob (an image config) by digest. */
  async blobJson(
    target: Target,
    digest: string,
    cred: RegistryCredential | null,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown> | undefined> {
    const host = this.hostFor(target.domain);
    try {
      const res = await this.send(
        host,
        pullScope(target.path),
        'GET',
        `/v2/${target.path}/blobs/${digest}`,
        cred,
        [],
        [],
        signal,
      );
      if (res.response?.status !== 200) return undefined;
      return parseVerified(res.response.body, digest);
    } catch {
      return undefined;
    }
  }

  /**
   * Lists tags, following `Link: <…>; rel="next"` pages up to `max` tags.
   * `not-found` with code NAME_UNKNOWN tells a missing repository from a missing tag.
   */
  async tags(
    target: Target,
    cred: RegistryCredential | null,
    max: number,
    signal?: AbortSignal,
  ): Promise<Answer & { tags?: string[] }> {
    const host = this.hostFor(target.domain);
    const evidence: string[] = [];
    const sent = secretsOf(cred);
    const tags: string[] = [];
    // Pages of 100: registries that page (distribution 3, Docker Hub) are followed by their Link header.
    let path: string | undefined = `/v2/${target.path}/tags/list?n=${Math.min(Math.max(max, 1), 100)}`;
    try {
      for (let page = 0; path && tags.length < max && page < 50; page++) {
        const res = await this.send(host, pullScope(target.path), 'GET', path, cred, evidence, sent, signal);
        if (!res.response) return res.answer;
        const r = res.response;
        if (r.status !== 200)
          return this.answer(this.outcomeOfStatus(r, res.authFailure), evidence, host, cred, sent, r);
        let json: { tags?: unknown };
        try {
          json = JSON.parse(r.body.toString('utf8')) as { tags?: unknown };
        } catch {
          evidence.push('the tag list is not JSON');
          return this.answer({ kind: 'error', status: 200 }, evidence, host, cred, sent, r);
        }
        if (Array.isArray(json.tags)) for (const t of json.tags) if (typeof t === 'string') tags.push(t);
        path = nextLink(header(r, 'link'), host);
      }
      return { outcome: { kind: 'found', digest: '', mediaType: '' }, evidence, tags: tags.slice(0, max) };
    } catch (err) {
      return this.answer(transportOutcome(err, evidence), evidence, host, cred, sent);
    }
  }

  /**
   * The first page of the registry's repository list (`GET /v2/_catalog?n=`), at most `max` names:
   * for "did you mean" on a missing repository. One page only, whatever Link says: a catalog can
   * hold millions of names. Registries that do not serve it (Docker Hub, most clouds) or refuse it
   * to this credential answer 401/403/404, and there is simply no list.
   */
  async catalog(
    domain: string,
    cred: RegistryCredential | null,
    max: number,
    signal?: AbortSignal,
  ): Promise<Answer & { repositories?: string[] }> {
    const host = this.hostFor(domain);
    const evidence: string[] = [];
    const sent = secretsOf(cred);
    const n = Math.min(Math.max(max, 1), MAX_CATALOG_PAGE);
    try {
      const res = await this.send(host, CATALOG_SCOPE, 'GET', `/v2/_catalog?n=${n}`, cred, evidence, sent, signal);
      if (!res.response) return res.answer;
      const r = res.response;
      if (r.status !== 200) return this.answer(this.outcomeOfStatus(r, res.authFailure), evidence, host, cred, sent, r);
      let json: { repositories?: unknown };
      try {
        json = JSON.parse(r.body.toString('utf8')) as { repositories?: unknown };
      } catch {
        evidence.push('the catalog is not JSON');
        return this.answer({ kind: 'error', status: 200 }, evidence, host, cred, sent, r);
      }
      const repositories: string[] = [];
      if (Array.isArray(json.repositories))
        for (const name of json.repositories) {
          if (repositories.length >= n) break;
          // a repository name is at most 255 characters; anything else is not one
          if (typeof name === 'string' && name.length <= 255) repositories.push(name);
        }
      return { outcome: { kind: 'found', digest: '', mediaType: '' }, evidence, repositories };
    } catch (err) {
      return this.answer(transportOutcome(err, evidence), evidence, host, cred, sent);
    }
  }

  /**
   * One request with authentication: answers a known challenge up front; on 401 reads the new
   * challenge, authorizes and retries once.
   */
  private async send(
    host: string,
    /** the token scope asked for: pull on a repository (pullScope), or the catalog */
    scope: string,
    method: 'HEAD' | 'GET',
    path: string,
    cred: RegistryCredential | null,
    evidence: string[],
    /** every secret this request sends is added here, to be redacted from what the registry says */
    sent: string[],
    signal?: AbortSignal,
  ): Promise<
    { response: HttpResponse; answer?: undefined; authFailure?: AuthFailure } | { response?: undefined; answer: Answer }
  > {
    const headers: Record<string, string> = { accept: MANIFEST_ACCEPT };
    const isManifest = path.includes('/manifests/');
    const known = this.challenges.get(host);
    if (known) {
      const auth = await this.auth.authorize(known, scope, cred, signal, this.transport.baseUrl(host));
      if (auth.ok) headers.authorization = sentWith(sent, auth.authorization);
    }
    // A GET body is used whole (manifests, configs, tag lists; Debian's registry sends every tag in
    // one page), up to containerd's manifest limit; a HEAD's is only ever an error text.
    const body =
      method === 'GET'
        ? { maxBody: MAX_MANIFEST_SIZE, truncateBody: false }
        : { maxBody: 64 * 1024, truncateBody: true };
    const request = () => {
      if (isManifest) this.manifestRequests++;
      return this.transport.registryRequest(host, path, { method, headers, signal, ...body });
    };
    let r = await request();
    evidence.push(`${method} ${path.split('?')[0]} → ${r.status}${via(r)}`);
    if (r.status !== 401) return { response: r };

    const challenge = pickChallenge(parseChallenges(headerAll(r, 'www-authenticate')));
    if (!challenge)
      return { response: r, authFailure: { insufficientScope: false, rejected: false, noCredentials: false } };
    const hadAuth = Boolean(headers.authorization);
    const insufficient = challenge.params.error === 'insufficient_scope';
    if (hadAuth) {
      // A token without the needed scope will not gain it by asking again (containerd gives up here
      // too); any other refusal may be a stale token: forget it and get a fresh one once.
      if (insufficient)
        return { response: r, authFailure: { insufficientScope: true, rejected: false, noCredentials: false } };
      this.auth.forget(challenge, scope, cred);
    }
    keep(this.challenges, host, { scheme: challenge.scheme, params: { ...challenge.params, error: '', scope: '' } });
    const auth = await this.auth.authorize(challenge, scope, cred, signal, this.transport.baseUrl(host));
    if (!auth.ok) {
      evidence.push(auth.detail);
      if (auth.failure === 'token-error')
        return {
          answer: this.answer(
            { kind: 'error', ...(auth.status ? { status: auth.status } : {}) },
            evidence,
            host,
            cred,
            sent,
            r,
          ),
        };
      return {
        response: r,
        authFailure: {
          insufficientScope: insufficient,
          rejected: auth.failure === 'rejected',
          noCredentials: auth.failure === 'no-credentials',
        },
      };
    }
    headers.authorization = sentWith(sent, auth.authorization);
    r = await request();
    evidence.push(
      `${method} ${path.split('?')[0]} with ${auth.authorization.startsWith('Basic') ? 'basic credentials' : 'a token'} → ${r.status}${via(r)}`,
    );
    if (r.status !== 401) return { response: r };
    const again = pickChallenge(parseChallenges(headerAll(r, 'www-authenticate')));
    return {
      response: r,
      authFailure: {
        insufficientScope: again?.params.error === 'insufficient_scope' || insufficient,
        rejected: false,
        noCredentials: false,
      },
    };
  }

  private outcomeOfStatus(r: HttpResponse, authFailure?: AuthFailure): Outcome {
    const err = errorBody(r.body);
    switch (r.status) {
      case 401:
        return {
          kind: 'unauthorized',
          ...(authFailure ?? { insufficientScope: false, rejected: false, noCredentials: false }),
        };
      case 403:
        return err?.code === 'TOOMANYREQUESTS' ? { kind: 'rate-limited' } : { kind: 'denied' };
      case 404:
        return err?.code ? { kind: 'not-found', code: err.code } : { kind: 'not-found' };
      case 429: {
        const after = parseRetryAfter(header(r, 'retry-after'));
        return after === undefined ? { kind: 'rate-limited' } : { kind: 'rate-limited', retryAfter: after };
      }
      default:
        return { kind: 'error', status: r.status };
    }
  }

  private answer<T extends Outcome>(
    outcome: T,
    evidence: string[],
    host: string,
    cred: RegistryCredential | null,
    sent: readonly string[],
    r?: HttpResponse,
  ): Answer<T> {
    const err = r ? errorBody(r.body) : undefined;
    if (err?.code || err?.message) {
      // A registry may echo the request (its Authorization header, the bare token) in its error text.
      evidence.push(cut(redact(`registry says: ${[err.code, err.message].filter(Boolean).join(' ')}`, sent), 200));
    }
    const rateLimit = r ? parseRateLimit(r.headers) : undefined;
    if (rateLimit) keep(this.rateLimits, `${host}|${credentialId(cred)}`, { ...rateLimit, host, at: Date.now() });
    return rateLimit ? { outcome, evidence, rateLimit } : { outcome, evidence };
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}

interface AuthFailure {
  insufficientScope: boolean;
  rejected: boolean;
  noCredentials: boolean;
}

function transportOutcome(err: unknown, evidence: string[]): Outcome {
  if (!(err instanceof TransportError)) throw err;
  evidence.push(err.message);
  if (err.kind === 'aborted' || err.kind === 'timeout') return { kind: 'timeout' };
  if (err.kind === 'too-large' || err.kind === 'redirect') return { kind: 'error' };
  return err.tls
    ? { kind: 'unreachable', transport: err.kind, tls: err.tls }
    : { kind: 'unreachable', transport: err.kind };
}

/** The token scope of the repository list (distribution's token auth; htpasswd registries ignore it). */
const CATALOG_SCOPE = 'registry:catalog:*';
/** names asked for in one catalog request at most (distribution's own default page limit) */
export const MAX_CATALOG_PAGE = 1000;

function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

/** Per-host memory (challenges, rate limits): pod authors name any host, so past this the oldest entry goes. */
export const MAX_REMEMBERED_HOSTS = 1024;

function keep<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_REMEMBERED_HOSTS) map.delete(map.keys().next().value as string);
}

/** The secrets a credential puts on the wire: the password as is, form-encoded and in Basic's base64. */
function secretsOf(cred: RegistryCredential | null): string[] {
  if (!cred) return [];
  const { username, password } = cred;
  return [
    password,
    encodeURIComponent(password),
    Buffer.from(password).toString('base64'),
    Buffer.from(`${username}:${password}`).toString('base64'),
  ];
}

/** Adds an Authorization value's credential (a token, a Basic pair) and its base64 to `sent`; returns the value. */
function sentWith(sent: string[], authorization: string): string {
  const secret = authorization.slice(authorization.indexOf(' ') + 1);
  if (!sent.includes(secret)) sent.push(secret, Buffer.from(secret).toString('base64'));
  return authorization;
}

function via(r: HttpResponse): string {
  return r.proxy ? ` (via proxy ${r.proxy})` : '';
}

function header(r: HttpResponse, name: string): string | undefined {
  const v = r.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function headerAll(r: HttpResponse, name: string): string[] {
  const v = r.headers[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function errorBody(body: Buffer): ErrorBody | undefined {
  if (!body.length) return undefined;
  try {
    const json = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    const first = Array.isArray(json.errors) ? (json.errors[0] as ErrorBody | undefined) : undefined;
    if (!first || typeof first !== 'object') return undefined;
    return {
      ...(typeof first.code === 'string' ? { code: first.code } : {}),
      ...(typeof first.message === 'string' ? { message: oneLine(first.message) } : {}),
    };
  } catch {
    return undefined;
  }
}

function parseVerified(body: Buffer, digest: string): Record<string, unknown> | undefined {
  const [algorithm, hex] = digest.split(':');
  const known = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' }[algorithm ?? ''];
  if (known && createHash(known).update(body).digest('hex') !== hex) return undefined;
  try {
    const json = JSON.parse(body.toString('utf8')) as unknown;
    return json && typeof json === 'object' && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
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
