// Reads the objects that make up a pod's keyring: pull secrets and service accounts, with `get`
// only (REQUIRED_ACCESS), cached briefly, one request per object however many reviews ask at once,
// and never longer than a per-request timeout. Results never carry secret values in `detail`.
import type { CoreV1Api, KubeConfig, V1Secret } from '@kubernetes/client-node';
import { apiErrorText, statusMessage } from './api-errors.ts';
import { clientNode } from './k8s.ts';
import type { Logger } from 'pino';
import { all, type Maybe, SharedCache } from '../cache.ts';
import { isDnsLabel, isDnsSubdomain } from '../workload/names.ts';
import { withSignal } from './signal.ts';
import {
  DockerConfigError,
  parseDockercfg,
  parseDockerConfigJSON,
  type DockerConfigEntry,
} from '../credentials/dockerconfig.ts';

export const SECRET_TYPE_DOCKERCONFIGJSON = 'kubernetes.io/dockerconfigjson';
export const SECRET_TYPE_DOCKERCFG = 'kubernetes.io/dockercfg';

export type PullSecretStatus = 'ok' | 'missing' | 'wrong-type' | 'unparseable' | 'forbidden' | 'error';

export interface PullSecretRead {
  name: string;
  status: PullSecretStatus;
  /** the secret's type, when it was read */
  type?: string;
  /** registry key -> credential; only with status 'ok'. Shared with the cache: do not mutate. */
  entries?: Map<string, DockerConfigEntry>;
  /** why it is not usable; never contains secret values */
  detail?: string;
}

export interface ServiceAccountRead {
  status: 'ok' | 'missing' | 'forbidden' | 'error';
  /** the non-empty names in imagePullSecrets, in order */
  names: string[];
  /** its uid and annotations, for credential providers with tokenAttributes (KEP-4412) */
  uid?: string;
  annotations?: Readonly<Record<string, string>>;
  detail?: string;
}

export interface ClusterReaderOptions {
  /** how long an answer (found, or a missing/forbidden/wrong-type one) is reused */
  cacheTtlMs: number;
  /** TTL for negative answers (missing, forbidden, wrong type, unparseable); default cacheTtlMs */
  negativeTtlMs?: number;
  /** per API request; a slow API server yields status 'error' instead of a hung review */
  requestTimeoutMs?: number;
  /** bound on cached objects */
  maxEntries?: number;
  logger?: Logger;
}

export interface ReadOptions {
  /**
   * the caller's deadline; aborting it gives that caller an 'error' answer at once. Read only when
   * the cluster must be asked (a Deadline makes its signal then).
   */
  readonly signal?: AbortSignal | undefined;
}

const DEFAULT_TIMEOUT_MS = 5_000;

type Cached = PullSecretRead | ServiceAccountRead;

const secretKey = (namespace: string, name: string) => `secret\0${namespace}\0${name}`;
const serviceAccountKey = (namespace: string, name: string) => `sa\0${namespace}\0${name}`;

/** the distinct non-empty names, in order */
function distinctNames(names: string[]): string[] {
  return [...new Set(names.filter((n) => n !== ''))];
}

/** The answer for a secret that is never asked for: a name that is none (".", "..", "a/b") would make the request path another API path. */
function refusedSecret(namespace: string, name: string): PullSecretRead | undefined {
  if (!isDnsLabel(namespace)) return { name, status: 'error', detail: 'not a valid namespace name' };
  if (!isDnsSubdomain(name)) return { name, status: 'error', detail: 'not a valid Secret name' };
  return undefined;
}

function refusedServiceAccount(namespace: string, name: string): ServiceAccountRead | undefined {
  if (!isDnsLabel(namespace) || !isDnsSubdomain(name))
    return { status: 'error', names: [], detail: 'not a valid namespace or ServiceAccount name' };
  return undefined;
}

export class ClusterReader {
  readonly #api: CoreV1Api;
  readonly #ttl: number;
  readonly #negativeTtl: number;
  readonly #timeoutMs: number;
  readonly #log: Logger | undefined;
  readonly #cache: SharedCache<Cached>;

  constructor(kc: KubeConfig, opts: ClusterReaderOptions) {
    this.#api = kc.makeApiClient(clientNode().CoreV1Api);
    this.#ttl = opts.cacheTtlMs;
    this.#negativeTtl = opts.negativeTtlMs ?? opts.cacheTtlMs;
    this.#timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#log = opts.logger;
    this.#cache = new SharedCache<Cached>(opts.maxEntries ?? 10_000);
  }

  /**
   * One answer per distinct non-empty name, in the order given (empty names are skipped, as by the
   * kubelet): at once when every one is cached (or refused without a request).
   */
  readPullSecrets(namespace: string, names: string[], opts: ReadOptions = {}): Maybe<PullSecretRead[]> {
    return all(
      distinctNames(names).map(
        (name) =>
          refusedSecret(namespace, name) ??
          this.#shared<PullSecretRead>(
            secretKey(namespace, name),
            (signal) => this.#loadSecret(namespace, name, signal),
            opts,
            (detail) => ({ name, status: 'error', detail }),
          ),
      ),
    );
  }

  serviceAccountPullSecrets(namespace: string, name: string, opts: ReadOptions = {}): Maybe<ServiceAccountRead> {
    return (
      refusedServiceAccount(namespace, name) ??
      this.#shared<ServiceAccountRead>(
        serviceAccountKey(namespace, name),
        (signal) => this.#loadServiceAccount(namespace, name, signal),
        opts,
        (detail) => ({ status: 'error', names: [], detail }),
      )
    );
  }

  /** Drop every cached answer (tests, or after an RBAC change). */
  clear(): void {
    this.#cache.clear();
  }

  // Cache, then in-flight sharing. The shared request runs on its own timeout and ends early only
  // when every caller waiting for it has given up; one caller's deadline does not fail the others.
  // The caller's signal is asked for only on a miss (a Deadline makes its timer then).
  #shared<T extends Cached>(
    key: string,
    load: (signal: AbortSignal) => Promise<T>,
    caller: ReadOptions,
    aborted: (detail: string) => T,
  ): Maybe<T> {
    const got = this.#cache.get(
      key,
      (shared) =>
        load(AbortSignal.any([shared, AbortSignal.timeout(this.#timeoutMs)])).catch((err: unknown) => {
          this.#log?.warn({ err: (err as Error)?.name }, 'cluster read failed unexpectedly');
          return aborted('internal error reading from the API server');
        }),
      (value) => this.#ttlFor(value),
      caller,
    ) as Maybe<T>;
    // Only the caller's signal rejects (the load itself never does).
    return got instanceof Promise
      ? got.catch(() => aborted('the review deadline passed before the API server answered'))
      : got;
  }

  // Transient failures ('error') are not cached: the next review asks again.
  #ttlFor(value: Cached): number {
    if (value.status === 'error') return 0;
    if (value.status === 'ok') return this.#ttl;
    return this.#negativeTtl;
  }

  async #loadSecret(namespace: string, name: string, signal: AbortSignal): Promise<PullSecretRead> {
    let secret: V1Secret;
    try {
      secret = await this.#api.readNamespacedSecret({ name, namespace }, withSignal(signal));
    } catch (err) {
      const { status, detail } = describeFailure(err, `secret "${name}" in namespace "${namespace}"`, this.#timeoutMs);
      this.#log?.debug({ namespace, secret: name, status }, 'pull secret not read');
      return { name, status, detail };
    }
    const read = decodePullSecret(name, secret);
    this.#log?.debug({ namespace, secret: name, status: read.status, type: read.type }, 'pull secret read');
    return read;
  }

  async #loadServiceAccount(namespace: string, name: string, signal: AbortSignal): Promise<ServiceAccountRead> {
    try {
      const sa = await this.#api.readNamespacedServiceAccount({ name, namespace }, withSignal(signal));
      const names = (sa.imagePullSecrets ?? []).map((ref) => ref.name ?? '').filter((n) => n !== '');
      const uid = sa.metadata?.uid;
      // Not the client's copy of the whole object (kubectl apply's), which can be large and is never asked for.
      const { 'kubectl.kubernetes.io/last-applied-configuration': _applied, ...annotations } =
        sa.metadata?.annotations ?? {};
      return {
        status: 'ok',
        names,
        ...(uid ? { uid } : {}),
        ...(Object.keys(annotations).length ? { annotations } : {}),
      };
    } catch (err) {
      const { status, detail } = describeFailure(
        err,
        `service account "${name}" in namespace "${namespace}"`,
        this.#timeoutMs,
      );
      this.#log?.debug({ namespace, serviceAccount: name, status }, 'service account not read');
      return { status: status === 'missing' || status === 'forbidden' ? status : 'error', names: [], detail };
    }
  }
}

/** Decode a Secret as the kubelet would for imagePullSecrets. Exported for the engine's tests. */
export function decodePullSecret(name: string, secret: V1Secret): PullSecretRead {
  const type = secret.type ?? 'Opaque'; // the API server defaults an empty type to Opaque
  let key: string;
  let parse: (text: string) => Map<string, DockerConfigEntry>;
  if (type === SECRET_TYPE_DOCKERCONFIGJSON) {
    key = '.dockerconfigjson';
    parse = parseDockerConfigJSON;
  } else if (type === SECRET_TYPE_DOCKERCFG) {
    key = '.dockercfg';
    parse = parseDockercfg;
  } else {
    return {
      name,
      status: 'wrong-type',
      type,
      detail: `secret "${name}" has type ${type}; the kubelet only uses ${SECRET_TYPE_DOCKERCONFIGJSON} and ${SECRET_TYPE_DOCKERCFG} secrets`,
    };
  }
  const encoded = secret.data?.[key];
  if (encoded === undefined) {
    return { name, status: 'unparseable', type, detail: `secret "${name}" (${type}) has no ${key} key` };
  }
  try {
    const entries = parse(Buffer.from(encoded, 'base64').toString('utf8'));
    return { name, status: 'ok', type, entries };
  } catch (err) {
    // DockerConfigError messages name only keys and fields; anything else might quote the text.
    const why = err instanceof DockerConfigError ? `: ${err.message}` : '';
    return {
      name,
      status: 'unparseable',
      type,
      detail: `secret "${name}" (${type}): ${key} is not a valid docker config${why}`,
    };
  }
}

interface Failure {
  status: 'missing' | 'forbidden' | 'error';
  detail: string;
}

/**
 * An API failure in words, without anything from a response body other than a Status message
 * (error texts from body parsing may quote the body, which for a secret holds its values).
 */
export function describeFailure(err: unknown, what: string, timeoutMs: number): Failure {
  if (err instanceof clientNode().ApiException) {
    const code = err.code;
    const said = statusMessage(err.body);
    if (code === 404) return { status: 'missing', detail: `${what} not found` };
    if (code === 403) {
      return {
        status: 'forbidden',
        detail: `pullguard may not get ${what}${said ? `: ${said}` : ''} (grant get on it, see manifests/)`,
      };
    }
  }
  // Anything else in the words of every other API failure (api-errors.ts).
  return { status: 'error', detail: apiErrorText(err, { verb: 'get', what, timeoutMs }) };
}
