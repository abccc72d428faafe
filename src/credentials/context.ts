// The keyring a pod's pulls will use, and where it came from, so that messages can say which secret
// was missing or refused. Built by the pod check (podcheck/credentials.ts), read by the engine.

import type { Credential, Keyring } from './keyring.ts';

/** Where a check's credentials came from, so messages can say which secret was missing or refused. */
export interface CredentialContext {
  /** the kubelet's order: the pod's pull secrets first, then the node's */
  keyrings: Keyring[];
  /** e.g. `namespace "shop"` or `namespace "shop", ServiceAccount "default"` */
  scope?: string;
  /**
   * the credentials stand in for the pod's pull secrets (`pullguard check` without a cluster: the
   * docker config files given, or the person's credential stores): a fix names those, not the pod
   */
  standIn?: boolean;
  /** one line each, e.g. `imagePullSecret "regcred" does not exist in namespace "shop"` */
  problems?: string[];
  /** pull secrets the pod names that pullguard could not read (no cluster access): a denial may be ours alone */
  unreadSecrets?: string[];
  /** pull secrets that do not parse: the kubelet then fails every pull of the pod */
  brokenSecrets?: string[];
  /**
   * credentials only found when an image asks (docker credential helpers, kubelet credential
   * provider plugins): asked after the keyrings, in order
   */
  dynamic?: DynamicCredentials[];
}

/** A source asked per image: what it has for the image, what failed, and whether it alone can open it. */
export interface DynamicCredentials {
  lookup(
    name: string,
    domain: string,
  ): Promise<{
    credentials: Credential[];
    failures: string[];
    managed?: boolean;
    /** what the kubelet would do that explains a denial (a provider that gives it nothing, and why) */
    notes?: string[];
  }>;
  /** the same source for one pod's ServiceAccount (credential providers with tokenAttributes, KEP-4412) */
  forPod?(pod: PodIdentity): DynamicCredentials;
}

/** What a credential provider with tokenAttributes needs of the pod: its namespace and ServiceAccount. */
export interface PodIdentity {
  namespace: string;
  /** the pod's spec.serviceAccountName (the ServiceAccount admission plugin sets "default") */
  serviceAccountName: string;
  /** the cluster's ServiceAccounts; undefined without a cluster */
  serviceAccounts?: ServiceAccountSource;
}

export interface ServiceAccountData {
  status: 'ok' | 'missing' | 'forbidden' | 'error';
  uid?: string;
  annotations?: Readonly<Record<string, string>>;
  detail?: string;
}

/** A short-lived token of a ServiceAccount (TokenRequest); it never reaches a log or a message. */
export interface ServiceAccountToken {
  token: string;
  /** ms since the epoch */
  expiresAt: number;
}

/** Declared here, implemented above (podcheck/ with cluster/): the ServiceAccount and its tokens. */
export interface ServiceAccountSource {
  read(namespace: string, name: string): Promise<ServiceAccountData>;
  /** undefined: pullguard is not to request tokens (credentials.serviceAccountTokens is off) */
  token?(namespace: string, name: string, audience: string): Promise<ServiceAccountToken | { error: string }>;
}
