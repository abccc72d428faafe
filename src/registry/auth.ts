// Answers a registry's WWW-Authenticate challenge the way containerd does: Basic with the credential
// as is; Bearer through the token server (OAuth2 POST first when there is a secret, then GET with
// Basic), anonymous GET when there is none. Tokens are kept until they expire.
//
// Where credentials go: to the registry host itself (Basic), and to the token realm the registry
// names, which may be another host (Docker Hub's is auth.docker.io) — as containerd does. Unlike
// containerd, a realm over plain http:// for a registry reached over HTTPS gets nothing (the
// password would cross the network in cleartext), and a token server that redirects a request
// carrying credentials to another host is not followed: both end as a registry-error saying why.

import { createHash } from 'node:crypto';
import { SharedCache } from '../cache.ts';
import type { Challenge } from './challenge.ts';
import { TransportError } from './failures.ts';
import type { HttpRequest, RegistryTransport } from './transport.ts';

export interface RegistryCredential {
  username: string;
  password: string;
}

/** A stable, non-reversible identity for a credential: cache keys must never hold the secret. */
export function credentialId(cred: RegistryCredential | null): string {
  if (!cred) return 'anonymous';
  return createHash('sha256').update(cred.username).update('\0').update(cred.password).digest('hex').slice(0, 24);
}

export type AuthOutcome =
  | { ok: true; authorization: string }
  | {
      ok: false;
      /** no-credentials: Basic challenge and nothing to offer; rejected: the token server refused them */
      failure: 'no-credentials' | 'rejected' | 'token-error' | 'unsupported';
      detail: string;
      status?: number;
    };

/** A token server's answer, and how long a token in it may be used. */
type TokenAnswer = AuthOutcome & { lifetimeMs?: number };

const TOKEN_MAX_BODY = 256 * 1024;

export class Authenticator {
  readonly #transport: RegistryTransport;
  /** tokens until they expire; concurrent asks for the same one share one token request */
  readonly #tokens = new SharedCache<TokenAnswer>(10_000);
  /** counted for benchmarks and metrics */
  tokenRequests = 0;

  constructor(transport: RegistryTransport) {
    this.#transport = transport;
  }

  async authorize(
    challenge: Challenge,
    scope: string,
    cred: RegistryCredential | null,
    signal?: AbortSignal,
    /** the registry that sent the challenge: an HTTPS registry's credentials never go to an http:// realm */
    registry?: URL,
  ): Promise<AuthOutcome> {
    if (challenge.scheme === 'basic') {
      if (!cred)
        return {
          ok: false,
          failure: 'no-credentials',
          detail: 'the registry asks for a username and password (no basic auth credentials)',
        };
      return {
        ok: true,
        authorization: `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`,
      };
    }
    if (challenge.scheme !== 'bearer')
      return {
        ok: false,
        failure: 'unsupported',
        detail: `the registry asks for ${challenge.scheme} authentication, which the kubelet's runtime does not answer`,
      };
    const realm = challenge.params.realm;
    if (!realm) return { ok: false, failure: 'token-error', detail: 'the Bearer challenge names no realm' };
    const service = challenge.params.service ?? '';
    const key = `${realm}|${service}|${scope}|${credentialId(cred)}`;
    const answer = await this.#tokens.get(
      key,
      (shared) => this.#fetchToken(realm, service, scope, cred, shared, registry),
      (a) => (a.ok ? (a.lifetimeMs ?? 0) : 0),
      signal,
    );
    if (!answer.ok) return answer;
    return { ok: true, authorization: answer.authorization };
  }

  /** Forget a token the registry refused (it may have been revoked before it expired). */
  forget(challenge: Challenge, scope: string, cred: RegistryCredential | null): void {
    this.#tokens.delete(`${challenge.params.realm}|${challenge.params.service ?? ''}|${scope}|${credentialId(cred)}`);
  }

  async #fetchToken(
    realm: string,
    service: string,
    scope: string,
    cred: RegistryCredential | null,
    signal?: AbortSignal,
    registry?: URL,
  ): Promise<AuthOutcome> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      return { ok: false, failure: 'token-error', detail: `the token realm "${realm.slice(0, 100)}" is not a URL` };
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      return { ok: false, failure: 'token-error', detail: `the token realm ${url.protocol}// is not http(s)` };
    if (cred && url.protocol === 'http:' && registry?.protocol === 'https:')
      return {
        ok: false,
        failure: 'token-error',
        detail: `the token realm ${url.host} is plain HTTP while the registry is reached over HTTPS; pullguard does not send the pull secret there in cleartext (the kubelet's runtime would)`,
      };
    if (cred) {
      const posted = await this.#request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'password',
          username: cred.username,
          password: cred.password,
          service,
          client_id: 'pullguard',
          scope,
        }).toString(),
        credentialed: true,
        signal,
      });
      // Token servers without the OAuth2 endpoint answer 404, 401, 400 or 405 (GCR, JFrog, ACR): fall back to GET.
      if (!('status' in posted) || ![400, 401, 404, 405].includes(posted.status)) return this.#accept(posted);
    }
    const get = new URL(url);
    if (service) get.searchParams.set('service', service);
    if (scope) get.searchParams.set('scope', scope);
    const headers: Record<string, string> = cred
      ? { authorization: `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}` }
      : {};
    return this.#accept(await this.#request(get, { method: 'GET', headers, credentialed: Boolean(cred), signal }));
  }

  async #request(url: URL, req: HttpRequest): Promise<{ status: number; body: Buffer } | { error: TransportError }> {
    this.tokenRequests++;
    try {
      const res = await this.#transport.request(url, { ...req, maxBody: TOKEN_MAX_BODY });
      return { status: res.status, body: res.body };
    } catch (err) {
      if (err instanceof TransportError) return { error: err };
      throw err;
    }
  }

  #accept(res: { status: number; body: Buffer } | { error: TransportError }): TokenAnswer {
    if ('error' in res) throw res.error;
    if (res.status === 401 || res.status === 403) {
      return {
        ok: false,
        failure: 'rejected',
        status: res.status,
        detail: `the token server refused the credentials (HTTP ${res.status})`,
      };
    }
    if (res.status !== 200)
      return {
        ok: false,
        failure: 'token-error',
        status: res.status,
        detail: `the token server answered HTTP ${res.status}`,
      };
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      parsed = JSON.parse(res.body.toString('utf8')) as typeof parsed;
    } catch {
      return { ok: false, failure: 'token-error', detail: 'the token server answered with something that is not JSON' };
    }
    const token =
      typeof parsed.token === 'string' && parsed.token
        ? parsed.token
        : typeof parsed.access_token === 'string'
          ? parsed.access_token
          : '';
    if (!token) return { ok: false, failure: 'token-error', detail: 'the token server answered without a token' };
    // expires_in defaults to 60 s (token spec); keep a margin so a token never expires in flight.
    const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60;
    const issued = typeof parsed.issued_at === 'string' ? Date.parse(parsed.issued_at) : NaN;
    const start = Number.isNaN(issued) || issued > Date.now() ? Date.now() : issued;
    return {
      ok: true,
      authorization: `Bearer ${token}`,
      lifetimeMs: start + Math.max(0, lifetime - 10) * 1000 - Date.now(),
    };
  }
}
