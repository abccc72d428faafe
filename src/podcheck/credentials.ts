// The keyring the kubelet will build for a pod: its pull secrets (for a workload template with none,
// its ServiceAccount's, as the admission plugin will copy them into each pod), then the node's.

import type { ClusterReader } from '../cluster/reader.ts';
import type { CredentialContext, DynamicCredentials } from '../credentials/context.ts';
import { Keyring } from '../credentials/keyring.ts';
import { quote } from '../findings.ts';
import type { PodSpecSite } from '../workload/images.ts';
import { pullSecretNames } from '../workload/images.ts';
import { isDnsSubdomain } from '../workload/names.ts';

/**
 * Without a cluster, `pullguard check` lets the person's credential stores (or the docker config
 * files given) stand for every pod's pull secrets; a pod that names secrets is only unreadable when
 * no file was given.
 */
export interface StandInSecrets {
  /** asked per image, before the nodes' credential provider plugins */
  stores: DynamicCredentials;
  /** where the credentials came from, for messages */
  scope: string;
  /** whether the pull secrets a pod names count as unread (no file was given) */
  secretsUnread: boolean;
}

const NO_SECRETS = new Keyring();

/** pull secrets read for one pod at most (5,000 names made 3,135 API requests from one review) */
export const MAX_PULL_SECRETS = 16;

export class PodCredentials {
  private readonly reader: ClusterReader | null;
  private readonly node: Keyring | null;
  private readonly standIn: StandInSecrets | undefined;

  /** asked per image after the keyrings: the nodes' credential provider plugins */
  private readonly dynamic: DynamicCredentials[];

  constructor(
    reader: ClusterReader | null,
    nodeKeyring: Keyring | null,
    dynamic: DynamicCredentials[] = [],
    standIn?: StandInSecrets,
  ) {
    this.reader = reader;
    this.node = nodeKeyring;
    this.dynamic = dynamic;
    this.standIn = reader ? undefined : standIn;
  }

  /**
   * `cutoff` bounds the cluster reads: once its signal aborts, what is unread is reported as not
   * read. It is only called when something is read (cached reviews make no timer).
   */
  async forSite(site: PodSpecSite, namespace: string, cutoff?: () => AbortSignal): Promise<CredentialContext> {
    if (this.standIn) {
      const named = pullSecretNames(site.spec);
      return {
        keyrings: [],
        dynamic: [this.standIn.stores, ...this.dynamic],
        scope: this.standIn.scope,
        unreadSecrets: named.length > 0 && this.standIn.secretsUnread ? named : [],
      };
    }
    let signal: AbortSignal | undefined;
    const bound = () => (cutoff ? { signal: (signal ??= cutoff()) } : {});
    const problems: string[] = [];
    const unreadSecrets: string[] = [];
    const brokenSecrets: string[] = [];
    let names = pullSecretNames(site.spec);
    let scope = `namespace "${namespace}"`;
    if (site.template && !names.length) {
      const sa =
        typeof site.spec.serviceAccountName === 'string' && site.spec.serviceAccountName
          ? site.spec.serviceAccountName
          : typeof site.spec.serviceAccount === 'string' && site.spec.serviceAccount
            ? site.spec.serviceAccount
            : 'default';
      scope = `namespace "${namespace}", ServiceAccount "${sa}"`;
      if (!isDnsSubdomain(sa)) problems.push(`ServiceAccount ${quote(sa, 63)} is not a valid ServiceAccount name`);
      else if (this.reader) {
        const read = await this.reader.serviceAccountPullSecrets(namespace, sa, bound());
        if (read.status === 'ok') names = read.names;
        else if (read.status === 'missing')
          problems.push(`ServiceAccount "${sa}" does not exist in namespace "${namespace}"`);
        else problems.push(`ServiceAccount "${sa}" could not be read (${read.detail ?? read.status})`);
      }
    }
    // Only names the API server would accept, each once, and not without bound.
    if (names.length) {
      const valid: string[] = [];
      let invalid = 0;
      for (const name of new Set(names))
        if (isDnsSubdomain(name)) valid.push(name);
        else if (invalid++ < 3) problems.push(`imagePullSecret ${quote(name, 63)} is not a valid Secret name`);
      if (invalid > 3) problems.push(`${invalid - 3} more imagePullSecrets are not valid Secret names`);
      if (valid.length > MAX_PULL_SECRETS)
        problems.push(
          `${valid.length - MAX_PULL_SECRETS} more imagePullSecrets were not read (pullguard reads ${MAX_PULL_SECRETS})`,
        );
      names = valid.slice(0, MAX_PULL_SECRETS);
    }
    // Only secrets read from the cluster fill the pod's keyring; without any it is the shared empty one.
    const pod = this.reader && names.length ? new Keyring() : NO_SECRETS;
    if (!this.reader) {
      unreadSecrets.push(...names);
    } else if (names.length) {
      for (const secret of await this.reader.readPullSecrets(namespace, names, bound())) {
        const label = `imagePullSecret "${secret.name}"`;
        switch (secret.status) {
          case 'ok':
            pod.addConfig(secret.entries ?? new Map(), `secret ${namespace}/${secret.name}`);
            break;
          case 'missing':
            problems.push(`${label} does not exist in namespace "${namespace}"`);
            break;
          case 'wrong-type':
            problems.push(
              `${label} has type ${secret.type ?? 'unknown'}, which the kubelet ignores (use kubernetes.io/dockerconfigjson)`,
            );
            break;
          case 'unparseable':
            brokenSecrets.push(secret.name);
            problems.push(`${label} does not parse as a docker config`);
            break;
          default:
            unreadSecrets.push(secret.name);
            problems.push(`${label} could not be read (${secret.detail ?? secret.status})`);
        }
      }
    }
    const context: CredentialContext = {
      keyrings: this.node ? [pod, this.node] : [pod],
      scope,
      problems,
      unreadSecrets,
      brokenSecrets,
    };
    if (this.dynamic.length) context.dynamic = this.dynamic;
    return context;
  }
}
