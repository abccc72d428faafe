// KEP-4412: a kubelet credential provider with tokenAttributes, run through a real plugin executable
// with a token the test API server mints (TokenRequest; test/helpers/kube-lab.ts starts it with a
// service-account issuer and signing key). The plugin gives credentials only when it is handed a
// token and the ServiceAccount's annotation, as a cloud plugin exchanging the token would.
//   missing required annotation: the kubelet does not run the plugin -> the pull fails (fail)
//   tokens allowed (credentials.serviceAccountTokens): the plugin runs as on the node -> ok
//   tokens not allowed: pullguard cannot run it -> unverifiable, naming the setting that would
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { runCheck } from '../../src/cli/check.ts';
import { runInProcess } from '../helpers/cli.ts';
import { startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

const NS = 'team';
const AUDIENCE = 'registry.test';
const grace = { username: 'grace', password: 'Grace-Token-pw-41' };
let lab: KubeLab;
let registry: TestRegistry;
let dir: string;
let bin: string;
let requests: string;

t.before(async () => {
  [lab, registry] = await Promise.all([
    startKubeLab({ users: [{ name: 'reviewer' }] }),
    startRegistry({ auth: 'token', users: [grace] }),
  ]);
  await registry.pushImage('team/app', '1.0');
  dir = mkdtempSync(join(tmpdir(), 'pullguard-token-plugins-'));
  bin = join(dir, 'bin');
  mkdirSync(bin);
  requests = join(dir, 'requests.log');
  // Credentials only for a request that carries a token and the role annotation.
  writeFileSync(
    join(bin, 'sa-token-provider'),
    `#!/bin/sh
request=$(cat)
printf '%s\\n' "$request" >> "${requests}"
case "$request" in
  *'"serviceAccountToken":"'*'"registry.test/role":"puller"'*) ;;
  *) echo "no token or no role annotation" >&2; exit 1 ;;
esac
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"10m","auth":{"%s":{"username":"%s","password":"%s"}}}' "${registry.host}" "${grace.username}" "${grace.password}"
`,
  );
  chmodSync(join(bin, 'sa-token-provider'), 0o755);
  writeFileSync(
    join(dir, 'providers.yaml'),
    [
      'apiVersion: kubelet.config.k8s.io/v1',
      'kind: CredentialProviderConfig',
      'providers:',
      '  - name: sa-token-provider',
      `    matchImages: ["${registry.host}"]`,
      '    defaultCacheDuration: 12h',
      '    apiVersion: credentialprovider.kubelet.k8s.io/v1',
      '    tokenAttributes:',
      `      serviceAccountTokenAudience: ${AUDIENCE}`,
      '      requireServiceAccount: true',
      '      requiredServiceAccountAnnotationKeys: [registry.test/role]',
      '      optionalServiceAccountAnnotationKeys: [registry.test/region]',
      '      cacheType: ServiceAccount',
      '',
    ].join('\n'),
  );
  const core = lab.kc().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await core.createNamespacedServiceAccount({
    namespace: NS,
    body: {
      metadata: { name: 'builder', annotations: { 'registry.test/role': 'puller', 'registry.test/region': 'eu' } },
    },
  });
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'plain' } } });
  for (const sa of ['builder', 'plain'])
    writeFileSync(
      join(dir, `${sa}.yaml`),
      [
        'apiVersion: v1',
        'kind: Pod',
        `metadata: {name: app-${sa}, namespace: ${NS}}`,
        'spec:',
        `  serviceAccountName: ${sa}`,
        `  containers: [{name: app, image: "${registry.host}/team/app:1.0"}]`,
        '',
      ].join('\n'),
    );
});

t.teardown(async () => {
  await Promise.all([lab?.stop(), registry?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const runs = () =>
  (() => {
    try {
      return readFileSync(requests, 'utf8').trim().split('\n').filter(Boolean);
    } catch {
      return [];
    }
  })();

async function check(sa: string, extra: string[] = []) {
  const r = await runInProcess(
    runCheck,
    [
      '-f',
      join(dir, `${sa}.yaml`),
      '--kubeconfig',
      lab.kubeconfig,
      '--insecure-registry',
      registry.host,
      '--image-credential-provider-config',
      join(dir, 'providers.yaml'),
      '--image-credential-provider-bin-dir',
      bin,
      '-o',
      'json',
      ...extra,
    ],
    { env: { PATH: process.env.PATH ?? '' } },
  );
  const findings = (r.stdout ? JSON.parse(r.stdout).findings : []) as Record<string, any>[];
  return { ...r, finding: findings[0]! };
}

t.test('a ServiceAccount without the required annotation: the kubelet gets nothing, the pull fails', async (t) => {
  for (const extra of [[], ['--request-service-account-tokens']]) {
    const before = runs().length;
    const { finding, stderr } = await check('plain', extra);
    t.equal(stderr, '', 'no error');
    t.equal(finding.verdict, 'fail', `${extra.join(' ') || 'tokens off'}: fail`);
    t.equal(finding.reason, 'access-denied');
    t.match(
      finding.message,
      'credential provider plugin "sa-token-provider" gives the kubelet nothing: ServiceAccount "plain" in namespace "team" lacks the annotation "registry.test/role" its tokenAttributes require',
    );
    t.equal(runs().length, before, 'the plugin is not run, as the kubelet would not run it');
  }
});

t.test('tokens not allowed: unverifiable, naming the setting that would verify it', async (t) => {
  const before = runs().length;
  const { finding } = await check('builder');
  t.equal(finding.verdict, 'risk');
  t.equal(finding.reason, 'unverifiable');
  const said = `${finding.message} ${finding.evidence.join(' ')}`;
  t.match(said, 'is given a token of ServiceAccount "builder" in namespace "team" (audience "registry.test")');
  t.match(said, 'credentials.serviceAccountTokens: true (check --request-service-account-tokens) would verify it');
  t.equal(runs().length, before, 'no plugin run without the token');
});

t.test('tokens allowed: a token of the pod ServiceAccount for the audience, the plugin runs, ok', async (t) => {
  const before = runs().length;
  const { finding, stdout, stderr } = await check('builder', ['--request-service-account-tokens']);
  t.equal(stderr, '');
  t.equal(finding.verdict, 'ok', finding.message);
  t.equal(finding.reason, 'available');
  const sent = runs().slice(before);
  t.equal(sent.length, 1, 'one plugin run');
  const request = JSON.parse(sent[0]!) as Record<string, any>;
  t.equal(request.kind, 'CredentialProviderRequest');
  t.equal(request.image, `${registry.host}/team/app`);
  t.same(
    request.serviceAccountAnnotations,
    { 'registry.test/role': 'puller', 'registry.test/region': 'eu' },
    'the required and the optional annotation, as the kubelet passes them',
  );
  const claims = JSON.parse(Buffer.from(String(request.serviceAccountToken).split('.')[1]!, 'base64url').toString());
  t.same(claims.aud, [AUDIENCE], "the provider's audience");
  t.equal(claims.sub, 'system:serviceaccount:team:builder', "the pod's ServiceAccount");
  t.ok(claims.exp - claims.iat <= 3600, 'short-lived');
  t.notOk(stdout.includes(request.serviceAccountToken), 'the token is not in the output');
  t.notOk(stdout.includes(grace.password), "the plugin's password is not in the output");
});

t.test('without RBAC for serviceaccounts/token: unverifiable, naming the grant', async (t) => {
  // A user with pullguard's own access (get secrets and serviceaccounts), without the opt-in grant.
  const rbac = lab.kc().makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({
    body: {
      metadata: { name: 'reviewer' },
      rules: [{ apiGroups: [''], resources: ['secrets', 'serviceaccounts'], verbs: ['get'] }],
    },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: 'reviewer' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'reviewer' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'reviewer' }],
    },
  });
  const { finding } = await check('builder', [
    '--request-service-account-tokens',
    '--kubeconfig',
    lab.kubeconfigFor('reviewer'),
  ]);
  t.equal(finding.reason, 'unverifiable');
  const said = `${finding.message} ${finding.evidence.join(' ')}`;
  t.match(
    said,
    'cannot create a token of ServiceAccount "builder" in namespace "team" for audience "registry.test": 403',
  );
  t.match(said, 'grant create on serviceaccounts/token');
});
