// `pullguard serve`: the validating admission webhook.

import { parseArgs } from 'node:util';
import { startServer, type Running } from '../app/server.ts';
import { loadConfig, type Config } from '../config/schema.ts';
import { UsageError } from '../errors.ts';
import { exitStatusFor } from './errors.ts';
import { CLUSTER_FLAGS, REGISTRY_FLAGS, registryOverrides, type CliIO } from './flags.ts';

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
      --context NAME            the kubeconfig context to use (default: its current context)
      --docker-config FILE      the nodes' docker config (node credentials; repeatable)
      --platform OS/ARCH[/VAR]  platforms to require instead of the nodes' (repeatable)
      --insecure-registry HOST  registry reached without TLS verification or over plain HTTP (repeatable)
      --hosts-dir DIR           the nodes' containerd hosts directory (certs.d: <host>/hosts.toml mirrors)
      --registries-conf FILE    the nodes' CRI-O registries.conf (mirrors, rewrites, blocked, short names)
      --registries-conf-dir DIR its registries.conf.d drop-ins
      --registry-ca FILE        extra CA certificate (PEM) for registries (repeatable)
      --image-credential-provider-config FILE
                                the nodes' kubelet CredentialProviderConfig (run its plugins as the kubelet does)
      --image-credential-provider-bin-dir DIR
                                where those plugins are
      --request-service-account-tokens
                                run plugins with tokenAttributes with a token of the pod's ServiceAccount
      --timeout DURATION        deadline per review, under the webhook's timeoutSeconds (default 8s)
  -h, --help                    this help
`;

/** What the command line asks of `serve`: the configuration, and the kubeconfig context (a flag only, as in check). */
export interface ServeArgs {
  config: Config;
  context?: string;
}

/** The configuration `serve` runs with (files, PULLGUARD_* variables and flags). */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv): Config | 'help' {
  const args = parseServe(argv, env);
  return args === 'help' ? args : args.config;
}

export function parseServe(argv: string[], env: NodeJS.ProcessEnv): ServeArgs | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...REGISTRY_FLAGS,
        ...CLUSTER_FLAGS,
        host: { type: 'string' },
        port: { type: 'string' },
        'metrics-port': { type: 'string' },
        mode: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
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
  const config = loadConfig({ ...(v.config ? { file: v.config } : {}), env, flags });
  return { config, ...(v.context ? { context: v.context } : {}) };
}

export async function runServe(argv: string[], io: CliIO): Promise<number> {
  let args: ServeArgs | 'help';
  try {
    args = parseServe(argv, io.env);
  } catch (err) {
    return exitStatusFor('serve', err, io);
  }
  if (args === 'help') {
    io.stdout(SERVE_USAGE);
    return 0;
  }
  let running: Running;
  try {
    running = await startServer(args.config, io.env, undefined, args.context ? { context: args.context } : {});
  } catch (err) {
    return exitStatusFor('serve', err, io);
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
