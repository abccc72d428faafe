// `pullguard serve`: the validating admission webhook.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AdmissionHandler } from '../admission/handler.ts';
import { KubeConfigError, loadKubeConfig, SERVICE_ACCOUNT_DIR } from '../cluster/kubeconfig.ts';
import { NodeWatcher } from '../cluster/nodes.ts';
import { ClusterReader } from '../cluster/reader.ts';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { CredentialFileError, keyringFromFiles } from '../credentials/files.ts';
import { type CredentialProviders, loadCredentialProviders } from '../credentials/providers.ts';
import { PodCredentials } from '../credentials/sources.ts';
import type { Platform } from '../platform/index.ts';
import { Preflight } from '../preflight/engine.ts';
import { ProxyRules, proxySettings } from '../registry/proxy.ts';
import { buildApp } from '../server/app.ts';
import { createLogger } from '../server/logger.ts';
import { Metrics } from '../server/metrics.ts';
import { listenMetrics, type MetricsServer } from '../server/metrics-server.ts';
import { certificateExpiry, readTlsPair, selfSigned, watchTls, type TlsPair } from '../server/tls.ts';
import type { Watch } from '../watch/watch.ts';
import { parsePlatforms, readCaFiles, REGISTRY_FLAGS, registryOverrides, UsageError, type CliIO } from './check.ts';

export const SERVE_USAGE = `Usage: pullguard serve [options]

Runs the validating admission webhook (HTTPS): POST /validate, GET /healthz, /readyz, /metrics.

Options:
      --config FILE             configuration file (YAML or JSON); flags and PULLGUARD_* variables override it
      --host ADDR               listen address (default 0.0.0.0)
      --port N                  listen port (default 8443)
      --metrics-port N          plain-HTTP port for GET /metrics (default 9090; 0: on the webhook's port)
      --mode enforce|warn|audit cluster-wide default mode (default enforce)
      --tls-cert FILE           serving certificate (PEM); with --tls-key; reloaded when it changes
      --tls-key FILE            its private key; without both, a self-signed certificate is made
      --kubeconfig FILE         cluster access (default: KUBECONFIG, then in-cluster)
      --docker-config FILE      the nodes' docker config (node credentials; repeatable)
      --platform OS/ARCH[/VAR]  platforms to require instead of the nodes' (repeatable)
      --insecure-registry HOST  registry reached without TLS verification or over plain HTTP (repeatable)
      --registry-ca FILE        extra CA certificate (PEM) for registries (repeatable)
      --image-credential-provider-config FILE
                                the nodes' kubelet CredentialProviderConfig (run its plugins as the kubelet does)
      --image-credential-provider-bin-dir DIR
                                where those plugins are
      --timeout DURATION        deadline per review, under the webhook's timeoutSeconds (default 8s)
  -h, --help                    this help
`;

export interface Running {
  app: FastifyInstance;
  url: string;
  /** the plain-HTTP metrics port's address, when server.metricsPort is not 0 */
  metricsUrl?: string;
  config: Config;
  engine: Preflight;
  logger: Logger;
  close: () => Promise<void>;
  /** the watch, when watch.enabled */
  watch: Watch | null;
}

/** The namespace of the service account pullguard runs as, when in a cluster. */
function ownNamespace(): string | undefined {
  try {
    return readFileSync(join(SERVICE_ACCOUNT_DIR, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv): Config | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...REGISTRY_FLAGS,
        host: { type: 'string' },
        port: { type: 'string' },
        'metrics-port': { type: 'string' },
        mode: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        kubeconfig: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (Boolean(v['tls-cert']) !== Boolean(v['tls-key'])) throw new UsageError('--tls-cert and --tls-key go together');
  const flags: Record<string, unknown> = registryOverrides(v);
  const server: Record<string, unknown> = {};
  if (v.host) server.host = v.host;
  if (v.port) {
    if (!/^\d+$/.test(v.port)) throw new UsageError(`--port must be a number, not "${v.port}"`);
    server.port = Number(v.port);
  }
  if (v['metrics-port'] !== undefined) {
    if (!/^\d+$/.test(v['metrics-port']))
      throw new UsageError(`--metrics-port must be a number, not "${v['metrics-port']}"`);
    server.metricsPort = Number(v['metrics-port']);
  }
  if (v['tls-cert']) server.tlsCert = v['tls-cert'];
  if (v['tls-key']) server.tlsKey = v['tls-key'];
  flags.server = server;
  if (v.mode) flags.mode = v.mode;
  if (v.kubeconfig) flags.cluster = { kubeconfig: v.kubeconfig };
  if (v['docker-config']?.length)
    flags.credentials = { ...(flags.credentials as object | undefined), nodeDockerConfigs: v['docker-config'] };
  return loadConfig({ ...(v.config ? { file: v.config } : {}), env, flags });
}

/** Starts everything; resolves once listening. Used by the CLI and by the tests. */
export async function startServer(
  config: Config,
  env: NodeJS.ProcessEnv,
  logger = createLogger(config.log.level),
): Promise<Running> {
  const caPems = readCaFiles(config.registry.caFiles);
  const configuredPlatforms = parsePlatforms(config.platforms);
  const proxy = proxySettings(config.registry.proxy, env);
  try {
    new ProxyRules(proxy).assertSupported();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let providers: CredentialProviders | undefined;
  try {
    providers = loadCredentialProviders(config.credentials, { timeoutMs: Math.floor(config.deadline / 2), env });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const nodeKeyring = config.credentials.nodeDockerConfigs.length
    ? keyringFromFiles(config.credentials.nodeDockerConfigs)
    : null;

  // The certificate first: a missing or mismatched pair is a configuration mistake (a plain message,
  // exit 2), found before anything is started that would need stopping.
  let tls: TlsPair;
  const { tlsCert, tlsKey } = config.server;
  if (tlsCert && tlsKey) {
    try {
      tls = readTlsPair(tlsCert, tlsKey);
    } catch (err) {
      throw new UsageError(
        `serving certificate ${tlsCert} and key ${tlsKey}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  } else {
    tls = await selfSigned(['localhost', 'pullguard', 'pullguard.pullguard.svc']);
    logger.warn(
      'no certificate configured (server.tlsCert/server.tlsKey): serving with a new self-signed certificate for localhost; the API server will not trust it',
    );
  }

  const kube = loadKubeConfig({ ...(config.cluster.kubeconfig ? { kubeconfig: config.cluster.kubeconfig } : {}), env });
  if (config.watch.enabled && !kube)
    throw new UsageError(
      'watch.enabled needs cluster access (--kubeconfig, KUBECONFIG or an in-cluster service account)',
    );
  let reader: ClusterReader | null = null;
  let nodes: NodeWatcher | null = null;
  if (kube) {
    reader = new ClusterReader(kube.kc, {
      cacheTtlMs: config.cluster.cacheTtl,
      negativeTtlMs: Math.min(config.cluster.cacheTtl, 10_000),
      requestTimeoutMs: Math.floor(config.deadline / 2),
      logger,
    });
    if (config.cluster.watchNodes && !configuredPlatforms.length) {
      nodes = new NodeWatcher(kube.kc, { logger });
      nodes.start();
    }
    logger.info({ source: kube.source }, 'reading pull secrets and service accounts from the cluster');
  } else {
    logger.warn(
      'no cluster access (no --kubeconfig, KUBECONFIG or in-cluster service account): pull secrets cannot be read; a denial that they might change becomes a warning',
    );
  }

  const metrics = new Metrics();
  const engine = new Preflight(config, caPems, {
    proxy,
    onResponse: (host, _method, status, via) => {
      metrics.registryRequests.inc({ registry: host, status: String(status) });
      if (via) metrics.proxiedRequests.inc({ registry: host, proxy: via, status: String(status) });
    },
    onFailure: (host, _method, kind) => metrics.registryRequests.inc({ registry: host, status: kind }),
  });
  metrics.observeEngine(engine);
  metrics.certificateExpiry.set(certificateExpiry(tls) / 1000);

  const credentials = new PodCredentials(reader, nodeKeyring, providers ? [providers] : []);
  let watch: Watch | null = null;
  if (config.watch.enabled && kube) {
    // loaded only when enabled: the watch carries the cluster client, which a webhook without one never loads
    const { Watch } = await import('../watch/watch.ts');
    watch = new Watch({
      kc: kube.kc,
      config,
      credentials,
      caPems,
      registry: metrics.registry,
      logger,
      identity: `${env.POD_NAME || hostname()}_${randomUUID().slice(0, 8)}`,
      leaseNamespace: config.watch.leaseNamespace ?? env.POD_NAMESPACE ?? ownNamespace() ?? 'pullguard',
    });
  }

  const platforms = (): readonly Platform[] =>
    configuredPlatforms.length ? configuredPlatforms : (nodes?.platforms() ?? []);
  const handler = new AdmissionHandler({
    config,
    engine,
    credentials,
    platforms,
    ...(nodes ? { imageOnAnyNode: (names: string[]) => (nodes.ready ? nodes.imageOnAnyNode(names) : undefined) } : {}),
    logger,
    metrics,
  });

  const app = await buildApp({
    handler,
    metrics,
    logger,
    tls,
    bodyLimit: config.server.bodyLimit,
    metricsRoute: config.server.metricsPort === 0,
    bodyMemory: config.server.bodyMemory,
    reviewsInFlight: config.server.reviewsInFlight,
    maxConnections: config.server.maxConnections,
    // The whole request within the webhook's timeout: the API server gives up after it anyway.
    requestTimeout: Math.max(1000, Math.min(10_000, config.deadline + 1000)),
    ready: () => !nodes || nodes.ready,
  });
  const stopWatching =
    tlsCert && tlsKey
      ? watchTls(app.server as unknown as import('node:https').Server, tlsCert, tlsKey, logger, 2000, (pair) =>
          metrics.certificateExpiry.set(certificateExpiry(pair) / 1000),
        )
      : () => undefined;
  let metricsServer: MetricsServer | undefined;
  const close = async () => {
    stopWatching();
    await watch?.stop();
    await metricsServer?.close();
    await app.close();
    await nodes?.stop();
    await engine.close();
  };
  let address: string;
  try {
    address = await app.listen({ host: config.server.host, port: config.server.port });
  } catch (err) {
    // Stop what was started (the certificate watch would keep the process alive), then say why.
    await close();
    throw new UsageError(
      `cannot listen on ${config.server.host}:${config.server.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (config.server.metricsPort !== 0) {
    try {
      metricsServer = await listenMetrics(metrics, config.server.host, config.server.metricsPort);
    } catch (err) {
      await close();
      throw new UsageError(
        `cannot listen on ${config.server.host}:${config.server.metricsPort} (server.metricsPort): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  const metricsUrl = metricsServer?.url;
  logger.info(
    { address, metrics: metricsUrl ?? `${address}/metrics`, mode: config.mode, deadlineMs: config.deadline },
    'pullguard webhook listening',
  );
  if (watch) {
    watch.start();
    logger.info({ intervalMs: config.watch.interval, lease: config.watch.leaseName }, 'watch started');
  }
  return { app, url: address, ...(metricsUrl ? { metricsUrl } : {}), config, engine, logger, close, watch };
}

export async function runServe(argv: string[], io: CliIO): Promise<number> {
  let config: Config | 'help';
  try {
    config = parseServeArgs(argv, io.env);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.stderr(`pullguard serve: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (config === 'help') {
    io.stdout(SERVE_USAGE);
    return 0;
  }
  let running: Running;
  try {
    running = await startServer(config, io.env);
  } catch (err) {
    if (err instanceof UsageError || err instanceof CredentialFileError || err instanceof KubeConfigError) {
      io.stderr(`pullguard serve: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  // SIGTERM: stop accepting (readiness turns 503), finish the reviews in flight, then exit.
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      running.logger.info({ signal }, 'shutting down: finishing reviews in flight');
      running.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}
