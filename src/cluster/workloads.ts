// The API calls for re-verification's workload lists: Deployments, StatefulSets, DaemonSets and
// CronJobs in all namespaces. Each kind is listed on its own, so one that fails (batch/v1 CronJob
// before Kubernetes 1.21, no RBAC for a kind) leaves the others; which to warn about is the watch's.
// Each list is read in pages (limit + continue), so no single answer holds a whole large cluster.
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeApiError } from './api-errors.ts';
import { clientNode } from './k8s.ts';
import { withSignal } from './signal.ts';

export type WorkloadList = { apiVersion: string; kind: string } & (
  | { items: Record<string, unknown>[] }
  | { error: Error }
);

type Page = { limit: number; _continue?: string };
type PageAnswer = { items: unknown[]; metadata?: { _continue?: string } };

export class WorkloadLists {
  readonly #kinds: [apiVersion: string, kind: string, list: (page: Page) => Promise<PageAnswer>][];
  readonly #pageSize: number;

  constructor(kc: KubeConfig, timeoutMs = 30_000, pageSize = 500) {
    this.#pageSize = pageSize;
    const { AppsV1Api, BatchV1Api } = clientNode();
    const apps = kc.makeApiClient(AppsV1Api);
    const batch = kc.makeApiClient(BatchV1Api);
    const signal = () => withSignal(AbortSignal.timeout(timeoutMs));
    this.#kinds = [
      ['apps/v1', 'Deployment', (page) => apps.listDeploymentForAllNamespaces(page, signal())],
      ['apps/v1', 'StatefulSet', (page) => apps.listStatefulSetForAllNamespaces(page, signal())],
      ['apps/v1', 'DaemonSet', (page) => apps.listDaemonSetForAllNamespaces(page, signal())],
      ['batch/v1', 'CronJob', (page) => batch.listCronJobForAllNamespaces(page, signal())],
    ];
  }

  /** Every kind's objects (each with its kind, which list items lack), or why that kind could not be listed. */
  list(): Promise<WorkloadList[]> {
    return Promise.all(
      this.#kinds.map(async ([apiVersion, kind, list]): Promise<WorkloadList> => {
        try {
          const items: Record<string, unknown>[] = [];
          let cont: string | undefined;
          do {
            const page = await list({ limit: this.#pageSize, ...(cont ? { _continue: cont } : {}) });
            for (const item of page.items) items.push({ ...(item as object), kind });
            cont = page.metadata?._continue || undefined;
          } while (cont);
          return { apiVersion, kind, items };
        } catch (err) {
          return { apiVersion, kind, error: kubeApiError(err, { verb: 'list', what: `${kind}s in all namespaces` }) };
        }
      }),
    );
  }
}
