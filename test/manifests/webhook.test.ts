// The ValidatingWebhookConfiguration against the code: the rules cover exactly the kinds the
// admission code reads (src/admission/kinds.ts), and its settings agree with the configuration.
import t from 'tap';
import { join } from 'node:path';
import { POD_SPEC_KINDS, REVIEWED_SUBRESOURCES } from '../../src/admission/kinds.ts';
import { loadConfig } from '../../src/config.ts';
import { baseDir, baseObjects, only, readYaml, type Obj } from './lib.ts';

const objects = baseObjects();
const vwc = only(objects, 'ValidatingWebhookConfiguration');
const webhooks = vwc.webhooks as Obj[];
const webhook = webhooks[0]!;
const config = loadConfig({ file: join(baseDir, 'config.yaml'), env: {} });
const namespace = readYaml(join(baseDir, 'kustomization.yaml'))[0]!.namespace as string;

/** One line per (group, version, resource, operation, scope), the unit the API server matches on. */
function expand(rules: Obj[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const g of r.apiGroups) for (const v of r.apiVersions) for (const res of r.resources) for (const op of r.operations) {
      out.add(`${g || 'core'}/${v} ${res} ${op} ${r.scope ?? '*'}`);
    }
  }
  return [...out].sort();
}

t.test('one webhook, named as the server names itself', async (t) => {
  t.equal(webhooks.length, 1, 'a single webhook entry');
  t.equal(webhook.name, config.server.webhookName, 'webhooks[0].name == config server.webhookName (used in auditAnnotations keys)');
  t.equal(vwc.metadata.name, 'pullguard');
});

t.test('rules == POD_SPEC_KINDS (CREATE, UPDATE) + REVIEWED_SUBRESOURCES', async (t) => {
  const expected = new Set<string>();
  for (const k of POD_SPEC_KINDS) for (const op of ['CREATE', 'UPDATE']) expected.add(`${k.apiGroup || 'core'}/${k.apiVersion} ${k.resource} ${op} Namespaced`);
  for (const s of REVIEWED_SUBRESOURCES) for (const op of s.operations) expected.add(`${s.apiGroup || 'core'}/v1 ${s.resource} ${op} Namespaced`);
  const actual = expand(webhook.rules as Obj[]);
  t.same(actual, [...expected].sort(), 'the webhook rules and src/admission/kinds.ts list the same resources and operations');
  // The same, said the other way round, so a failure names what to add or remove.
  for (const e of expected) t.ok(actual.includes(e), `rule present: ${e}`);
  for (const a of actual) t.ok(expected.has(a), `rule expected by the code: ${a}`);
  t.notOk(actual.some((a) => a.includes('*')), 'no wildcards');
  t.notOk(actual.some((a) => / (DELETE|CONNECT) /.test(a)), 'no DELETE or CONNECT (nothing to pull)');
  t.ok(actual.includes('core/v1 pods/ephemeralcontainers UPDATE Namespaced'), 'kubectl debug (ephemeral containers) is reviewed');
});

t.test('settings that keep the cluster safe', async (t) => {
  t.equal(webhook.failurePolicy, 'Ignore', 'failurePolicy Ignore: an outage of pullguard never blocks deployments');
  t.equal(webhook.sideEffects, 'None', 'sideEffects None: dry-run requests are reviewed too');
  t.same(webhook.admissionReviewVersions, ['v1']);
  t.equal(webhook.matchPolicy, 'Equivalent');
  t.equal(webhook.objectSelector, undefined, 'no objectSelector (users could bypass it with labels)');
  const timeoutMs = (webhook.timeoutSeconds as number) * 1000;
  t.ok(webhook.timeoutSeconds >= 1 && webhook.timeoutSeconds <= 30, 'timeoutSeconds within the API limits');
  t.ok(timeoutMs > config.deadline, `timeoutSeconds (${webhook.timeoutSeconds}s) above the server deadline (${config.deadline}ms), so pullguard answers first`);
  t.ok(timeoutMs - config.deadline >= 1000 && timeoutMs - config.deadline <= 5000, 'a little above: 1 to 5 seconds of margin');
});

t.test('the webhook calls the Service on its HTTPS port', async (t) => {
  const svc = only(objects, 'Service', webhook.clientConfig.service.name);
  const dep = only(objects, 'Deployment');
  const container = dep.spec.template.spec.containers[0];
  t.equal(webhook.clientConfig.url, undefined, 'service reference, not a URL');
  t.equal(webhook.clientConfig.service.path, '/validate');
  const port = (svc.spec.ports as Obj[]).find((p) => p.port === (webhook.clientConfig.service.port ?? 443));
  t.ok(port, 'the Service has the port the webhook calls');
  const target = typeof port?.targetPort === 'string' ? (container.ports as Obj[]).find((p) => p.name === port.targetPort)?.containerPort : port?.targetPort;
  t.equal(target, config.server.port, 'which leads to the server port');
  t.ok(webhook.clientConfig.service.namespace === undefined || webhook.clientConfig.service.namespace === namespace, 'namespace left to kustomize, or the install namespace');
});

t.test('namespaceSelector leaves out the control plane, pullguard itself and opted-out namespaces', async (t) => {
  const exprs = webhook.namespaceSelector.matchExpressions as Obj[];
  t.equal(webhook.namespaceSelector.matchLabels, undefined, 'no matchLabels: namespaces are in unless excluded');
  const byName = exprs.find((e) => e.key === 'kubernetes.io/metadata.name');
  t.equal(byName?.operator, 'NotIn');
  t.ok(byName?.values.includes('kube-system'), 'kube-system excluded');
  t.ok(byName?.values.includes(namespace), `pullguard's own namespace (${namespace}) excluded, so the webhook cannot block its own pods`);
  const optOut = exprs.find((e) => e.key === config.namespaceModeLabel);
  t.ok(optOut, `selector uses the label the server reads (${config.namespaceModeLabel})`);
  t.equal(optOut?.operator, 'NotIn', 'NotIn also matches namespaces without the label');
  t.same(optOut?.values, ['off'], `${config.namespaceModeLabel}=off opts a namespace out`);
  const ns = only(objects, 'Namespace');
  t.equal(ns.metadata.name, namespace);
  t.equal(ns.metadata.labels?.[config.namespaceModeLabel], 'off', 'pullguard\'s namespace is labelled off as well');
});
