// Every kind that carries a pod spec and where its spec lives. manifests/ and the tests read this
// list so that the webhook rules and the code never drift apart.

export interface PodSpecKind {
  kind: string;
  apiGroup: string; // '' for the core group
  apiVersion: string;
  resource: string;
  /** path from the object root to the pod spec */
  specPath: readonly string[];
}

export const POD_SPEC_KINDS: readonly PodSpecKind[] = [
  { kind: 'Pod', apiGroup: '', apiVersion: 'v1', resource: 'pods', specPath: ['spec'] },
  { kind: 'PodTemplate', apiGroup: '', apiVersion: 'v1', resource: 'podtemplates', specPath: ['template', 'spec'] },
  {
    kind: 'ReplicationController',
    apiGroup: '',
    apiVersion: 'v1',
    resource: 'replicationcontrollers',
    specPath: ['spec', 'template', 'spec'],
  },
  {
    kind: 'Deployment',
    apiGroup: 'apps',
    apiVersion: 'v1',
    resource: 'deployments',
    specPath: ['spec', 'template', 'spec'],
  },
  {
    kind: 'ReplicaSet',
    apiGroup: 'apps',
    apiVersion: 'v1',
    resource: 'replicasets',
    specPath: ['spec', 'template', 'spec'],
  },
  {
    kind: 'StatefulSet',
    apiGroup: 'apps',
    apiVersion: 'v1',
    resource: 'statefulsets',
    specPath: ['spec', 'template', 'spec'],
  },
  {
    kind: 'DaemonSet',
    apiGroup: 'apps',
    apiVersion: 'v1',
    resource: 'daemonsets',
    specPath: ['spec', 'template', 'spec'],
  },
  { kind: 'Job', apiGroup: 'batch', apiVersion: 'v1', resource: 'jobs', specPath: ['spec', 'template', 'spec'] },
  {
    kind: 'CronJob',
    apiGroup: 'batch',
    apiVersion: 'v1',
    resource: 'cronjobs',
    specPath: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
  },
];

export function kindByName(kind: string): PodSpecKind | undefined {
  return POD_SPEC_KINDS.find((k) => k.kind === kind);
}
