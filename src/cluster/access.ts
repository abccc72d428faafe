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
