// The keyring the kubelet will build for a pod: its pull secrets (for a workload template with none,
// its ServiceAccount's, as the admission plugin will copy them into each pod), then the node's.

import { then, type Maybe } from '../cache.ts';
import type { ClusterReader, PullSecretRead, ReadOptions, ServiceAccountRead } from '../cluster/reader.ts';
import type {
  CredentialContext,
  DynamicCredentials,
  PodIdentity,
  ServiceAccountSource,
  ServiceAccountToken,
} from '../credentials/context.ts';
import { Keyring } from '../credentials/keyring.ts';
import { quote } from '../text.ts';
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

/** Short-lived ServiceAccount tokens (cluster/tokens.ts), when pullguard is to request them. */
export interface TokenSource {
  request(namespace: string, name: string, audience: string): Promise<ServiceAccountToken | { error: string }>;
}

/** The pod's ServiceAccount name as the kubelet will have it: the ServiceAccount admission plugin defaults it to "default". */
function serviceAccountOf(site: PodSpecSite): string {
  const s = site.spec;
  if (typeof s.serviceAccountName === 'string' && s.serviceAccountName) return s.serviceAccountName;
  if (typeof s.serviceAccount === 'string' && s.serviceAccount) return s.serviceAccount;
  return 'default';
}

/** pull secrets read for one pod at most (5,000 names made 3,135 API requests from one review) */
export const MAX_PULL_SECRETS = 16;

export class PodCredentials {
  readonly #reader: ClusterReader | null;
  readonly #node: Keyring | null;
  readonly #standIn: StandInSecrets | undefined;
  /** asked per image after the keyrings: the nodes' credential provider plugins */
  readonly #dynamic: DynamicCredentials[];
  /** the ServiceAccounts for credential providers with tokenAttributes; undefined without a cluster */
  readonly #serviceAccounts: ServiceAccountSource | undefined;

  constructor(
    reader: ClusterReader | null,
    nodeKeyring: Keyring | null,
    dynamic: DynamicCredentials[] = [],
    standIn?: StandInSecrets,
    tokens?: TokenSource,
  ) {
    this.#reader = reader;
    this.#node = nodeKeyring;
    this.#dynamic = dynamic;
    this.#standIn = reader ? undefined : standIn;
    this.#serviceAccounts = reader
      ? {
          read: async (namespace, name) => await reader.serviceAccountPullSecrets(namespace, name),
          ...(tokens ? { token: (namespace, name, audience) => tokens.request(namespace, name, audience) } : {}),
        }
      : undefined;
  }

  /** The dynamic sources for this pod: a credential provider with tokenAttributes runs for its ServiceAccount. */
  #dynamicFor(site: PodSpecSite, namespace: string): DynamicCredentials[] {
    if (!this.#dynamic.some((d) => d.forPod)) return this.#dynamic;
    const pod: PodIdentity = {
      namespace,
      serviceAccountName: serviceAccountOf(site),
      ...(this.#serviceAccounts ? { serviceAccounts: this.#serviceAccounts } : {}),
    };
    return this.#dynamic.map((d) => d.forPod?.(pod) ?? d);
  }

  /**
   * The pod's credential context: at once when the cluster reads it needs are cached (or none are
   * needed). `cutoff` bounds the reads: once its signal aborts, what is unread is reported as not
   * read. Its signal is asked for only when something is read (a cached review makes no timer).
   */
  forSite(site: PodSpecSite, namespace: string, cutoff: ReadOptions = {}): Maybe<CredentialContext> {
    if (this.#standIn) return this.#standInContext(this.#standIn, site);
    const plan = this.#plan(site, namespace);
    const reader = this.#reader;
    const secrets = (): Maybe<CredentialContext> => {
      secretsToRead(plan);
      if (!reader || !plan.names.length) return this.#context(plan, [], site);
      return then(reader.readPullSecrets(namespace, plan.names, cutoff), (reads) => this.#context(plan, reads, site));
    };
    if (!reader || !plan.serviceAccount) return secrets();
    return then(reader.serviceAccountPullSecrets(namespace, plan.serviceAccount, cutoff), (read) => {
      fromServiceAccount(plan, read);
      return secrets();
    });
  }

  #standInContext(standIn: StandInSecrets, site: PodSpecSite): CredentialContext {
    const named = pullSecretNames(site.spec);
    return {
      keyrings: [],
      dynamic: [standIn.stores, ...this.#dynamicFor(site, site.namespace ?? 'default')],
      scope: standIn.scope,
      standIn: true,
      unreadSecrets: named.length > 0 && standIn.secretsUnread ? named : [],
    };
  }

  /** The pod's own pull secrets; for a workload template with none, the ServiceAccount to read them from. */
  #plan(site: PodSpecSite, namespace: string): Plan {
    const plan: Plan = {
      namespace,
      scope: `namespace "${namespace}"`,
      names: pullSecretNames(site.spec),
      problems: [],
    };
    if (site.template && !plan.names.length) {
      const sa = serviceAccountOf(site);
      plan.scope = `namespace "${namespace}", ServiceAccount "${sa}"`;
      if (!isDnsSubdomain(sa)) plan.problems.push(`ServiceAccount ${quote(sa, 63)} is not a valid ServiceAccount name`);
      else plan.serviceAccount = sa;
    }
    return plan;
  }

  /** The keyrings from the secrets read (none without a cluster: then the names are unread). */
  #context(plan: Plan, reads: PullSecretRead[], site: PodSpecSite): CredentialContext {
    const { namespace, problems } = plan;
    const unreadSecrets: string[] = [];
    const brokenSecrets: string[] = [];
    // Only secrets read from the cluster fill the pod's keyring; without any it is the shared empty one.
    const pod = this.#reader && plan.names.length ? new Keyring() : NO_SECRETS;
    if (!this.#reader) unreadSecrets.push(...plan.names);
    for (const secret of reads) {
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
    const context: CredentialContext = {
      keyrings: this.#node ? [pod, this.#node] : [pod],
      scope: plan.scope,
      problems,
      unreadSecrets,
      brokenSecrets,
    };
    if (this.#dynamic.length) context.dynamic = this.#dynamicFor(site, namespace);
    return context;
  }
}

/** What forSite works out before and between its reads. */
interface Plan {
  namespace: string;
  scope: string;
  /** the pull secrets to read */
  names: string[];
  /** the ServiceAccount whose pull secrets the pod will get, when it names none itself */
  serviceAccount?: string;
  problems: string[];
}

function fromServiceAccount(plan: Plan, read: ServiceAccountRead): void {
  const { namespace, serviceAccount: sa } = plan;
  if (read.status === 'ok') plan.names = read.names;
  else if (read.status === 'missing')
    plan.problems.push(`ServiceAccount "${sa}" does not exist in namespace "${namespace}"`);
  else plan.problems.push(`ServiceAccount "${sa}" could not be read (${read.detail ?? read.status})`);
}

/** Only names the API server would accept, each once, and not without bound. */
function secretsToRead(plan: Plan): void {
  if (!plan.names.length) return;
  const valid: string[] = [];
  let invalid = 0;
  for (const name of new Set(plan.names))
    if (isDnsSubdomain(name)) valid.push(name);
    else if (invalid++ < 3) plan.problems.push(`imagePullSecret ${quote(name, 63)} is not a valid Secret name`);
  if (invalid > 3) plan.problems.push(`${invalid - 3} more imagePullSecrets are not valid Secret names`);
  if (valid.length > MAX_PULL_SECRETS)
    plan.problems.push(
      `${valid.length - MAX_PULL_SECRETS} more imagePullSecrets were not read (pullguard reads ${MAX_PULL_SECRETS})`,
    );
  plan.names = valid.slice(0, MAX_PULL_SECRETS);
}
