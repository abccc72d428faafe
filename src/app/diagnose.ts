// `pullguard diagnose` put together: the pod check built from the configuration as the webhook's is
// (its credentials, proxies and CAs; no node list: a pod's platform is its node's), the cluster's
// pod reads, and the diagnosis of every pod asked for, each handed to the sink as it is made. The
// pod check is closed afterwards.

import { PodReader } from '../cluster/pods.ts';
import { KubeConfigError } from '../cluster/source.ts';
import type { Config } from '../config/schema.ts';
import { type DiagnoseSink, diagnoseEach } from '../diagnose/pods.ts';
import { buildPodCheck } from './build.ts';

export interface DiagnoseRequest {
  /** the namespace; none: the kubeconfig context's, else default */
  namespace?: string;
  /** every namespace (namespace is then not given) */
  allNamespaces?: boolean;
  /** named pods (diagnosed whatever their state); empty: every stuck pod */
  pods: string[];
  labelSelector?: string;
}

export async function diagnosePods(
  config: Config,
  setup: { env: NodeJS.ProcessEnv /** the kubeconfig context to use */; context?: string },
  request: DiagnoseRequest,
  sink: DiagnoseSink,
): Promise<void> {
  const built = await buildPodCheck(config, {
    env: setup.env,
    dockerConfigs: config.credentials.nodeDockerConfigs,
    face: 'cli',
    ...(setup.context ? { context: setup.context } : {}),
  });
  try {
    const kube = built.cluster;
    if (!kube) throw new KubeConfigError('no cluster: give --kubeconfig or set KUBECONFIG');
    const namespace = request.allNamespaces
      ? undefined
      : (request.namespace ?? kube.kc.getContextObject(kube.kc.getCurrentContext())?.namespace ?? 'default');
    const deadlineMs = config.deadline;
    const reader = new PodReader(kube.kc, Math.max(5_000, deadlineMs));
    await diagnoseEach(
      { reader, podCheck: built.podCheck, deadlineMs },
      {
        ...(namespace !== undefined ? { namespace } : {}),
        pods: request.pods,
        ...(request.labelSelector ? { labelSelector: request.labelSelector } : {}),
      },
      sink,
    );
  } finally {
    await built.podCheck.close();
  }
}
