// Short-lived ServiceAccount tokens (TokenRequest: create on serviceaccounts/token) for the kubelet
// credential provider plugins that are given one (KEP-4412 tokenAttributes): one per ServiceAccount
// and audience, reused until shortly before it expires, never after. Only with
// credentials.serviceAccountTokens (off by default): the webhook can then mint tokens for these
// audiences for any ServiceAccount it reviews a pod of (docs/operating.md states the trade-off).
// A token never reaches a log, a metric or an error text: failures are worded from the API's answer.
import type { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { ServiceAccountToken } from '../credentials/context.ts';
import { isDnsLabel, isDnsSubdomain } from '../workload/names.ts';
import { apiErrorText, apiStatus } from './api-errors.ts';
import { clientNode } from './k8s.ts';
import { withSignal } from './signal.ts';

/** The shortest lifetime TokenRequest accepts (expirationSeconds ≥ 600); a plugin needs it for seconds. */
export const TOKEN_SECONDS = 600;

/** A token is renewed when less than this share of its lifetime is left, so a plugin never gets a nearly dead one. */
const RENEW_SHARE = 0.5;

export interface TokenRequesterOptions {
  /** per request */
  timeoutMs: number;
  /** tokens held at most (one per ServiceAccount and audience) */
  maxEntries?: number;
  now?: () => number;
}

export class ServiceAccountTokens {
  readonly #api: CoreV1Api;
  readonly #opts: TokenRequesterOptions;
  readonly #held = new Map<string, { token: ServiceAccountToken; renewAt: number }>();
  readonly #inFlight = new Map<string, Promise<ServiceAccountToken | { error: string }>>();

  constructor(kc: KubeConfig, opts: TokenRequesterOptions) {
    this.#api = kc.makeApiClient(clientNode().CoreV1Api);
    this.#opts = opts;
  }

  /** A token of `namespace/name` for `audience`, or why there is none (one line, no token in it). */
  request(namespace: string, name: string, audience: string): Promise<ServiceAccountToken | { error: string }> {
    if (!isDnsLabel(namespace) || !isDnsSubdomain(name))
      return Promise.resolve({ error: 'not a valid namespace or ServiceAccount name' });
    const key = JSON.stringify([namespace, name, audience]);
    const now = this.#now();
    const held = this.#held.get(key);
    if (held && now < held.renewAt && now < held.token.expiresAt) return Promise.resolve(held.token);
    this.#held.delete(key);
    let pending = this.#inFlight.get(key);
    if (!pending) {
      pending = this.#mint(namespace, name, audience).then((got) => {
        if (!('error' in got)) {
          if (this.#held.size >= (this.#opts.maxEntries ?? 10_000)) this.#evict();
          const issued = this.#now();
          const renewAt = issued + (got.expiresAt - issued) * RENEW_SHARE;
          const entry = { token: got, renewAt };
          this.#held.set(key, entry);
          // Dropped when it is due for renewal, long before it expires: no token is held past its expiry.
          setTimeout(
            () => {
              if (this.#held.get(key) === entry) this.#held.delete(key);
            },
            Math.max(0, renewAt - issued),
          ).unref();
        }
        return got;
      });
      pending.finally(() => this.#inFlight.delete(key)).catch(() => {});
      this.#inFlight.set(key, pending);
    }
    return pending;
  }

  async #mint(namespace: string, name: string, audience: string): Promise<ServiceAccountToken | { error: string }> {
    const what = `a token of ServiceAccount "${name}" in namespace "${namespace}" for audience "${audience}"`;
    try {
      const tr = await this.#api.createNamespacedServiceAccountToken(
        {
          name,
          namespace,
          body: { spec: { audiences: [audience], expirationSeconds: TOKEN_SECONDS } },
        },
        withSignal(AbortSignal.timeout(this.#opts.timeoutMs)),
      );
      const token = tr.status?.token;
      const expires = tr.status?.expirationTimestamp ? new Date(tr.status.expirationTimestamp).getTime() : Number.NaN;
      if (!token || Number.isNaN(expires)) return { error: `cannot create ${what}: the API server answered no token` };
      return { token, expiresAt: expires };
    } catch (err) {
      const text = apiErrorText(err, { verb: 'create', what, timeoutMs: this.#opts.timeoutMs });
      return {
        error:
          apiStatus(err) === 403
            ? `${text}; grant create on serviceaccounts/token (the Helm value serviceAccountTokens.enabled, or the kustomize component manifests/components/service-account-tokens)`
            : text,
      };
    }
  }

  #evict(): void {
    const now = this.#now();
    for (const [k, v] of this.#held) if (now >= v.renewAt) this.#held.delete(k);
    if (this.#held.size >= (this.#opts.maxEntries ?? 10_000)) {
      const oldest = this.#held.keys().next().value;
      if (oldest !== undefined) this.#held.delete(oldest);
    }
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }
}
