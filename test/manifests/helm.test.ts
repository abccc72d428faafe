// The Helm chart (charts/pullguard) with a real helm (v4, from the dev dependency's layer): lint,
// template in each certificate mode, the values schema refusing bad values, and what it installs
// against the kustomize base: the same RBAC (= REQUIRED_ACCESS), webhook rules and selectors,
// Deployment hardening and configuration.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { REQUIRED_ACCESS, WATCH_ACCESS, WATCH_LEASE_ACCESS, type ApiAccess } from '../../src/cluster/access.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import { Metrics } from '../../src/server/metrics.ts';
import { k8sTool } from '../helpers/k8s-tools.ts';
import {
  all,
  isNamespaced,
  leaseRuleProblems,
  manifestsDir,
  only,
  parseYamlDocs,
  readYaml,
  renderKustomize,
  repoRoot,
  resolvePort,
  scratch,
  type Obj,
} from './lib.ts';
import { objectProblems } from './schema.ts';
import { registryClientFor } from '../../src/app/build.ts';

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const helm = k8sTool('helm');
const chartDir = join(repoRoot, 'charts', 'pullguard');
const home = scratch(t, 'pullguard-helm-home-');
// helm keeps caches and settings under HOME; give it a scratch one
const helmEnv = {
  ...process.env,
  HELM_CACHE_HOME: join(home, 'cache'),
  HELM_CONFIG_HOME: join(home, 'config'),
  HELM_DATA_HOME: join(home, 'data'),
};

const testCa = `-----BEGIN CERTIFICATE-----
MIIBejCCASGgAwIBAgIUSmGeUtUOPbMnqzbdqYRcmaQ+Ms4wCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIdGVzdC1jYTAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAw
MDBaMBMxETAPBgNVBAMMCHRlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AAQ7
-----END CERTIFICATE-----
`;

/** RBAC rules as sorted "group resource verb" lines; a grant made twice shows twice. */
const expand = (rules: Obj[]) =>
  rules
    .flatMap((r) =>
      (r.apiGroups as string[]).flatMap((g) =>
        (r.resources as string[]).flatMap((res) => (r.verbs as string[]).map((v) => `${g || 'core'} ${res} ${v}`)),
      ),
    )
    .sort();
/** The same lines for a list of src/cluster/access.ts grants. */
const access = (list: readonly ApiAccess[]) =>
  expand(list.map((a) => ({ apiGroups: [a.apiGroup], resources: [a.resource], verbs: [...a.verbs] })));

const MODES: Record<string, Obj> = {
  'cert-manager': {},
  'self-signed': { certificates: { source: 'self-signed' } },
  secret: { certificates: { source: 'secret', existingSecret: 'my-webhook-tls', caBundle: testCa } },
};

function runHelm(args: string[]) {
  return spawnSync(helm, args, { encoding: 'utf8', env: helmEnv, maxBuffer: 64 * 1024 * 1024 });
}

function valuesFile(t: Tap, values: Obj): string {
  const file = join(scratch(t, 'pullguard-values-'), 'values.yaml');
  writeFileSync(file, stringifyYaml(values));
  return file;
}

function template(t: Tap, values: Obj, release = 'pullguard', namespace = 'pullguard') {
  return runHelm([
    'template',
    release,
    chartDir,
    '--namespace',
    namespace,
    '--kube-version',
    '1.36.0',
    '--values',
    valuesFile(t, values),
  ]);
}

function render(t: Tap, values: Obj, release?: string, namespace?: string): Obj[] {
  const r = template(t, values, release, namespace);
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseYamlDocs(r.stdout, 'helm template');
}

const mountedSecret = (dep: Obj) =>
  dep.spec.template.spec.volumes.flatMap((v: Obj) => v.projected?.sources ?? []).find((s: Obj) => s.secret)?.secret
    .name as string;

t.test('helm is the real one', async (t) => {
  const r = runHelm(['version', '--short']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^v4\./, `helm ${r.stdout.trim()}`);
});

t.test('the chart version, its appVersion and package.json agree', async (t) => {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Obj;
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Obj;
  t.equal(chart.version, pkg.version);
  t.equal(chart.appVersion, pkg.version);
});

for (const [mode, values] of Object.entries(MODES)) {
  t.test(`helm lint --strict passes with certificates.source=${mode}`, async (t) => {
    const r = runHelm(['lint', '--strict', chartDir, '--values', valuesFile(t, values)]);
    t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    t.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });
}

/** What every rendering must have, whichever way the certificate arrives. */
function commonChecks(t: Tap, objects: Obj[], ns: string) {
  for (const kind of [
    'ClusterRole',
    'ClusterRoleBinding',
    'ConfigMap',
    'Deployment',
    'PodDisruptionBudget',
    'Service',
    'ServiceAccount',
    'ValidatingWebhookConfiguration',
  ])
    t.equal(all(objects, kind).length, 1, `one ${kind}`);
  for (const o of objects)
    t.same(objectProblems(o, { rendered: true }), [], `${o.kind}/${o.metadata.name} has the required fields`);
  for (const o of objects.filter((o) => isNamespaced(o.kind)))
    t.equal(o.metadata.namespace, ns, `${o.kind}/${o.metadata.name} is in the release namespace`);
  const svc = only(objects, 'Service');
  const vwc = only(objects, 'ValidatingWebhookConfiguration');
  for (const w of vwc.webhooks as Obj[]) {
    t.same(
      { name: w.clientConfig.service.name, namespace: w.clientConfig.service.namespace },
      { name: svc.metadata.name, namespace: ns },
      `${w.name} calls the chart's Service`,
    );
    t.ok(
      w.namespaceSelector.matchExpressions.some(
        (e: Obj) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn' && e.values.includes(ns),
      ),
      `${w.name}: the release namespace is excluded`,
    );
  }
  const dep = only(objects, 'Deployment');
  const cm = only(objects, 'ConfigMap');
  const sources = dep.spec.template.spec.volumes.flatMap((v: Obj) => v.projected?.sources ?? []);
  t.ok(
    sources.some((s: Obj) => s.configMap?.name === cm.metadata.name),
    'the Deployment mounts the ConfigMap',
  );
  const config = validateConfig(parseYaml(cm.data['config.yaml']), 'ConfigMap config.yaml');
  t.pass("the ConfigMap's config.yaml validates with the server's schema");
  return { svc, vwc, dep, config };
}

t.test('helm template, certificates.source=cert-manager (the default)', async (t) => {
  const objects = render(t, MODES['cert-manager']!, 'guard', 'security');
  const { svc, vwc, dep } = commonChecks(t, objects, 'security');
  const annotation = vwc.metadata.annotations?.['cert-manager.io/inject-ca-from'] as string;
  const [certNs, certName] = annotation.split('/');
  t.equal(certNs, 'security', 'inject-ca-from names the release namespace');
  const cert = only(objects, 'Certificate', certName);
  t.equal(cert.spec.secretName, mountedSecret(dep), 'the Certificate writes the Secret the pods mount');
  t.ok(cert.spec.dnsNames.includes(`${svc.metadata.name}.security.svc`), 'for <service>.<namespace>.svc');
  const issuer = only(objects, 'Issuer', cert.spec.issuerRef.name);
  t.ok(issuer.spec.ca, 'signed by a CA Issuer, so renewals keep the caBundle');
  for (const w of vwc.webhooks as Obj[]) t.equal(w.clientConfig.caBundle, undefined, `${w.name}: cainjector fills it`);
  t.equal(all(objects, 'Secret').length, 0, 'no Secret from the chart');
});

t.test('helm template, certificates.source=self-signed: the chart makes the CA and the certificate', async (t) => {
  const objects = render(t, MODES['self-signed']!, 'guard', 'security');
  const { svc, vwc, dep } = commonChecks(t, objects, 'security');
  t.equal(all(objects, 'Certificate').length + all(objects, 'Issuer').length, 0, 'no cert-manager objects');
  t.equal(vwc.metadata.annotations?.['cert-manager.io/inject-ca-from'], undefined, 'no injection annotation');
  const secret = only(objects, 'Secret', mountedSecret(dep));
  t.equal(secret.type, 'kubernetes.io/tls', 'the mounted Secret is rendered, kubernetes.io/tls');
  const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
  t.ok(cert.checkHost(`${svc.metadata.name}.security.svc`), 'the certificate is for the name the API server dials');
  const bundles = new Set((vwc.webhooks as Obj[]).map((w) => w.clientConfig.caBundle));
  t.equal(bundles.size, 1, 'every webhook trusts the same CA');
  const ca = new X509Certificate(Buffer.from([...bundles][0], 'base64').toString());
  t.ok(ca.ca, 'the caBundle is a CA');
  t.ok(cert.verify(ca.publicKey), "the caBundle's CA signed the served certificate (made once per render)");
  t.equal(Buffer.from(secret.data['ca.crt'], 'base64').toString(), ca.toString(), 'the Secret keeps ca.crt');
});

t.test('helm template, certificates.source=secret: an existing Secret and its CA', async (t) => {
  const objects = render(t, MODES.secret!);
  const { vwc, dep } = commonChecks(t, objects, 'pullguard');
  t.equal(mountedSecret(dep), 'my-webhook-tls', 'the pods mount the named Secret');
  t.equal(all(objects, 'Secret').length + all(objects, 'Certificate').length, 0, 'the chart makes none');
  for (const w of vwc.webhooks as Obj[])
    t.equal(Buffer.from(w.clientConfig.caBundle, 'base64').toString(), testCa, `${w.name}: caBundle is the given CA`);
});

t.test('RBAC, webhooks and the Deployment equal the kustomize base', async (t) => {
  const chart = render(t, { namespace: { create: true } });
  const base = renderKustomize(manifestsDir);

  const required = access(REQUIRED_ACCESS);
  t.same(expand(only(chart, 'ClusterRole').rules), required, "the chart's ClusterRole grants exactly REQUIRED_ACCESS");
  t.same(expand(only(base, 'ClusterRole').rules), required, "kustomize's too");
  t.same(only(chart, 'ClusterRole').rules, only(base, 'ClusterRole').rules, 'rule for rule the same');
  const roles = chart.filter((o) => /Role/.test(o.kind)).map((o) => o.kind);
  t.same(roles.sort(), ['ClusterRole', 'ClusterRoleBinding'], 'nothing else grants anything');
  const binding = only(chart, 'ClusterRoleBinding');
  t.same(
    binding.subjects,
    [{ kind: 'ServiceAccount', name: only(chart, 'ServiceAccount').metadata.name, namespace: 'pullguard' }],
    "the binding gives it to the chart's ServiceAccount",
  );
  t.equal(only(chart, 'Deployment').spec.template.spec.serviceAccountName, binding.subjects[0].name);

  const chartHooks = only(chart, 'ValidatingWebhookConfiguration').webhooks as Obj[];
  const baseHooks = only(base, 'ValidatingWebhookConfiguration').webhooks as Obj[];
  t.same(
    chartHooks.map((w) => w.name),
    baseHooks.map((w) => w.name),
    'the same four webhooks, in order',
  );
  for (const [i, w] of chartHooks.entries()) {
    const b = baseHooks[i]!;
    t.same(w.rules, b.rules, `${w.name}: the same rules`);
    t.same(w.namespaceSelector, b.namespaceSelector, `${w.name}: the same namespaceSelector`);
    for (const key of [
      'matchPolicy',
      'matchConditions',
      'sideEffects',
      'admissionReviewVersions',
      'failurePolicy',
      'timeoutSeconds',
    ])
      t.same(w[key], b[key], `${w.name}: the same ${key}`);
    t.same(
      { path: w.clientConfig.service.path, port: w.clientConfig.service.port },
      { path: b.clientConfig.service.path, port: b.clientConfig.service.port },
      `${w.name}: the same path and port`,
    );
  }

  t.same(
    only(chart, 'Namespace').metadata.labels['pod-security.kubernetes.io/enforce'],
    only(base, 'Namespace').metadata.labels['pod-security.kubernetes.io/enforce'],
    'namespace.create: the same Pod Security label',
  );
  t.equal(only(chart, 'Namespace').metadata.labels['pullguard.io/mode'], 'off');
  const cDep = only(chart, 'Deployment');
  const bDep = only(base, 'Deployment');
  const cPod = cDep.spec.template.spec;
  const bPod = bDep.spec.template.spec;
  t.equal(cDep.spec.replicas, bDep.spec.replicas, 'replicas');
  t.same(cDep.spec.strategy, bDep.spec.strategy, 'rollout strategy');
  t.same(cPod.securityContext, bPod.securityContext, 'pod security context');
  for (const key of [
    'securityContext',
    'resources',
    'readinessProbe',
    'livenessProbe',
    'ports',
    'args',
    'volumeMounts',
  ])
    t.same(cPod.containers[0][key], bPod.containers[0][key], `container ${key}`);
  t.same(
    cPod.topologySpreadConstraints.map((c: Obj) => [c.topologyKey, c.maxSkew, c.whenUnsatisfiable]),
    bPod.topologySpreadConstraints.map((c: Obj) => [c.topologyKey, c.maxSkew, c.whenUnsatisfiable]),
    'topology spread',
  );
  t.same(only(chart, 'PodDisruptionBudget').spec.minAvailable, only(base, 'PodDisruptionBudget').spec.minAvailable);
  t.same(only(chart, 'Service').spec.ports, only(base, 'Service').spec.ports, 'the Service exposes the same ports');
  const cfg = (objects: Obj[]) => validateConfig(parseYaml(only(objects, 'ConfigMap').data['config.yaml']));
  t.same(cfg(chart), cfg(base), 'the same effective configuration');
  t.same(
    [...new Set(base.map((o) => o.kind))].filter((k) => !all(chart, k).length),
    [],
    'every kind the kustomize default installs, the chart installs too',
  );
});

t.test('values: image by digest, replicas, resources, priority, webhook selectors and conditions', async (t) => {
  const digest = `sha256:${'a'.repeat(64)}`;
  const objects = render(t, {
    image: { repository: 'registry.example/pg', tag: '9.9.9', digest },
    replicas: 3,
    resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { memory: '512Mi' } },
    priorityClassName: 'system-cluster-critical',
    topologySpreadConstraints: [
      { maxSkew: 2, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' },
    ],
    podDisruptionBudget: { enabled: true, minAvailable: 2 },
    webhook: {
      failurePolicy: 'Fail',
      timeoutSeconds: 15,
      excludeNamespaces: ['platform'],
      namespaceSelector: { matchLabels: { team: 'apps' } },
      objectSelector: { matchExpressions: [{ key: 'pullguard.io/skip', operator: 'DoesNotExist' }] },
      matchConditions: [{ name: 'no-nodes', expression: "!request.userInfo.username.startsWith('system:node:')" }],
    },
    mode: 'enforce',
    deadline: '12s',
    config: { registry: { insecure: ['registry.internal:5000'] } },
  });
  const dep = only(objects, 'Deployment');
  const pod = dep.spec.template.spec;
  t.equal(pod.containers[0].image, `registry.example/pg:9.9.9@${digest}`, 'repository:tag@digest');
  t.equal(dep.spec.replicas, 3);
  t.same(pod.containers[0].resources.requests, { cpu: '200m', memory: '256Mi' });
  t.equal(pod.priorityClassName, 'system-cluster-critical');
  t.equal(pod.topologySpreadConstraints.length, 1, 'the spread is replaced as a whole');
  t.same(
    pod.topologySpreadConstraints[0].labelSelector.matchLabels,
    dep.spec.selector.matchLabels,
    "and still counts pullguard's pods",
  );
  t.equal(only(objects, 'PodDisruptionBudget').spec.minAvailable, 2);
  for (const w of only(objects, 'ValidatingWebhookConfiguration').webhooks as Obj[]) {
    t.equal(w.failurePolicy, 'Fail');
    t.equal(w.timeoutSeconds, 15);
    t.same(w.namespaceSelector.matchLabels, { team: 'apps' }, `${w.name}: namespaceSelector matchLabels`);
    t.same(w.namespaceSelector.matchExpressions[0].values, ['kube-system', 'pullguard', 'platform']);
    t.equal(w.namespaceSelector.matchExpressions[1].key, 'pullguard.io/mode', 'the mode expression stays');
    t.same(w.objectSelector.matchExpressions[0].key, 'pullguard.io/skip');
    t.same(
      w.matchConditions.map((c: Obj) => c.name),
      ['images-changed', 'no-nodes'],
      `${w.name}: the chart's images-changed condition, then the given ones`,
    );
  }
  const config = validateConfig(parseYaml(only(objects, 'ConfigMap').data['config.yaml']));
  t.equal(config.mode, 'enforce');
  t.equal(config.deadline, 12_000);
  t.same(config.registry.insecure, ['registry.internal:5000'], 'config: merged in');
});

t.test('serviceAccountTokens.enabled: exactly SERVICE_ACCOUNT_TOKEN_ACCESS, and the setting on', async (t) => {
  const off = render(t, {});
  t.notOk(
    off.some((o) => o.kind === 'ClusterRole' && /service-account-tokens/.test(o.metadata.name)),
    'off by default: no grant',
  );
  const on = render(t, { serviceAccountTokens: { enabled: true } });
  const role = on.find((o) => o.kind === 'ClusterRole' && /service-account-tokens$/.test(o.metadata.name))!;
  const component = readYaml(join(manifestsDir, 'components', 'service-account-tokens', 'rbac.yaml'));
  t.same(role.rules, only(component, 'ClusterRole').rules, 'the same rules as the kustomize component');
  const env = only(on, 'Deployment').spec.template.spec.containers[0].env as Obj[];
  t.same(env, [{ name: 'PULLGUARD_CREDENTIALS_SERVICE_ACCOUNT_TOKENS', value: 'true' }]);
});

t.test('webhook.skipUnchangedImages: false leaves updates that change no image to the webhook', async (t) => {
  const on = only(render(t, {}), 'ValidatingWebhookConfiguration').webhooks as Obj[];
  for (const w of on)
    t.same(
      w.matchConditions.map((c: Obj) => c.name),
      ['images-changed'],
      `${w.name}: on by default`,
    );
  const off = only(render(t, { webhook: { skipUnchangedImages: false } }), 'ValidatingWebhookConfiguration')
    .webhooks as Obj[];
  for (const w of off) t.equal(w.matchConditions, undefined, `${w.name}: no condition`);
});

t.test('the values schema refuses bad values, naming the field', async (t) => {
  const bad: [string, Obj, RegExp][] = [
    ['an unknown mode', { mode: 'sometimes' }, /mode/],
    ['negative replicas', { replicas: -1 }, /replicas/],
    ['an unknown certificate source', { certificates: { source: 'vault' } }, /certificates\.source|source/],
    ['source secret without its Secret and CA', { certificates: { source: 'secret' } }, /existingSecret|caBundle/],
    ['a digest that is not sha256', { image: { digest: 'md5:abc' } }, /digest/],
    ['an unknown failurePolicy', { webhook: { failurePolicy: 'Never' } }, /failurePolicy/],
    ['a timeout over 30 s', { webhook: { timeoutSeconds: 31 } }, /timeoutSeconds/],
    ['a metrics port out of range', { metrics: { port: 70000 } }, /port/],
    ['a metrics port equal to the webhook port', { metrics: { port: 8443 } }, /port/],
    ['an unknown key', { replicaCount: 2 }, /replicaCount/],
    ['a misspelled nested key', { webhook: { failurepolicy: 'Fail' } }, /failurepolicy/],
    ['matchConditions without an expression', { webhook: { matchConditions: [{ name: 'x' }] } }, /expression/],
  ];
  for (const [what, values, names] of bad) {
    const r = template(t, values);
    t.not(r.status, 0, `${what}: refused`);
    t.match(r.stderr, /values don't meet the specifications of the schema|schema/, `${what}: by the schema`);
    t.match(r.stderr, names, `${what}: names the field`);
  }
  const late = template(t, { deadline: '10s', webhook: { timeoutSeconds: 10 } });
  t.not(late.status, 0, 'a deadline not under timeoutSeconds: refused');
  t.match(late.stderr, /deadline \(10s\) must be shorter than webhook\.timeoutSeconds \(10 s\)/);
});

t.test('the metrics port: configuration, container, Service, NetworkPolicy and ServiceMonitor agree', async (t) => {
  const objects = render(t, {
    metrics: { port: 9191, serviceMonitor: { enabled: true }, prometheusRule: { enabled: true } },
    networkPolicy: { enabled: true },
  });
  const dep = only(objects, 'Deployment');
  const container = dep.spec.template.spec.containers[0];
  const config = validateConfig(parseYaml(only(objects, 'ConfigMap').data['config.yaml']));
  t.equal(config.server.metricsPort, 9191, 'server.metricsPort');
  t.equal(resolvePort(container, 'metrics'), 9191, 'the container port "metrics"');
  t.equal(resolvePort(container, 'https'), config.server.port, 'the container port "https" is server.port');
  const svc = only(objects, 'Service');
  const svcPort = (svc.spec.ports as Obj[]).find((p) => p.name === 'metrics');
  t.same([svcPort?.port, svcPort?.targetPort], [9191, 'metrics'], 'the Service port "metrics"');

  const monitor = only(objects, 'ServiceMonitor');
  t.same(
    monitor.spec.endpoints.map((e: Obj) => [e.port, e.scheme, e.path]),
    [['metrics', 'http', '/metrics']],
  );
  t.ok(
    Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => svc.metadata.labels[k] === v),
    'the ServiceMonitor selects the Service',
  );

  const np = only(objects, 'NetworkPolicy');
  t.same(np.spec.podSelector.matchLabels, dep.spec.selector.matchLabels, "the NetworkPolicy holds pullguard's pods");
  t.same(np.spec.policyTypes, ['Ingress', 'Egress']);
  const ingressPorts = (np.spec.ingress as Obj[]).map((r) => r.ports.map((p: Obj) => resolvePort(container, p.port)));
  t.same(ingressPorts, [[config.server.port], [9191]], 'ingress: the webhook port, then the metrics port');
  t.same(np.spec.ingress[1].from, [
    { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
  ]);
  const egress = (np.spec.egress as Obj[]).map((r) => r.ports.map((p: Obj) => `${p.protocol}/${p.port}`));
  t.same(egress[0], ['UDP/53', 'TCP/53'], 'egress: DNS');
  t.same(egress[1], ['TCP/443', 'TCP/6443'], 'egress: the Kubernetes API');
  t.same(egress[2], ['TCP/443', 'TCP/80', 'TCP/5000'], 'egress: registries');

  const rule = only(objects, 'PrometheusRule');
  const alerts = rule.spec.groups[0].rules as Obj[];
  t.same(
    alerts.map((a) => a.alert),
    [
      'PullguardDenialsRising',
      'PullguardRegistriesUnreachable',
      'PullguardRateLimitLow',
      'PullguardReviewsNearDeadline',
      'PullguardNoReadyReplica',
    ],
  );
  // every pullguard_* series an alert reads is one the server exports
  const metrics = new Metrics();
  const engineConfig = validateConfig({});
  const engine = new Preflight(engineConfig, registryClientFor(engineConfig));
  t.teardown(() => engine.close());
  metrics.observeEngine(engine);
  const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
  for (const a of alerts) {
    for (const name of a.expr.match(/pullguard_[a-z_]+/g) ?? []) {
      const series = name.replace(/_(bucket|sum|count)$/, '');
      t.ok(exported.has(series), `${a.alert}: ${series} is exported`);
    }
    t.ok(a.annotations?.summary, `${a.alert} has a summary`);
  }
  t.match(
    alerts.find((a) => a.alert === 'PullguardReviewsNearDeadline')?.expr,
    /> 6\.4\s*$/,
    '"near the deadline" is 80 % of the 8 s deadline',
  );
});

t.test('watch.enabled: its RBAC (exactly WATCH_ACCESS), its configuration, POD_NAME and alerts', async (t) => {
  const off = render(t, {});
  t.notOk(
    off.some((o) => /watch/.test(o.metadata?.name ?? '')),
    'off by default: no watch RBAC',
  );
  const on = render(
    t,
    {
      watch: {
        enabled: true,
        interval: '5m',
        registryBudget: 20,
        roundBudget: 300,
        eventsPerNamespace: 7,
        maxSeries: 900,
      },
      metrics: { prometheusRule: { enabled: true }, serviceMonitor: { enabled: true } },
    },
    'pg',
    'guard',
  );
  t.same(expand(only(on, 'ClusterRole', 'pg-pullguard-watch').rules), access(WATCH_ACCESS), 'WATCH_ACCESS');
  const role = only(on, 'Role');
  t.equal(role.metadata.namespace, 'guard', 'the Lease role in the release namespace');
  t.same(expand(role.rules), access(WATCH_LEASE_ACCESS), 'WATCH_LEASE_ACCESS');
  t.same(leaseRuleProblems(role, 'pg-pullguard-watch'), [], 'get and update only on its own Lease');
  const kustomize = readYaml(join(manifestsDir, 'components', 'watch', 'rbac.yaml'));
  t.same(only(on, 'ClusterRole', 'pg-pullguard-watch').rules, only(kustomize, 'ClusterRole').rules, 'as kustomize');
  for (const kind of ['ClusterRoleBinding', 'RoleBinding'])
    t.same(
      on.filter((o) => o.kind === kind && /watch/.test(o.metadata.name)).map((o) => o.subjects),
      [[{ kind: 'ServiceAccount', name: only(on, 'ServiceAccount').metadata.name, namespace: 'guard' }]],
      `${kind}: the chart's ServiceAccount`,
    );
  const config = parseYaml(only(on, 'ConfigMap').data['config.yaml']) as Obj;
  t.same(config.watch, {
    enabled: true,
    interval: '5m',
    eventInterval: '1m',
    registryBudget: 20,
    roundBudget: 300,
    eventsPerNamespace: 7,
    maxSeries: 900,
    leaseNamespace: 'guard',
    leaseName: 'pg-pullguard-watch',
  });
  t.doesNotThrow(() => validateConfig(config), 'a configuration serve accepts');
  const env = only(on, 'Deployment').spec.template.spec.containers[0].env as Obj[];
  t.same(env.find((e) => e.name === 'POD_NAME')?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
  const rules = (only(on, 'PrometheusRule').spec.groups[0].rules as Obj[]).map((r) => r.alert);
  t.ok(rules.includes('PullguardWorkloadImageNotPullable'), 'the alert on pullable == 0');
  t.equal(only(on, 'ServiceMonitor').spec.endpoints[0].honorLabels, true, "the workloads' namespace label is kept");
});

t.test('watch.leaseName: the Lease Role gets and updates that Lease only, also in kube-system', async (t) => {
  for (const [values, release, leaseName] of [
    [{ watch: { enabled: true, leaseName: 'edge-leader' } }, 'pullguard', 'edge-leader'],
    [{ watch: { enabled: true } }, 'pullguard', 'pullguard-watch'],
    [{ watch: { enabled: true } }, 'edge', 'edge-pullguard-watch'],
  ] as const) {
    const on = render(t, values, release, 'kube-system');
    const role = only(on, 'Role');
    t.equal(role.metadata.namespace, 'kube-system');
    t.same(leaseRuleProblems(role, leaseName), [], `${leaseName}: get and update by name, create alone`);
    t.notOk(
      (role.rules as Obj[]).some((r) => r.resourceNames === undefined && r.verbs.some((v: string) => v !== 'create')),
      `${leaseName}: kube-scheduler's and kube-controller-manager's leases out of reach`,
    );
    const config = parseYaml(only(on, 'ConfigMap').data['config.yaml']) as Obj;
    t.equal(validateConfig(config).watch.leaseName, leaseName, `${leaseName}: the Lease the configuration names`);
  }
  const bad = template(t, { watch: { enabled: true, leaseName: 'Not a name' } });
  t.not(bad.status, 0, 'a lease name that is no object name is refused');
  t.match(bad.stderr, 'leaseName');
});

t.test("values: nodeRegistries mounts the nodes' files where the configuration reads them", async (t) => {
  const hostsObjects = render(t, {
    nodeRegistries: { hostsDir: { configMap: 'node-certs', hosts: ['docker.io', '_default'] } },
  });
  const config = parseYaml(only(hostsObjects, 'ConfigMap').data['config.yaml']);
  t.equal(config.registry.hostsDir, '/etc/pullguard-nodes/certs.d');
  t.ok(validateConfig(config), 'the configuration is valid');
  const spec = only(hostsObjects, 'Deployment').spec.template.spec;
  const mount = spec.containers[0].volumeMounts.find((m: Obj) => m.name === 'node-registries');
  t.same(mount, { name: 'node-registries', mountPath: '/etc/pullguard-nodes', readOnly: true });
  t.same(spec.volumes.find((v: Obj) => v.name === 'node-registries').configMap, {
    name: 'node-certs',
    items: [
      { key: 'docker.io', path: 'certs.d/docker.io/hosts.toml' },
      { key: '_default', path: 'certs.d/_default/hosts.toml' },
    ],
  });
  const crio = render(t, { nodeRegistries: { registriesConf: { configMap: 'crio-registries' } } });
  const crioConfig = parseYaml(only(crio, 'ConfigMap').data['config.yaml']);
  t.equal(crioConfig.registry.registriesConf, '/etc/pullguard-nodes/containers/registries.conf');
  t.equal(crioConfig.nodes.runtime, 'cri-o');
  const both = template(t, {
    nodeRegistries: { hostsDir: { configMap: 'a', hosts: ['docker.io'] }, registriesConf: { configMap: 'b' } },
  });
  t.not(both.status, 0, 'both at once is refused');
  t.match(both.stderr, /the one your nodes' runtime reads/);
});
