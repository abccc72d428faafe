// Whether a cluster connection is configured at all, and the error for one that cannot be used,
// without loading the Kubernetes client: `pullguard check` without a cluster never pays for it.

import { PullguardError } from '../errors.ts';

/** A kubeconfig that was asked for but cannot be used: bad usage, not a crash. */
export class KubeConfigError extends PullguardError {
  readonly code = 'kubeconfig';
}

/**
 * True when loadKubeConfig may find a connection: --kubeconfig, KUBECONFIG, or the in-cluster
 * variables. It may still find none (KUBECONFIG naming only missing files); false means it cannot.
 */
export function clusterConfigured(opts: { kubeconfig?: string; env: NodeJS.ProcessEnv }): boolean {
  return Boolean(
    opts.kubeconfig || opts.env.KUBECONFIG || (opts.env.KUBERNETES_SERVICE_HOST && opts.env.KUBERNETES_SERVICE_PORT),
  );
}
