// One registry question's request context, made once by the client and passed to every request the
// question makes (as containerd's resolver passes its options and ctx): where the requests go, with
// which credential and token scope, until when (the caller's signal), where the evidence for people
// goes, and which secrets went on the wire, so that nothing a registry echoes back can repeat them.

import { redact } from '../text.ts';
import type { RegistryCredential } from './auth.ts';

export interface RequestContextInit {
  /** the registry host[:port] requests go to (an endpoint's, or containerd's default for the domain) */
  host: string;
  /** the token scope asked for: pull on a repository (pullScope), or the catalog */
  scope: string;
  /** the pull secret's credential; null: anonymous */
  credential: RegistryCredential | null;
  /** the caller's deadline or cancellation */
  signal?: AbortSignal | undefined;
  /** the host's API root when not /v2 (a mirror's path, override_path) */
  apiRoot?: string;
  /** the reference's domain, sent as `?ns=` to a host other than it, as containerd does for mirrors */
  namespace?: string;
  /** extra headers for this host (hosts.toml [header]) */
  headers?: Record<string, string[]>;
}

export class RequestContext {
  readonly host: string;
  readonly scope: string;
  readonly credential: RegistryCredential | null;
  readonly signal: AbortSignal | undefined;
  readonly apiRoot: string;
  readonly namespace: string | undefined;
  readonly headers: Record<string, string[]> | undefined;
  /** one-line facts for people, in the order they happened: statuses, hosts, error codes; never a credential */
  readonly evidence: string[] = [];
  /** the tokens and Basic pairs this question's requests sent; the credential's own secrets are added in redact() */
  readonly #sent: string[] = [];

  constructor(init: RequestContextInit) {
    this.host = init.host;
    this.scope = init.scope;
    this.credential = init.credential;
    this.signal = init.signal;
    this.apiRoot = init.apiRoot ?? '/v2';
    this.namespace = init.namespace;
    this.headers = init.headers;
  }

  /**
   * The path on the wire for an API path the client writes as `/v2/…`: under the host's own API
   * root, with `ns=<domain>` when the host is not the reference's domain. A path already under the
   * root (a Link header's next page) stays as it is.
   */
  wire(path: string): string {
    let out = path;
    if (this.apiRoot !== '/v2' && path.startsWith('/v2/') && !path.startsWith(`${this.apiRoot}/`))
      out = this.apiRoot + path.slice('/v2'.length);
    if (this.namespace && this.namespace !== this.host && !/[?&]ns=/.test(out))
      out += `${out.includes('?') ? '&' : '?'}ns=${encodeURIComponent(this.namespace)}`;
    return out;
  }

  /** Records an Authorization value's secret (a token, a Basic pair) and its base64 as sent; returns the value. */
  authorization(value: string): string {
    const secret = value.slice(value.indexOf(' ') + 1);
    if (!this.#sent.includes(secret)) this.#sent.push(secret, Buffer.from(secret).toString('base64'));
    return value;
  }

  /** Text from the registry without any secret this question sent (a registry may echo its Authorization). */
  redact(text: string): string {
    // The credential's forms are worked out only here: most questions never quote a registry.
    return redact(text, [...secretsOf(this.credential), ...this.#sent]);
  }
}

/** The token scope to pull from a repository. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

/** The token scope of the repository list (distribution's token auth; htpasswd registries ignore it). */
export const CATALOG_SCOPE = 'registry:catalog:*';

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
