// Builds the pod check from the configuration, once, the same way for the webhook and the CLI:
// registry CAs, keyrings, cluster access (with the reader's lifetimes set here and nowhere else),
// the node watch, and the engine.

import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { loadKubeConfig, type LoadedKubeConfig } from '../cluster/kubeconfig.ts';
import { NodeWatcher } from '../cluster/nodes.ts';
import { ClusterReader, type ClusterReaderOptions } from '../cluster/reader.ts';
import type { Config } from '../config.ts';
import { keyringFromFiles } from '../credentials/files.ts';
import { Keyring } from '../credentials/keyring.ts';
import { PodCredentials } from '../podcheck/credentials.ts';
import { SetupError, UsageError } from '../errors.ts';
import { parsePlatform, type Platform } from '../platform/index.ts';
import { Preflight } from '../preflight/engine.ts';
import { RegistryClient, type ClientOptions } from '../registry/client.ts';
import { PodCheck } from '../podcheck/podcheck.ts';

export interface PodCheckSetup {
  env: NodeJS.ProcessEnv;
  /**
   * Docker config files: the nodes' own credentials, used after the pod's. Without a cluster,
   * `pullguard check` lets them stand for the pods' pull secrets (`standIn`).
   */
  dockerConfigs: readonly string[];
  /** `pullguard check`: wait for the node list within the deadline, files stand in without a cluster */
  cli?: boolean;
  logger?: Logger;
  /** registry request observers (metrics) */
  hooks?: Pick<ClientOptions, 'onResponse' | 'onFailure'>;
}

export interface BuiltPodCheck {
  podCheck: PodCheck;
  /** where cluster access came from; null: none */
  cluster: LoadedKubeConfig | null;
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

/** The registry client the configuration describes: insecure hosts, CAs, mirrors, the per-host cap. */
export function registryClientFor(
  config: Config,
  caPems: readonly string[] = [],
  hooks: Pick<ClientOptions, 'onResponse' | 'onFailure' | 'lookup'> = {},
): RegistryClient {
  return new RegistryClient({
    ...hooks,
    insecure: config.registry.insecure,
    caPems,
    concurrency: config.registry.concurrency,
    allowLinkLocal: config.registry.allowLinkLocal,
    endpoints: config.registry.endpoints,
    requestTimeoutMs: config.deadline,
  });
}

export function parsePlatforms(list: readonly string[]): Platform[] {
  return list.map((p) => {
    try {
      return parsePlatform(p);
    } catch (err) {
      throw new UsageError(`platform "${p}": ${(err as Error).message}`);
    }
  });
}

export function readCaFiles(files: readonly string[]): string[] {
  return files.map((f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (err) {
      throw new SetupError(`registry CA ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  });
}

/** Reads every file first (a mistake is an error before anything starts), then starts the node watch. */
export function buildPodCheck(config: Config, setup: PodCheckSetup): BuiltPodCheck {
  const { logger } = setup;
  const caPems = readCaFiles(config.registry.caFiles);
  const platforms = parsePlatforms(config.platforms);
  const files = setup.dockerConfigs.length ? keyringFromFiles(setup.dockerConfigs) : null;
  const cluster = loadKubeConfig({
    ...(config.cluster.kubeconfig ? { kubeconfig: config.cluster.kubeconfig } : {}),
    env: setup.env,
  });

  let credentials: PodCredentials;
  let nodes: NodeWatcher | null = null;
  if (cluster) {
    credentials = new PodCredentials(new ClusterReader(cluster.kc, readerOptions(config, logger)), files);
    if (config.cluster.watchNodes && !platforms.length) {
      // A one-shot command needs the list once; the webhook keeps it current.
      nodes = new NodeWatcher(cluster.kc, { ...(logger ? { logger } : {}), watch: !setup.cli });
      nodes.start();
    }
  } else if (setup.cli) {
    credentials = new PodCredentials(null, null, {
      keyring: files ?? new Keyring(),
      scope: files ? 'the docker config files given' : 'the command line (no --docker-config given)',
      secretsUnread: !files,
    });
  } else {
    credentials = new PodCredentials(null, files);
  }

  const engine = new Preflight(config, registryClientFor(config, caPems, setup.hooks));
  const podCheck = new PodCheck({
    engine,
    credentials,
    platforms,
    nodes,
    waitForNodes: Boolean(setup.cli),
    close: async () => {
      await nodes?.stop();
      await engine.close();
    },
  });
  return { podCheck, cluster };
}
