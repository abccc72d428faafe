// The API calls for re-verification's workload lists: Deployments, StatefulSets, DaemonSets and
// CronJobs in all namespaces. Each kind is listed on its own, so one that fails (batch/v1 CronJob
// before Kubernetes 1.21, no RBAC for a kind) leaves the others; which to warn about is the watch's.
// Each list is read in pages (list-watch.ts listPages) and each workload kept as its projection
// (projections.ts WORKLOADS: who it is and its pod template's images, credentials and placement),
// so a round holds the cluster's workloads as a few hundred bytes each, not as whole objects.
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeApiError } from './api-errors.ts';
import { listPages } from './list-watch.ts';
import { type KeptWorkload, WORKLOADS } from './projections.ts';

export type WorkloadList = { apiVersion: string; kind: string } & (
  | { items: (KeptWorkload & { kind: string })[] }
  | { error: Error }
);

const KINDS = [
  ['apps/v1', 'Deployment', '/apis/apps/v1/deployments'],
  ['apps/v1', 'StatefulSet', '/apis/apps/v1/statefulsets'],
  ['apps/v1', 'DaemonSet', '/apis/apps/v1/daemonsets'],
  ['batch/v1', 'CronJob', '/apis/batch/v1/cronjobs'],
] as const;

export class WorkloadLists {
  readonly #kc: KubeConfig;
  readonly #timeoutMs: number;
  readonly #pageSize: number;

  constructor(kc: KubeConfig, timeoutMs = 30_000, pageSize = 500) {
    this.#kc = kc;
    this.#timeoutMs = timeoutMs;
    this.#pageSize = pageSize;
  }

  /** Every kind's workloads (each with its kind, which list items lack), or why that kind could not be listed. */
  list(): Promise<WorkloadList[]> {
    return Promise.all(
      KINDS.map(async ([apiVersion, kind, path]): Promise<WorkloadList> => {
        try {
          const items: (KeptWorkload & { kind: string })[] = [];
          const pages = listPages(this.#kc, path, WORKLOADS, { pageSize: this.#pageSize, timeoutMs: this.#timeoutMs });
          for await (const page of pages) for (const item of page.items) items.push({ ...item, kind });
          return { apiVersion, kind, items };
        } catch (err) {
          return { apiVersion, kind, error: kubeApiError(err, { verb: 'list', what: `${kind}s in all namespaces` }) };
        }
      }),
    );
  }
}
