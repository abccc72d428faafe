// Builds the pod check from the configuration, once, the same way for the webhook and the CLI:
// registry CAs, proxies, keyrings and credential plugins, cluster access (with the reader's
// lifetimes set here and nowhere else), the node watch, and the engine. The cluster client is
// loaded only when a cluster is configured: without one it is most of a cold start.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { closeConnections } from '../cluster/connections.ts';
import type { LoadedKubeConfig } from '../cluster/kubeconfig.ts';
import type { NodeWatcher } from '../cluster/nodes.ts';
import type { ClusterReaderOptions } from '../cluster/reader.ts';
import { clusterConfigured } from '../cluster/source.ts';
import type { Config } from '../config/schema.ts';
import { keyringFromFiles } from '../credentials/files.ts';
import { loadCredentialProviders } from '../credentials/providers.ts';
import { defaultStorePaths, readStoreFiles, UserCredentials } from '../credentials/stores.ts';
import { SetupError } from '../errors.ts';
import { PodCredentials, type StandInSecrets } from '../podcheck/credentials.ts';
import { PodCheck } from '../podcheck/podcheck.ts';
import type { Platform } from '../platform/index.ts';
import { Preflight } from '../preflight/engine.ts';
import type { Face } from '../preflight/messages.ts';
import { RegistryClient, type ClientOptions } from '../registry/client.ts';
import { ProxyRules, proxySettings } from '../registry/proxy.ts';
import { HostsDirRoutes, type Routes } from '../registry/routes.ts';
import { systemErrorText } from '../system-errors.ts';
import { parsePlatforms } from './platforms.ts';

export interface PodCheckSetup {
  env: NodeJS.ProcessEnv;
  /**
   * Docker config files: the nodes' own credentials, used after the pod's. Without a cluster,
   * `pullguard check` lets them (or, when none are given, the person's credential stores) stand
   * for the pods' pull secrets.
   */
  dockerConfigs: readonly string[];
  /** `pullguard check`: wait for the node list within the deadline, credential stores stand in without a cluster */
  cli?: boolean;
  /** whose settings fixes name: the flags (the CLI's commands) or the configuration's keys; default by `cli` */
  face?: Face;
  /** the kubeconfig context to use (`pullguard check --context`) */
  context?: string;
  /** config.platforms, when the caller has parsed them already (`pullguard check`, with its flags) */
  platforms?: readonly Platform[];
  logger?: Logger;
  /** registry request observers (metrics) */
  hooks?: Pick<ClientOptions, 'onResponse' | 'onFailure'>;
}

export interface BuiltPodCheck {
  /** the keyrings and plugins pods' pulls use and the nodes they land on (the watch re-verifies with the same) */
  podCheck: PodCheck;
  /** a registry client like the engine's (CAs, proxies, insecure hosts) with other observers: the watch's */
  registryClient: (hooks: Pick<ClientOptions, 'onResponse' | 'onFailure'>) => RegistryClient;
  /** where cluster access came from; null: none */
  cluster: LoadedKubeConfig | null;
  /** what the nodes' registry files hold that their runtime ignores (unknown keys), one line each */
  warnings: string[];
  /** without a cluster, for `pullguard check`: the credential store files in use, and those skipped */
  stores?: { files: string[]; skipped: string[] };
}

/** How long the cluster reader keeps answers and waits for one: the same for the webhook and the CLI. */
export function readerOptions(config: Config, logger?: Logger): ClusterReaderOptions {
  return {
    cacheTtlMs: config.cluster.cacheTtl,
    // A secret created after a denial is seen soon.
    negativeTtlMs: Math.min(config.cluster.cacheTtl, 10_000),
    requestTimeoutMs: Math.max(1, Math.floor(config.deadline / 2)),
    ...(logger ? { logger } : {}),
  };
}

/** The registry client the configuration describes: insecure hosts, CAs, mirrors, proxies, the per-host cap. */
export function registryClientFor(
  config: Config,
  caPems: readonly string[] = [],
  options: Pick<ClientOptions, 'onResponse' | 'onFailure' | 'lookup' | 'routes'> & {
    /** HTTPS_PROXY, HTTP_PROXY, NO_PROXY (registry.proxy wins) */
    env?: NodeJS.ProcessEnv;
  } = {},
): RegistryClient {
  const { env = {}, ...hooks } = options;
  return new RegistryClient({
    ...hooks,
    proxy: proxySettings(config.registry.proxy, env),
    insecure: config.registry.insecure,
    caPems: [...caPems],
    concurrency: config.registry.concurrency,
    allowLinkLocal: config.registry.allowLinkLocal,
    endpoints: config.registry.endpoints,
    requestTimeoutMs: config.deadline,
  });
}

/**
 * The nodes' registry files, read whole now so that a mistake stops start-up: containerd's hosts
 * directory or CRI-O's registries.conf. Undefined: containerd's defaults (and registry.endpoints).
 */
export async function loadRoutes(config: Config): Promise<Routes | undefined> {
  const r = config.registry;
  const crio = r.registriesConf !== undefined || r.registriesConfDir !== undefined;
  if ((r.hostsDir !== undefined || crio) && Object.keys(r.endpoints).length)
    throw new SetupError(
      `registry.endpoints cannot be combined with the nodes' own files (registry.hostsDir, registry.registriesConf): write each endpoint there instead, as DIR/<domain>/hosts.toml \`server = "URL"\` or a registries.conf [[registry]] location`,
    );
  if (r.hostsDir !== undefined && crio)
    throw new SetupError(
      "registry.hostsDir (containerd's) and registry.registriesConf (CRI-O's) are both set: give the one your nodes' runtime reads",
    );
  // The TOML parser is loaded only when a file is read.
  if (r.hostsDir !== undefined) {
    const { HostsDir } = await import('../registry/hosts-dir.ts');
    return new HostsDirRoutes(new HostsDir(r.hostsDir));
  }
  if (crio) {
    const { RegistriesConf, RegistriesConfRoutes } = await import('../registry/registries-conf.ts');
    return new RegistriesConfRoutes(RegistriesConf.load(r.registriesConf, r.registriesConfDir));
  }
  return undefined;
}

/** The registry CA files, each holding at least one certificate that parses (else it would trust nothing, silently). */
export function readCaFiles(files: readonly string[]): string[] {
  return files.map((f) => {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      throw new SetupError(
        `registry CA ${f}: ${systemErrorText(err, 'read')} (check --registry-ca or registry.caFiles)`,
      );
    }
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (!blocks.length) throw new SetupError(`registry CA ${f}: no PEM certificate in the file`);
    for (const block of blocks) {
      try {
        new X509Certificate(block);
      } catch {
        throw new SetupError(`registry CA ${f}: a certificate in the file does not parse`);
      }
    }
    return text;
  });
}

/** Reads every file first (a mistake is an error before anything starts), then starts the node watch. */
export async function buildPodCheck(config: Config, setup: PodCheckSetup): Promise<BuiltPodCheck> {
  const { logger, env } = setup;
  const caPems = readCaFiles(config.registry.caFiles);
  const routes = await loadRoutes(config);
  const warnings = [...(routes?.warnings ?? [])];
  for (const w of warnings) logger?.warn(w);
  const platforms = setup.platforms ?? parsePlatforms(config.platforms);
  new ProxyRules(proxySettings(config.registry.proxy, env)).assertSupported();
  // Plugins and credential helpers get half the deadline, so the registry still has time.
  const helperMs = Math.floor(config.deadline / 2);
  const providers = loadCredentialProviders(config.credentials, { timeoutMs: helperMs, env });
  const plugins = providers ? [providers] : [];

  const kubeconfig = config.cluster.kubeconfig ? { kubeconfig: config.cluster.kubeconfig } : {};
  let cluster: LoadedKubeConfig | null = null;
  if (setup.context || clusterConfigured({ ...kubeconfig, env })) {
    const { loadKubeConfig } = await import('../cluster/kubeconfig.ts');
    cluster = loadKubeConfig({ ...kubeconfig, ...(setup.context ? { context: setup.context } : {}), env });
  }

  let credentials: PodCredentials;
  let stores: BuiltPodCheck['stores'];
  let nodes: NodeWatcher | null = null;
  // Read once, by the branch that uses them: without a cluster the CLI reads them as credential stores.
  const nodeFiles = () => (setup.dockerConfigs.length ? keyringFromFiles(setup.dockerConfigs) : null);
  if (cluster) {
    const [{ ClusterReader }, { NodeWatcher }] = await Promise.all([
      import('../cluster/reader.ts'),
      import('../cluster/nodes.ts'),
    ]);
    // With a cluster, only the files given stand for the nodes' credentials: the person's own
    // stores say nothing about what the kubelet has.
    // Tokens of the pods' ServiceAccounts for providers with tokenAttributes: only when told to.
    const tokens = config.credentials.serviceAccountTokens
      ? new (await import('../cluster/tokens.ts')).ServiceAccountTokens(cluster.kc, { timeoutMs: helperMs })
      : undefined;
    credentials = new PodCredentials(
      new ClusterReader(cluster.kc, readerOptions(config, logger)),
      nodeFiles(),
      plugins,
      undefined,
      tokens,
    );
    if (config.cluster.watchNodes && !platforms.length) {
      // A one-shot command needs the list once; the webhook keeps it current.
      nodes = new NodeWatcher(cluster.kc, { ...(logger ? { logger } : {}), watch: !setup.cli });
      nodes.start();
    }
  } else if (config.credentials.serviceAccountTokens) {
    throw new SetupError(
      'credentials.serviceAccountTokens (--request-service-account-tokens) needs a cluster: give --kubeconfig, or run in one',
    );
  } else if (setup.cli) {
    // --docker-config replaces the person's own stores.
    const explicit = setup.dockerConfigs.length > 0;
    const read = readStoreFiles(explicit ? setup.dockerConfigs : defaultStorePaths(env), explicit);
    const user = new UserCredentials(read.stores, { timeoutMs: helperMs, env });
    stores = { files: user.files, skipped: read.skipped };
    const standIn: StandInSecrets = {
      stores: user,
      scope: explicit
        ? 'the docker config files given'
        : user.files.length
          ? `your credential stores (${user.files.join(', ')})`
          : 'the command line (no --docker-config given, no credential store found)',
      secretsUnread: !explicit,
    };
    credentials = new PodCredentials(null, null, plugins, standIn);
  } else {
    credentials = new PodCredentials(null, nodeFiles(), plugins);
  }

  const registryClient = (hooks: PodCheckSetup['hooks']) =>
    registryClientFor(config, caPems, { ...hooks, env, ...(routes ? { routes } : {}) });
  const engine = new Preflight(config, registryClient(setup.hooks), {
    face: setup.face ?? (setup.cli ? 'cli' : 'server'),
  });
  const podCheck = new PodCheck({
    engine,
    credentials,
    platforms,
    nodes,
    waitForNodes: Boolean(setup.cli),
    close: async () => {
      // stop() aborts the node list-watch at once and resolves when its loop has ended; a request
      // still in its TLS handshake ends only when its socket does, so the sockets go first.
      const stopped = nodes?.stop();
      if (cluster) closeConnections(cluster.kc);
      await stopped;
      await engine.close();
    },
  });
  return { podCheck, registryClient, cluster, warnings, ...(stores ? { stores } : {}) };
}
