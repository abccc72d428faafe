// Where the cluster connection comes from: --kubeconfig, then KUBECONFIG, then the in-cluster
// service account. No ~/.kube/config fallback on purpose: a CI run must not reach a cluster
// nobody asked for.
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isIPv6 } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { systemErrorText } from '../system-errors.ts';
import { clientNode } from './k8s.ts';
import { trackConnections } from './connections.ts';
import { countRequests } from './requests.ts';
import { KubeConfigError } from './source.ts';

export { KubeConfigError };

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface LoadKubeConfigOptions {
  /** explicit path (--kubeconfig); an error if it cannot be loaded */
  kubeconfig?: string;
  env: NodeJS.ProcessEnv;
  /** where the service account token, CA and namespace are mounted (tests point elsewhere) */
  serviceAccountDir?: string;
  /** the context to use instead of the current one (--context), as kubectl's flag */
  context?: string;
}

export interface LoadedKubeConfig {
  kc: KubeConfig;
  /** human-readable origin, for logs and the CLI's "checking with …" line */
  source: string;
}

export function loadKubeConfig(opts: LoadKubeConfigOptions): LoadedKubeConfig | null {
  const loaded = loadAny(opts);
  if (loaded) {
    trackConnections(loaded.kc);
    countRequests(loaded.kc);
  }
  if (!opts.context) return loaded;
  if (!loaded || loaded.source === 'in-cluster service account')
    throw new KubeConfigError(
      `--context ${opts.context}: no kubeconfig to choose it from (--kubeconfig or KUBECONFIG)`,
    );
  if (!loaded.kc.contexts.some((c) => c.name === opts.context))
    throw new KubeConfigError(`--context ${opts.context}: no such context in ${loaded.source}`);
  loaded.kc.setCurrentContext(opts.context);
  requireCluster(loaded.kc, `context ${opts.context} in ${loaded.source}`);
  return { kc: loaded.kc, source: `${loaded.source}, context ${opts.context}` };
}

function loadAny(opts: LoadKubeConfigOptions): LoadedKubeConfig | null {
  // With --context, the file's own current context need not name a cluster.
  const check = (kc: KubeConfig, what: string) => (opts.context ? undefined : requireCluster(kc, what));
  if (opts.kubeconfig !== undefined && opts.kubeconfig !== '') {
    const kc = new (clientNode().KubeConfig)();
    loadFile(kc, opts.kubeconfig);
    check(kc, opts.kubeconfig);
    return { kc, source: `kubeconfig ${opts.kubeconfig}` };
  }

  const fromEnv = opts.env.KUBECONFIG;
  if (fromEnv !== undefined && fromEnv !== '') {
    // kubectl semantics: a list of files, missing ones skipped, the first one's context wins.
    const files = fromEnv.split(delimiter).filter((f) => f !== '' && existsSync(f));
    const [first, ...rest] = files;
    if (first !== undefined) {
      const kc = new (clientNode().KubeConfig)();
      loadFile(kc, first);
      for (const file of rest) {
        const more = new (clientNode().KubeConfig)();
        loadFile(more, file);
        mergeFirstWins(kc, more);
      }
      check(kc, `KUBECONFIG=${fromEnv}`);
      return { kc, source: `KUBECONFIG ${files.join(delimiter)}` };
    }
  }

  const saDir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const host = opts.env.KUBERNETES_SERVICE_HOST;
  const port = opts.env.KUBERNETES_SERVICE_PORT;
  if (host && port && existsSync(join(saDir, 'token'))) {
    return { kc: inClusterConfig(host, port, saDir), source: 'in-cluster service account' };
  }
  return null;
}

function loadFile(kc: KubeConfig, file: string): void {
  try {
    kc.loadFromFile(file);
  } catch (err) {
    // The YAML parser's message may quote file content (tokens), so only say what failed.
    const code = (err as NodeJS.ErrnoException).code;
    // A file system error has a syscall; anything else is about the content.
    const why = (err as NodeJS.ErrnoException).syscall ? systemErrorText(err, 'read') : 'not a valid kubeconfig';
    throw new KubeConfigError(`cannot load kubeconfig ${file}: ${why} (check --kubeconfig or KUBECONFIG)`, {
      cause: code,
    });
  }
}

// kubectl's merge: the first file that sets a name (or the current context) wins; client-node's
// own mergeConfig throws on duplicates instead.
function mergeFirstWins(kc: KubeConfig, more: KubeConfig): void {
  if (!kc.currentContext && more.currentContext) kc.currentContext = more.currentContext;
  for (const c of more.clusters) if (!kc.clusters.some((x) => x.name === c.name)) kc.clusters.push(c);
  for (const u of more.users) if (!kc.users.some((x) => x.name === u.name)) kc.users.push(u);
  for (const c of more.contexts) if (!kc.contexts.some((x) => x.name === c.name)) kc.contexts.push(c);
}

function requireCluster(kc: KubeConfig, what: string): void {
  if (!kc.getCurrentCluster()) throw new KubeConfigError(`${what}: no current context with a cluster`);
}

// Same shape as KubeConfig.loadFromCluster, but from the env we were given (not process.env)
// and a configurable mount point. The tokenFile provider re-reads the rotated bound token.
function inClusterConfig(host: string, port: string, saDir: string): KubeConfig {
  const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
  const serverHost = isIPv6(host) ? `[${host}]` : host;
  const nsFile = join(saDir, 'namespace');
  const kc = new (clientNode().KubeConfig)();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'inCluster',
        server: `${scheme}://${serverHost}:${port}`,
        caFile: join(saDir, 'ca.crt'),
        // client-node refuses http:// unless this is set; on https it stays false.
        skipTLSVerify: scheme === 'http',
      },
    ],
    users: [
      {
        name: 'inClusterUser',
        authProvider: { name: 'tokenFile', config: { tokenFile: join(saDir, 'token') } },
      },
    ],
    contexts: [
      {
        name: 'inClusterContext',
        cluster: 'inCluster',
        user: 'inClusterUser',
        ...(existsSync(nsFile) ? { namespace: readFileSync(nsFile, 'utf8').trim() } : {}),
      },
    ],
    currentContext: 'inClusterContext',
  });
  return kc;
}
