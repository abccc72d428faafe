// What `kubectl apply -k` would send: kustomize's rendering of manifests/ (= the cert-manager
// overlay) and of the plain overlay after certs/gen.sh, with the install steps of docs/operating.md.
// (`kubectl apply --dry-run=client` needs a reachable API server for discovery, so the rendering
// is checked with `kubectl kustomize`, the renderer `apply -k` uses.)
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODES, validateConfig } from '../../src/config/schema.ts';
import { HostsDir } from '../../src/registry/hosts-dir.ts';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import {
  all,
  isNamespaced,
  manifestsDir,
  only,
  renderKustomize,
  renderPlainOverlay,
  repoRoot,
  scratch,
  type Obj,
} from './lib.ts';
import { objectProblems } from './schema.ts';
import { WEBHOOK_NAME } from '../../src/admission/kinds.ts';

// the subtest type (t.test's last overload takes only the callback)
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const BASE_KINDS = [
  'ClusterRole',
  'ClusterRoleBinding',
  'ConfigMap',
  'Deployment',
  'Namespace',
  'PodDisruptionBudget',
  'Service',
  'ServiceAccount',
  'ValidatingWebhookConfiguration',
];

/** Checks every rendering must pass, whichever way the certificate arrives. */
async function commonChecks(t: Tap, objects: Obj[]) {
  for (const kind of BASE_KINDS) t.equal(all(objects, kind).length, 1, `one ${kind}`);
  for (const o of objects)
    t.same(objectProblems(o, { rendered: true }), [], `${o.kind}/${o.metadata.name} has the required fields`);

  const ns = only(objects, 'Namespace').metadata.name as string;
  for (const o of objects.filter((o) => isNamespaced(o.kind)))
    t.equal(o.metadata.namespace, ns, `${o.kind}/${o.metadata.name} is in ${ns}`);
  for (const o of objects) t.match(o.metadata.name, /^pullguard/, `${o.kind}/${o.metadata.name} is named pullguard…`);

  const sa = only(objects, 'ServiceAccount');
  const binding = only(objects, 'ClusterRoleBinding');
  t.same(
    binding.subjects,
    [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: ns }],
    'the binding names the ServiceAccount in its namespace',
  );

  const vwc = only(objects, 'ValidatingWebhookConfiguration');
  const webhooks = vwc.webhooks as Obj[];
  const svc = only(objects, 'Service');
  const cm = only(objects, 'ConfigMap');
  const config = validateConfig(parseYaml(cm.data['config.yaml']), 'ConfigMap config.yaml');
  const expected = new Map([
    [WEBHOOK_NAME, '/validate'],
    ...MODES.map((m): [string, string] => [`${m}.${WEBHOOK_NAME}`, `/validate/${m}`]),
  ]);
  t.same(
    webhooks.map((w) => w.name),
    [...expected.keys()],
    'four webhooks: the default, then enforce, warn, audit (a patch that missed a name would add a fifth)',
  );
  for (const w of webhooks) {
    t.same(
      w.clientConfig.service,
      { name: svc.metadata.name, namespace: ns, path: expected.get(w.name), port: 443 },
      `${w.name} calls the Service at ${expected.get(w.name)}`,
    );
    t.ok(
      w.namespaceSelector.matchExpressions.some(
        (e: Obj) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn' && e.values.includes(ns),
      ),
      `${w.name}: its own namespace is excluded`,
    );
    t.equal(w.rules.length, webhooks[0]!.rules.length, `${w.name}: the rules survived rendering (anchors expanded)`);
  }

  const dep = only(objects, 'Deployment');
  t.pass("the ConfigMap's config.yaml validates with validateConfig");
  t.equal(config.mode, 'warn', 'shipped in warn mode');
  t.equal(WEBHOOK_NAME, webhooks[0]!.name, "WEBHOOK_NAME is the default webhook's name");
  const sources = dep.spec.template.spec.volumes.flatMap((v: Obj) => v.projected?.sources ?? []);
  t.ok(
    sources.some((s: Obj) => s.configMap?.name === cm.metadata.name),
    `the Deployment mounts the generated ConfigMap ${cm.metadata.name}`,
  );
  t.match(
    dep.spec.template.spec.containers[0].image,
    /^[a-z0-9.\-/]+\/pullguard:\d+\.\d+\.\d+$/,
    'a full, versioned image reference',
  );
  return { ns, vwc, dep, svc };
}

t.test('manifests/ (the default install) renders with cert-manager', async (t) => {
  const top = renderKustomize(manifestsDir);
  const overlay = renderKustomize(join(manifestsDir, 'overlays', 'cert-manager'));
  t.same(top, overlay, '`kubectl apply -k manifests/` installs the cert-manager overlay');
  const { ns, vwc, dep, svc } = await commonChecks(t, top);

  const annotation = vwc.metadata.annotations?.['cert-manager.io/inject-ca-from'] as string | undefined;
  t.ok(annotation, 'cainjector is asked to fill the caBundle');
  const [certNs, certName] = (annotation ?? '/').split('/');
  t.equal(certNs, ns, 'inject-ca-from names the install namespace');
  const cert = only(top, 'Certificate', certName);
  t.equal(cert.metadata.namespace, ns);
  const secretName = dep.spec.template.spec.volumes
    .flatMap((v: Obj) => v.projected?.sources ?? [])
    .find((s: Obj) => s.secret)?.secret.name;
  t.equal(cert.spec.secretName, secretName, 'the Certificate writes the Secret the pods mount');
  t.ok(
    cert.spec.dnsNames.includes(`${svc.metadata.name}.${ns}.svc`),
    'the certificate names <service>.<namespace>.svc, which the API server dials',
  );
  t.ok(cert.spec.usages?.includes('server auth'), 'for server auth');
  const issuer = only(top, 'Issuer', cert.spec.issuerRef.name);
  t.ok(issuer.spec.ca, 'signed by a CA Issuer, so renewals keep the caBundle');
  const ca = all(top, 'Certificate').find((o) => o.spec.secretName === issuer.spec.ca.secretName);
  t.equal(ca?.spec.isCA, true, 'whose CA is a cert-manager Certificate');
  t.ok(only(top, 'Issuer', ca?.spec.issuerRef.name).spec.selfSigned, 'issued by a selfSigned Issuer');
  for (const w of vwc.webhooks as Obj[])
    t.equal(
      w.clientConfig.caBundle,
      undefined,
      `${w.name}: no caBundle in the manifests (cainjector fills every webhook's)`,
    );
});

t.test('manifests/overlays/plain renders after certs/gen.sh', async (t) => {
  const objects = renderPlainOverlay(t);
  const { ns, vwc, dep, svc } = await commonChecks(t, objects);
  t.equal(all(objects, 'Certificate').length + all(objects, 'Issuer').length, 0, 'no cert-manager objects');
  const secretName = dep.spec.template.spec.volumes
    .flatMap((v: Obj) => v.projected?.sources ?? [])
    .find((s: Obj) => s.secret)?.secret.name;
  const secret = only(objects, 'Secret', secretName);
  t.equal(secret.type, 'kubernetes.io/tls');
  const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
  t.ok(
    cert.checkHost(`${svc.metadata.name}.${ns}.svc`),
    "the Secret's certificate is for the name the API server dials",
  );
  for (const w of vwc.webhooks as Obj[]) {
    t.ok(w.clientConfig.caBundle, `${w.name} has a caBundle`);
    const ca = new X509Certificate(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString());
    t.ok(cert.verify(ca.publicKey), `${w.name}: the caBundle's CA signed the served certificate`);
  }
});

t.test('the failurePolicy: Fail patch in docs/operating.md switches every webhook', async (t) => {
  const doc = readFileSync(join(repoRoot, 'docs', 'operating.md'), 'utf8');
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .filter((b) => b.includes('failurePolicy'));
  t.equal(blocks.length, 1, 'the docs show one failurePolicy patch');
  const patches = (parseYaml(blocks[0] ?? '') as Obj | null)?.patches as Obj[] | undefined;
  t.ok(Array.isArray(patches) && patches.length > 0, 'it is a kustomization `patches:` list');
  // an overlay of the default install with the documented patch, in a copy of manifests/
  const dir = scratch(t);
  cpSync(manifestsDir, join(dir, 'manifests'), { recursive: true });
  const overlay = join(dir, 'manifests', 'overlays', 'fail-closed');
  mkdirSync(overlay);
  writeFileSync(
    join(overlay, 'kustomization.yaml'),
    stringifyYaml({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: ['../cert-manager'],
      patches,
    }),
  );
  const before = only(
    renderKustomize(join(dir, 'manifests', 'overlays', 'cert-manager')),
    'ValidatingWebhookConfiguration',
  );
  const after = only(renderKustomize(overlay), 'ValidatingWebhookConfiguration');
  t.equal(after.webhooks.length, before.webhooks.length, 'no webhook added or lost');
  for (const w of after.webhooks as Obj[]) t.equal(w.failurePolicy, 'Fail', `${w.name}: failurePolicy Fail`);
  const withoutPolicy = (v: Obj) => (v.webhooks as Obj[]).map((w) => ({ ...w, failurePolicy: undefined }));
  t.same(withoutPolicy(after), withoutPolicy(before), 'and nothing else changed');
});

t.test('overlays/watch: the cert-manager install plus the watch RBAC, switched on', async (t) => {
  const objects = renderKustomize(join(manifestsDir, 'overlays', 'watch'));
  const plain = renderKustomize(join(manifestsDir, 'overlays', 'cert-manager'));
  const key = (o: Obj) => `${o.kind}/${o.metadata.name}`;
  const added = objects.filter((o) => !plain.some((p) => key(p) === key(o))).map(key);
  t.same(added.sort(), [
    'ClusterRole/pullguard-watch',
    'ClusterRoleBinding/pullguard-watch',
    'Role/pullguard-watch-lease',
    'RoleBinding/pullguard-watch-lease',
  ]);
  const ns = only(plain, 'Namespace').metadata.name as string;
  for (const o of objects.filter((o) => added.includes(key(o)))) {
    t.equal(o.metadata.labels?.['app.kubernetes.io/part-of'], 'pullguard', `${key(o)} is labelled`);
    if (o.kind.endsWith('Binding')) t.equal(o.subjects[0].namespace, ns, `${key(o)} binds pullguard's ServiceAccount`);
  }
  t.equal(only(objects, 'Role', 'pullguard-watch-lease').metadata.namespace, ns, 'the Lease role in its namespace');
  const dep = only(objects, 'Deployment');
  const env = dep.spec.template.spec.containers[0].env as Obj[];
  t.same(
    env.find((e) => e.name === 'PULLGUARD_WATCH_ENABLED'),
    { name: 'PULLGUARD_WATCH_ENABLED', value: 'true' },
    'the watch is switched on',
  );
  t.same(env.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
  const { env: _env, ...container } = dep.spec.template.spec.containers[0];
  t.same(container, only(plain, 'Deployment').spec.template.spec.containers[0], 'otherwise the same container');
  t.notOk(
    plain.some((o) => o.metadata?.name === 'pullguard-watch'),
    'the default install has no watch RBAC',
  );
});

t.test("components/node-hosts: the nodes' hosts.toml files mounted as containerd lays them out", async (t) => {
  const dir = scratch(t);
  cpSync(manifestsDir, join(dir, 'manifests'), { recursive: true });
  const overlay = join(dir, 'manifests', 'overlays', 'node-hosts');
  mkdirSync(overlay);
  writeFileSync(
    join(overlay, 'kustomization.yaml'),
    'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../cert-manager\ncomponents:\n  - ../../components/node-hosts\n',
  );
  const objects = renderKustomize(overlay);
  const cm = only(objects, 'ConfigMap', 'pullguard-node-hosts');
  const spec = only(objects, 'Deployment').spec.template.spec;
  const env = spec.containers[0].env as Obj[];
  const hostsDir = env.find((e) => e.name === 'PULLGUARD_REGISTRY_HOSTS_DIR')?.value as string;
  t.equal(hostsDir, '/etc/pullguard-nodes/certs.d');
  const volume = spec.volumes.find((v: Obj) => v.name === 'node-hosts');
  t.equal(volume.configMap.name, cm.metadata.name, 'the volume names the generated ConfigMap');
  // lay the ConfigMap out as the kubelet mounts it, and read it as pullguard does
  const mounted = join(dir, 'mounted');
  for (const item of volume.configMap.items as Obj[]) {
    const file = join(mounted, item.path as string);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, cm.data[item.key as string] as string);
  }
  t.ok(hostsDir.endsWith('/certs.d'));
  const read = new HostsDir(join(mounted, 'certs.d'));
  t.same(read.warnings, []);
  t.same(
    read.endpointsFor('docker.io').map((e) => [e.host, e.upstream]),
    [
      ['mirror.internal:5000', false],
      ['registry-1.docker.io', true],
    ],
  );
});
