// One request to a registry with its authentication, as containerd's authorizer does it: a challenge
// the host sent before is answered up front (no 401 round trip), a 401 is read, authorized and
// retried once, and a refused token is forgotten so that the retry gets a fresh one. Every step
// adds a line to the context's evidence.

import { Authenticator } from './auth.ts';
import { parseChallenges, pickChallenge, type Challenge } from './challenge.ts';
import { MANIFEST_ACCEPT, MAX_MANIFEST_SIZE } from './media.ts';
import { headerAll, NO_AUTH_FAILURE, type AuthFailure, type Outcome } from './outcomes.ts';
import { remember } from './remember.ts';
import type { RequestContext } from './request-context.ts';
import type { HttpResponse, RegistryTransport } from './transport.ts';

/**
 * The last answer, and why a 401 stayed one (authFailure); `outcome` when authentication itself
 * decided the question (the token server failed), with the 401 that led there as `response`.
 */
export interface Sent {
  response: HttpResponse;
  authFailure?: AuthFailure;
  outcome?: Outcome;
}

/** A HEAD's body is only ever an error text: this much of it is kept. */
const HEAD_BODY = 64 * 1024;

export class Sender {
  readonly transport: RegistryTransport;
  readonly auth: Authenticator;
  /** the last challenge each host sent: later requests answer it up front and skip the 401 round trip */
  readonly #challenges = new Map<string, Challenge>();
  /** manifest requests sent (benchmarks) */
  manifestRequests = 0;

  constructor(transport: RegistryTransport) {
    this.transport = transport;
    this.auth = new Authenticator(transport);
  }

  /** `method path` on the context's host, authorized for its scope and credential; evidence goes to the context. */
  async send(ctx: RequestContext, method: 'HEAD' | 'GET', path: string): Promise<Sent> {
    const { host, scope, credential, signal } = ctx;
    const headers: Record<string, string> = { ...joined(ctx.headers), accept: MANIFEST_ACCEPT };
    const known = this.#challenges.get(host);
    if (known) {
      const auth = await this.auth.authorize(known, scope, credential, signal, this.transport.baseUrl(host));
      if (auth.ok) headers.authorization = ctx.authorization(auth.authorization);
    }
    const shown = path.split('?')[0];
    let r = await this.#request(ctx, method, path, headers);
    ctx.evidence.push(`${method} ${shown} → ${r.status}${via(r)}`);
    if (r.status !== 401) return { response: r };

    const challenge = pickChallenge(parseChallenges(headerAll(r, 'www-authenticate')));
    if (!challenge) return { response: r, authFailure: NO_AUTH_FAILURE };
    const insufficient = challenge.params.error === 'insufficient_scope';
    if (headers.authorization) {
      // A token without the needed scope will not gain it by asking again (containerd gives up here
      // too); any other refusal may be a stale token: forget it and get a fresh one once.
      if (insufficient) return { response: r, authFailure: { ...NO_AUTH_FAILURE, insufficientScope: true } };
      this.auth.forget(challenge, scope, credential);
    }
    remember(this.#challenges, host, {
      scheme: challenge.scheme,
      params: { ...challenge.params, error: '', scope: '' },
    });
    // The scheme as it is now: an insecure host found to speak plain HTTP by the request above is no
    // longer "reached over HTTPS", and an http:// realm is then no downgrade.
    const auth = await this.auth.authorize(challenge, scope, credential, signal, this.transport.baseUrl(host));
    if (!auth.ok) {
      ctx.evidence.push(auth.detail);
      if (auth.failure === 'token-error')
        return { response: r, outcome: { kind: 'error', ...(auth.status ? { status: auth.status } : {}) } };
      return {
        response: r,
        authFailure: {
          insufficientScope: insufficient,
          rejected: auth.failure === 'rejected',
          noCredentials: auth.failure === 'no-credentials',
        },
      };
    }
    headers.authorization = ctx.authorization(auth.authorization);
    r = await this.#request(ctx, method, path, headers);
    const using = auth.authorization.startsWith('Basic') ? 'basic credentials' : 'a token';
    ctx.evidence.push(`${method} ${shown} with ${using} → ${r.status}${via(r)}`);
    if (r.status !== 401) return { response: r };
    const again = pickChallenge(parseChallenges(headerAll(r, 'www-authenticate')));
    return {
      response: r,
      authFailure: {
        ...NO_AUTH_FAILURE,
        insufficientScope: again?.params.error === 'insufficient_scope' || insufficient,
      },
    };
  }

  #request(ctx: RequestContext, method: 'HEAD' | 'GET', path: string, headers: Record<string, string>) {
    if (path.includes('/manifests/')) this.manifestRequests++;
    // A GET body is used whole (manifests, configs, tag lists; Debian's registry sends every tag in
    // one page), up to containerd's manifest limit; a HEAD's is only ever an error text.
    const body =
      method === 'GET'
        ? { maxBody: MAX_MANIFEST_SIZE, truncateBody: false }
        : { maxBody: HEAD_BODY, truncateBody: true };
    return this.transport.registryRequest(ctx.host, ctx.wire(path), { method, headers, signal: ctx.signal, ...body });
  }
}

/** hosts.toml headers: a list is sent as one comma-joined value (what HTTP makes of repeated fields). */
function joined(headers: Record<string, string[]> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k.toLowerCase()] = v.join(', ');
  return out;
}

function via(r: HttpResponse): string {
  return `${r.proxy ? ` (via proxy ${r.proxy})` : ''}${r.note ? `; ${r.note}` : ''}`;
}
