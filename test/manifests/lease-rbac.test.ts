// The watch's Lease Role as shipped (helm template with a non-default lease name, installed into
// kube-system; and the kustomize component), bound to a user of a real kube-apiserver with RBAC
// (the lab): pullguard's own lease code takes and renews its Lease, and the same user can neither
// read nor change the scheduler's Lease beside it.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiException,
  CoordinationV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  CoreV1Api,
} from '@kubernetes/client-node';
import t from 'tap';
import { stringify as stringifyYaml } from 'yaml';
import { LeaseLock } from '../../src/cluster/lease.ts';
import { microTime } from '../../src/cluster/microtime.ts';
import { LeaderLease } from '../../src/watch/lease.ts';
import { k8sTool } from '../helpers/k8s-tools.ts';
import { startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { manifestsDir, only, parseYamlDocs, repoRoot, scratch, type Obj } from './lib.ts';
import { waitFor } from '../helpers/wait.ts';

const DEADLINE_MS = 60_000;

let lab: KubeLab;
t.before(async () => {
  lab = await startKubeLab({ users: [{ name: 'helm-sa' }, { name: 'kustomize-sa' }] });
});
t.teardown(async () => {
  await lab?.stop();
});

function helmRole(namespace: string, leaseName: string): Obj {
  const home = scratch(t, 'pullguard-helm-home-');
  const values = join(home, 'values.yaml');
  writeFileSync(values, stringifyYaml({ watch: { enabled: true, leaseName } }));
  const r = spawnSync(
    k8sTool('helm'),
    ['template', 'pullguard', join(repoRoot, 'charts', 'pullguard'), '--namespace', namespace, '--values', values],
    {
      encoding: 'utf8',
      env: {
        ...process.env,
        HELM_CACHE_HOME: join(home, 'cache'),
        HELM_CONFIG_HOME: join(home, 'config'),
        HELM_DATA_HOME: join(home, 'data'),
      },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return only(parseYamlDocs(r.stdout, 'helm template'), 'Role');
}

function kustomizeRole(): Obj {
  const file = join(manifestsDir, 'components', 'watch', 'rbac.yaml');
  return only(parseYamlDocs(readFileSync(file, 'utf8'), file), 'Role');
}

const status = (p: Promise<unknown>) =>
  p.then(
    () => 200,
    (err) => (err instanceof ApiException ? err.code : -1),
  );

const cases: [string, string, string, string, () => Obj][] = [
  [
    'helm, installed into kube-system',
    'helm-sa',
    'kube-system',
    'edge-leader',
    () => helmRole('kube-system', 'edge-leader'),
  ],
  ['kustomize', 'kustomize-sa', 'pullguard', 'pullguard-watch', kustomizeRole],
];

for (const [name, user, namespace, leaseName, role] of cases) {
  t.test(`${name}: the Lease ${leaseName} taken and renewed, the scheduler's out of reach`, async (t) => {
    const admin = lab.kc();
    const core = admin.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace } } }).catch((err) => {
      if (!(err instanceof ApiException && err.code === 409)) throw err;
    });
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    const r = role();
    await rbac.createNamespacedRole({ namespace, body: { metadata: { name: r.metadata.name }, rules: r.rules } });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: r.metadata.name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: r.metadata.name },
        subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
    const leases = admin.makeApiClient(CoordinationV1Api);
    const now = microTime(new Date());
    await leases.createNamespacedLease({
      namespace,
      body: {
        metadata: { name: 'kube-scheduler', namespace },
        spec: { holderIdentity: 'master-1', leaseDurationSeconds: 15, acquireTime: now, renewTime: now },
      },
    });

    const kc = new KubeConfig();
    kc.loadFromFile(lab.kubeconfigFor(user));
    // pullguard's own lease code, as the user the shipped Role is bound to
    const lease = new LeaderLease(new LeaseLock(kc, { namespace, name: leaseName }), {
      identity: 'replica-1',
      durationMs: 3000,
    });
    t.teardown(() => lease.stop());
    lease.start();
    await waitFor(async () => lease.leader, { what: 'leader', timeoutMs: DEADLINE_MS, everyMs: 200 });
    const first = (await leases.readNamespacedLease({ name: leaseName, namespace })).spec?.renewTime;
    // a renewal is a get and an update of the named Lease
    await waitFor(
      async () => {
        const spec = (await leases.readNamespacedLease({ name: leaseName, namespace })).spec;
        return String(spec?.renewTime) !== String(first) && spec?.holderIdentity === 'replica-1';
      },
      { what: 'renewed', timeoutMs: DEADLINE_MS, everyMs: 200 },
    );
    t.ok(lease.leader, 'created, read and renewed its Lease');

    const mine = kc.makeApiClient(CoordinationV1Api);
    t.equal(
      await status(mine.readNamespacedLease({ name: 'kube-scheduler', namespace })),
      403,
      "the scheduler's Lease: no get",
    );
    const theirs = await leases.readNamespacedLease({ name: 'kube-scheduler', namespace });
    theirs.spec!.holderIdentity = 'replica-1';
    t.equal(
      await status(mine.replaceNamespacedLease({ name: 'kube-scheduler', namespace, body: theirs })),
      403,
      "the scheduler's Lease: no update",
    );
    t.equal(await status(mine.listNamespacedLease({ namespace })), 403, 'no list');
    t.equal(
      (await leases.readNamespacedLease({ name: 'kube-scheduler', namespace })).spec?.holderIdentity,
      'master-1',
      'the scheduler still holds its Lease',
    );
    // What RBAC cannot limit: a create carries no name for the authorizer.
    t.equal(
      await status(mine.createNamespacedLease({ namespace, body: { metadata: { name: `${leaseName}-other` } } })),
      200,
      'create is allowed for any name (RBAC cannot name it); a create cannot touch an existing Lease',
    );
    t.equal(
      await status(mine.createNamespacedLease({ namespace, body: { metadata: { name: 'kube-scheduler' } } })),
      409,
      "and a create of the scheduler's Lease is refused as it exists",
    );
  });
}
