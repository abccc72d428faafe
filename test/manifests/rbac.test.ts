// RBAC grants exactly src/cluster/access.ts REQUIRED_ACCESS: no more (least privilege), no less
// (a missing verb would only show as a 403 at run time).
import t from 'tap';
import { join } from 'node:path';
import {
  REQUIRED_ACCESS,
  SERVICE_ACCOUNT_TOKEN_ACCESS,
  WATCH_ACCESS,
  WATCH_LEASE_ACCESS,
  type ApiAccess,
} from '../../src/cluster/access.ts';
import { parse as parseYaml } from 'yaml';
import { validateConfig } from '../../src/config/schema.ts';
import { environmentOverrides, mergeLayers } from '../../src/config/layers.ts';
import {
  all,
  baseConfigText,
  baseObjects,
  leaseRuleProblems,
  listYamlFiles,
  manifestsDir,
  only,
  readYaml,
  type Obj,
} from './lib.ts';

const objects = baseObjects();

const expand = (
  rules: readonly { apiGroups: readonly string[]; resources: readonly string[]; verbs: readonly string[] }[],
) =>
  [
    ...new Set(
      rules.flatMap((r) =>
        r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g || 'core'} ${res} ${v}`))),
      ),
    ),
  ].sort();

t.test('the ClusterRole grants exactly REQUIRED_ACCESS', async (t) => {
  const role = only(objects, 'ClusterRole');
  const rules = role.rules as Obj[];
  const expected = expand(
    REQUIRED_ACCESS.map((a) => ({ apiGroups: [a.apiGroup], resources: [a.resource], verbs: a.verbs })),
  );
  t.same(expand(rules as never), expected, 'apiGroup/resource/verb triples are the same');
  for (const r of rules) {
    t.notOk([...r.apiGroups, ...r.resources, ...r.verbs].includes('*'), 'no wildcards');
    t.equal(r.nonResourceURLs, undefined, 'no non-resource URLs');
    t.equal(r.resourceNames, undefined, "no resourceNames (the names are the pods' secrets, unknown in advance)");
  }
  t.equal(role.aggregationRule, undefined, 'not an aggregated role');
});

t.test('nothing else grants anything', async (t) => {
  const roles = listYamlFiles()
    .flatMap((f) => readYaml(f))
    .filter((o) => ['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'].includes(o.kind));
  t.same(
    roles.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
    [
      'ClusterRole/pullguard',
      'ClusterRole/pullguard-service-account-tokens',
      'ClusterRole/pullguard-watch',
      'ClusterRoleBinding/pullguard',
      'ClusterRoleBinding/pullguard-service-account-tokens',
      'ClusterRoleBinding/pullguard-watch',
      'Role/pullguard-watch-lease',
      'RoleBinding/pullguard-watch-lease',
    ],
    "the base's ClusterRole and binding, the watch component's and the opt-in service-account-tokens component's",
  );
});

t.test("the binding gives the role to the Deployment's ServiceAccount only", async (t) => {
  const binding = only(objects, 'ClusterRoleBinding');
  const role = only(objects, 'ClusterRole');
  const sa = only(objects, 'ServiceAccount');
  const dep = only(objects, 'Deployment');
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
  t.equal(binding.subjects.length, 1, 'one subject');
  t.equal(binding.subjects[0].kind, 'ServiceAccount');
  t.equal(binding.subjects[0].name, sa.metadata.name);
  t.equal(dep.spec.template.spec.serviceAccountName, sa.metadata.name, 'the Deployment runs as that ServiceAccount');
  t.equal(all(objects, 'ServiceAccount').length, 1);
});

const accessTriples = (access: readonly ApiAccess[]) =>
  expand(access.map((a) => ({ apiGroups: [a.apiGroup], resources: [a.resource], verbs: a.verbs })));

t.test('the watch component grants exactly WATCH_ACCESS, and the Lease only in its namespace', async (t) => {
  const objects = readYaml(join(manifestsDir, 'components', 'watch', 'rbac.yaml'));
  const cluster = only(objects, 'ClusterRole');
  t.same(expand(cluster.rules as never), accessTriples(WATCH_ACCESS));
  const role = only(objects, 'Role');
  t.same(expand(role.rules as never), accessTriples(WATCH_LEASE_ACCESS), 'a Role: leases of its own namespace only');
  for (const binding of [only(objects, 'ClusterRoleBinding'), only(objects, 'RoleBinding')]) {
    t.same(binding.subjects, [{ kind: 'ServiceAccount', name: 'pullguard' }], "pullguard's ServiceAccount only");
  }
  for (const r of [...(cluster.rules as Obj[]), ...(role.rules as Obj[])])
    t.notOk([...r.apiGroups, ...r.resources, ...r.verbs].includes('*'), 'no wildcards');
});

t.test(
  'the service-account-tokens component grants exactly SERVICE_ACCOUNT_TOKEN_ACCESS and switches it on',
  async (t) => {
    const dir = join(manifestsDir, 'components', 'service-account-tokens');
    const objects = readYaml(join(dir, 'rbac.yaml'));
    t.same(expand(only(objects, 'ClusterRole').rules as never), accessTriples(SERVICE_ACCOUNT_TOKEN_ACCESS));
    t.same(only(objects, 'ClusterRoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'pullguard' }]);
    const env = only(readYaml(join(dir, 'deployment.yaml')), 'Deployment').spec.template.spec.containers[0]
      .env as Obj[];
    t.same(env, [{ name: 'PULLGUARD_CREDENTIALS_SERVICE_ACCOUNT_TOKENS', value: 'true' }]);
    t.equal(
      validateConfig(mergeLayers(parseYaml(baseConfigText()), environmentOverrides({ [env[0]!.name]: 'true' })))
        .credentials.serviceAccountTokens,
      true,
      'the variable sets credentials.serviceAccountTokens',
    );
    t.equal(validateConfig(parseYaml(baseConfigText())).credentials.serviceAccountTokens, false, 'off by default');
  },
);

t.test(
  "the Lease Role gets and updates only the configuration's Lease; create is the only namespace-wide verb",
  async (t) => {
    const role = only(readYaml(join(manifestsDir, 'components', 'watch', 'rbac.yaml')), 'Role');
    // The base configuration leaves watch.leaseName to its default.
    const leaseName = validateConfig(parseYaml(baseConfigText())).watch.leaseName;
    t.equal(leaseName, 'pullguard-watch');
    t.same(leaseRuleProblems(role, leaseName), [], 'get and update limited by resourceNames');
    t.same(
      (role.rules as Obj[]).filter((r) => r.resourceNames).flatMap((r) => r.resourceNames),
      [leaseName],
    );
  },
);
