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
  lookup(name: string, domain: string): Promise<{ credentials: Credential[]; failures: string[]; managed?: boolean }>;
}
