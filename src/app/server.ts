// The webhook's composition root: the serving certificate, the pod check built from the
// configuration, the admission handler, metrics and the HTTP server, and one close() for all.
// The CLI, the tests and the benchmarks start the server through here.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AdmissionHandler } from '../admission/handler.ts';
import { SERVICE_ACCOUNT_DIR } from '../cluster/kubeconfig.ts';
import { requestCounts } from '../cluster/requests.ts';
import { clusterConfigured } from '../cluster/source.ts';
import type { Config } from '../config/schema.ts';
import { SetupError } from '../errors.ts';
import type { Preflight } from '../preflight/engine.ts';
import { buildApp } from '../server/app.ts';
import { createLogger } from '../server/logger.ts';
import { Metrics } from '../server/metrics.ts';
import { listenMetrics, type MetricsServer } from '../server/metrics-server.ts';
import { systemErrorText } from '../system-errors.ts';
import { certificateExpiry, readTlsPair, selfSigned, watchTls, type TlsPair } from '../server/tls.ts';
import type { Watch } from '../watch/watch.ts';
import { buildPodCheck } from './build.ts';

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

const WATCH_NEEDS_CLUSTER =
  'watch.enabled needs cluster access and there is none: give --kubeconfig or KUBECONFIG, or run in a cluster with a service account; or turn the watch off (watch.enabled: false, PULLGUARD_WATCH_ENABLED=false)';

/** The namespace of the service account pullguard runs as, when in a cluster. */
function ownNamespace(): string | undefined {
  try {
    return readFileSync(join(SERVICE_ACCOUNT_DIR, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Which of the two files a read error is about ("FILE: "), when it says. */
function fileOf(err: unknown): string {
  const path = (err as NodeJS.ErrnoException).path;
  return typeof path === 'string' ? `${path}: ` : '';
}

/** Starts everything; resolves once listening. */
export async function startServer(
  config: Config,
  env: NodeJS.ProcessEnv,
  logger = createLogger(config.log.level),
  /** the kubeconfig context to use instead of the current one (`serve --context`) */
  options: { context?: string } = {},
): Promise<Running> {
  // The watch reads the cluster: without any cluster configured, say so before anything is made.
  const kubeconfig = config.cluster.kubeconfig ? { kubeconfig: config.cluster.kubeconfig } : {};
  if (config.watch.enabled && !clusterConfigured({ ...kubeconfig, env })) throw new SetupError(WATCH_NEEDS_CLUSTER);

  // The certificate first: a missing or mismatched pair is a configuration mistake (a plain message,
  // exit 2), found before anything is started that would need stopping.
  let tls: TlsPair;
  const { tlsCert, tlsKey } = config.server;
  if (tlsCert && tlsKey) {
    try {
      tls = readTlsPair(tlsCert, tlsKey);
    } catch (err) {
      throw new SetupError(
        `serving certificate ${tlsCert} and key ${tlsKey}: ${fileOf(err)}${systemErrorText(err, 'read')} (check server.tlsCert and server.tlsKey, or --tls-cert and --tls-key)`,
      );
    }
  } else {
    tls = await selfSigned(['localhost', 'pullguard', 'pullguard.pullguard.svc']);
    logger.warn(
      'no certificate configured (server.tlsCert/server.tlsKey): serving with a new self-signed certificate for localhost; the API server will not trust it',
    );
  }

  const metrics = new Metrics();
  const { podCheck, cluster, registryClient } = await buildPodCheck(config, {
    env,
    dockerConfigs: config.credentials.nodeDockerConfigs,
    ...(options.context ? { context: options.context } : {}),
    logger,
    hooks: {
      onResponse: (host, _method, status, via, registryLike) =>
        metrics.registryAnswered(host, status, via, registryLike),
      onFailure: (host, _method, kind) => metrics.registryFailed(host, kind),
    },
  });
  if (config.watch.enabled && !cluster) {
    // configured but not found: in-cluster variables without a service account token
    await podCheck.close();
    throw new SetupError(WATCH_NEEDS_CLUSTER);
  }
  if (cluster) logger.info({ source: cluster.source }, 'reading pull secrets and service accounts from the cluster');
  else
    logger.warn(
      'no cluster access (no --kubeconfig, KUBECONFIG or in-cluster service account): pull secrets cannot be read; a denial that they might change becomes a warning',
    );
  const engine = podCheck.engine;
  metrics.observeEngine(engine);
  if (cluster) {
    const kc = cluster.kc;
    metrics.observeApiRequests(() => requestCounts(kc));
  }
  metrics.certificateExpiry.set(certificateExpiry(tls) / 1000);

  let watch: Watch | null = null;
  if (config.watch.enabled && cluster) {
    // loaded only when enabled: the watch carries the cluster client, which a webhook without one never loads
    const { buildWatch } = await import('./watch.ts');
    watch = buildWatch(config, {
      kc: cluster.kc,
      podCheck,
      registryClient,
      registry: metrics.registry,
      logger,
      identity: `${env.POD_NAME || hostname()}_${randomUUID().slice(0, 8)}`,
      leaseNamespace: config.watch.leaseNamespace ?? env.POD_NAMESPACE ?? ownNamespace() ?? 'pullguard',
    });
  }

  const handler = new AdmissionHandler({ config, podCheck, logger, observer: metrics });
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
    ready: () => podCheck.ready,
  });
  const stopWatching =
    tlsCert && tlsKey
      ? watchTls(
          app.server as unknown as import('node:https').Server,
          tlsCert,
          tlsKey,
          logger,
          2000,
          (pair) => metrics.certificateExpiry.set(certificateExpiry(pair) / 1000),
          tls,
        )
      : () => undefined;
  let metricsServer: MetricsServer | undefined;
  const close = async () => {
    stopWatching();
    await watch?.stop();
    await metricsServer?.close();
    await app.close();
    await podCheck.close();
  };
  let address: string;
  try {
    address = await app.listen({ host: config.server.host, port: config.server.port });
  } catch (err) {
    // Stop what was started (the certificate watch would keep the process alive), then say why.
    await close();
    throw new SetupError(
      `cannot listen on ${config.server.host}:${config.server.port}: ${systemErrorText(err, 'listen')} (choose another server.port or --port)`,
    );
  }
  if (config.server.metricsPort !== 0) {
    try {
      metricsServer = await listenMetrics(metrics, config.server.host, config.server.metricsPort);
    } catch (err) {
      await close();
      throw new SetupError(
        `cannot listen on ${config.server.host}:${config.server.metricsPort} (server.metricsPort): ${systemErrorText(err, 'listen')} (choose another server.metricsPort or --metrics-port; 0 serves metrics on the webhook's port)`,
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
