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
}

export class RequestContext {
  readonly host: string;
  readonly scope: string;
  readonly credential: RegistryCredential | null;
  readonly signal: AbortSignal | undefined;
  /** one-line facts for people, in the order they happened: statuses, hosts, error codes; never a credential */
  readonly evidence: string[] = [];
  /** the tokens and Basic pairs this question's requests sent; the credential's own secrets are added in redact() */
  readonly #sent: string[] = [];

  constructor(init: RequestContextInit) {
    this.host = init.host;
    this.scope = init.scope;
    this.credential = init.credential;
    this.signal = init.signal;
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
