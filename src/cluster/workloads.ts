// The API calls for re-verification's workload lists: Deployments, StatefulSets, DaemonSets and
// CronJobs in all namespaces. Each kind is listed on its own, so one that fails (batch/v1 CronJob
// before Kubernetes 1.21, no RBAC for a kind) leaves the others; which to warn about is the watch's.
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeApiError } from './api-errors.ts';
import { clientNode } from './k8s.ts';
import { withSignal } from './signal.ts';

export type WorkloadList = { apiVersion: string; kind: string } & (
  | { items: Record<string, unknown>[] }
  | { error: Error }
);

export class WorkloadLists {
  readonly #kinds: [apiVersion: string, kind: string, list: () => Promise<{ items: unknown[] }>][];

  constructor(kc: KubeConfig, timeoutMs = 30_000) {
    const { AppsV1Api, BatchV1Api } = clientNode();
    const apps = kc.makeApiClient(AppsV1Api);
    const batch = kc.makeApiClient(BatchV1Api);
    const signal = () => withSignal(AbortSignal.timeout(timeoutMs));
    this.#kinds = [
      ['apps/v1', 'Deployment', () => apps.listDeploymentForAllNamespaces({}, signal())],
      ['apps/v1', 'StatefulSet', () => apps.listStatefulSetForAllNamespaces({}, signal())],
      ['apps/v1', 'DaemonSet', () => apps.listDaemonSetForAllNamespaces({}, signal())],
      ['batch/v1', 'CronJob', () => batch.listCronJobForAllNamespaces({}, signal())],
    ];
  }

  /** Every kind's objects (each with its kind, which list items lack), or why that kind could not be listed. */
  list(): Promise<WorkloadList[]> {
    return Promise.all(
      this.#kinds.map(async ([apiVersion, kind, list]): Promise<WorkloadList> => {
        try {
          const items = (await list()).items.map((item) => ({ ...(item as object), kind }) as Record<string, unknown>);
          return { apiVersion, kind, items };
        } catch (err) {
          return { apiVersion, kind, error: kubeApiError(err, { verb: 'list', what: `${kind}s in all namespaces` }) };
        }
      }),
    );
  }
}
