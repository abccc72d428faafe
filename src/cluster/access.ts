// The only Kubernetes API access pullguard needs. manifests/ grant exactly this (a test compares
// them), and the fixture API server's tests check that the code asks for nothing else.

export interface ApiAccess {
  apiGroup: string; // '' for the core group
  resource: string;
  verbs: readonly string[];
  /** namespaced reads can be limited to chosen namespaces with RoleBindings */
  namespaced: boolean;
}

export const REQUIRED_ACCESS: readonly ApiAccess[] = [
  { apiGroup: '', resource: 'secrets', verbs: ['get'], namespaced: true },
  { apiGroup: '', resource: 'serviceaccounts', verbs: ['get'], namespaced: true },
  { apiGroup: '', resource: 'nodes', verbs: ['list', 'watch'], namespaced: false },
];

/**
 * What the watch in `pullguard serve` (watch.enabled) needs besides REQUIRED_ACCESS. The kustomize
 * component manifests/components/watch grants exactly this (a test compares them); the Lease is
 * namespaced to pullguard's own namespace (a Role).
 */
export const WATCH_ACCESS: readonly ApiAccess[] = [
  { apiGroup: '', resource: 'pods', verbs: ['list', 'watch'], namespaced: false },
  { apiGroup: '', resource: 'events', verbs: ['list', 'create', 'get', 'update'], namespaced: false },
  { apiGroup: '', resource: 'nodes', verbs: ['get'], namespaced: false },
  { apiGroup: 'apps', resource: 'deployments', verbs: ['list'], namespaced: false },
  { apiGroup: 'apps', resource: 'statefulsets', verbs: ['list'], namespaced: false },
  { apiGroup: 'apps', resource: 'daemonsets', verbs: ['list'], namespaced: false },
  { apiGroup: 'batch', resource: 'cronjobs', verbs: ['list'], namespaced: false },
];

/**
 * Opt-in (credentials.serviceAccountTokens): TokenRequest for the reviewed pod's ServiceAccount, for
 * kubelet credential provider plugins with tokenAttributes (KEP-4412). The kustomize component
 * manifests/components/service-account-tokens and the Helm value serviceAccountTokens.enabled grant
 * exactly this; nothing grants it by default.
 */
export const SERVICE_ACCOUNT_TOKEN_ACCESS: readonly ApiAccess[] = [
  { apiGroup: '', resource: 'serviceaccounts/token', verbs: ['create'], namespaced: true },
];

/**
 * The Lease that picks the acting replica: in pullguard's own namespace only, and get/update only on
 * the configured Lease (the Role's resourceNames; create cannot be limited by name).
 */
export const WATCH_LEASE_ACCESS: readonly ApiAccess[] = [
  { apiGroup: 'coordination.k8s.io', resource: 'leases', verbs: ['get', 'create', 'update'], namespaced: true },
];
