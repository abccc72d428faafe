// The ValidatingWebhookConfiguration against the code: four webhooks, one per way a namespace picks
// its mode with the pullguard.io/mode label (so the server never reads Namespaces), whose rules
// cover exactly the kinds the admission code reads (src/workload/kinds.ts), whose paths are the
// modes the server knows (src/config/schema.ts MODES), and whose namespaceSelectors never overlap.
import t from 'tap';
import { join } from 'node:path';
import { MODE_LABEL, REVIEWED_SUBRESOURCES, WEBHOOK_NAME } from '../../src/admission/kinds.ts';
import { POD_SPEC_KINDS } from '../../src/workload/kinds.ts';
import { loadConfig, MODES } from '../../src/config/schema.ts';
import { baseDir, baseObjects, only, readYaml, selectorMatches, type Obj } from './lib.ts';

const objects = baseObjects();
const vwc = only(objects, 'ValidatingWebhookConfiguration');
const webhooks = vwc.webhooks as Obj[];
const config = loadConfig({ file: join(baseDir, 'config.yaml'), env: {} });
const namespace = readYaml(join(baseDir, 'kustomization.yaml'))[0]!.namespace as string;
const label = MODE_LABEL;
const NAME_LABEL = 'kubernetes.io/metadata.name';

/** The webhook for the configured default mode, and one per mode a namespace can choose. */
const DEFAULT = { name: WEBHOOK_NAME, path: '/validate' };
const PER_MODE = MODES.map((mode) => ({ mode, name: `${mode}.${WEBHOOK_NAME}`, path: `/validate/${mode}` }));
const byName = (name: string) => webhooks.find((w) => w.name === name);

/** One line per (group, version, resource, operation, scope), the unit the API server matches on. */
function expand(rules: Obj[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const g of r.apiGroups)
      for (const v of r.apiVersions)
        for (const res of r.resources)
          for (const op of r.operations) {
            out.add(`${g || 'core'}/${v} ${res} ${op} ${r.scope ?? '*'}`);
          }
  }
  return [...out].sort();
}

/** The webhooks the API server would call for a namespace with these labels (it adds the name label). */
function called(name: string, labels: Record<string, string> = {}): string[] {
  const nsLabels = { ...labels, [NAME_LABEL]: name };
  return webhooks.filter((w) => selectorMatches(w.namespaceSelector, nsLabels)).map((w) => w.name as string);
}

t.test('four webhooks: the default and one per mode, named as the server names itself', async (t) => {
  t.equal(vwc.metadata.name, 'pullguard');
  t.same(
    webhooks.map((w) => w.name).sort(),
    [DEFAULT.name, ...PER_MODE.map((m) => m.name)].sort(),
    'images.pullguard.io plus <mode>.images.pullguard.io for each of MODES',
  );
  t.equal(webhooks.length, 1 + MODES.length, `${1 + MODES.length} webhooks`);
  t.equal(webhooks[0]?.name, WEBHOOK_NAME, 'the first is the default one, WEBHOOK_NAME');
  for (const w of webhooks)
    t.ok(w.name.split('.').length >= 3, `${w.name} is fully qualified (at least three segments)`);
});

t.test("each webhook calls the path of its mode; the paths' modes are MODES", async (t) => {
  t.equal(
    byName(DEFAULT.name)?.clientConfig.service.path,
    DEFAULT.path,
    `${DEFAULT.name} → ${DEFAULT.path} (the configured mode)`,
  );
  for (const m of PER_MODE) t.equal(byName(m.name)?.clientConfig.service.path, m.path, `${m.name} → ${m.path}`);
  const pathModes = webhooks
    .map((w) => /^\/validate\/(.+)$/.exec(w.clientConfig.service.path)?.[1])
    .filter((m) => m !== undefined);
  t.same([...pathModes].sort(), [...MODES].sort(), 'the modes in the paths are exactly src/config/schema.ts MODES');
});

t.test('rules == POD_SPEC_KINDS (CREATE, UPDATE) + REVIEWED_SUBRESOURCES, in every webhook', async (t) => {
  const expected = new Set<string>();
  for (const k of POD_SPEC_KINDS)
    for (const op of ['CREATE', 'UPDATE'])
      expected.add(`${k.apiGroup || 'core'}/${k.apiVersion} ${k.resource} ${op} Namespaced`);
  for (const s of REVIEWED_SUBRESOURCES)
    for (const op of s.operations) expected.add(`${s.apiGroup || 'core'}/v1 ${s.resource} ${op} Namespaced`);
  for (const w of webhooks) {
    const actual = expand(w.rules as Obj[]);
    t.same(
      actual,
      [...expected].sort(),
      `${w.name}: the rules and src/workload/kinds.ts list the same resources and operations`,
    );
    // The same, said the other way round, so a failure names what to add or remove.
    for (const e of expected) if (!actual.includes(e)) t.fail(`${w.name}: rule missing: ${e}`);
    for (const a of actual) if (!expected.has(a)) t.fail(`${w.name}: rule not expected by the code: ${a}`);
    t.notOk(
      actual.some((a) => a.includes('*')),
      `${w.name}: no wildcards`,
    );
    t.notOk(
      actual.some((a) => / (DELETE|CONNECT) /.test(a)),
      `${w.name}: no DELETE or CONNECT (nothing to pull)`,
    );
    t.ok(
      actual.includes('core/v1 pods/ephemeralcontainers UPDATE Namespaced'),
      `${w.name}: kubectl debug (ephemeral containers) is reviewed`,
    );
  }
});

t.test('the webhooks differ only in name, path and the mode expression', async (t) => {
  const common = (w: Obj) => ({
    ...w,
    name: undefined,
    clientConfig: { ...w.clientConfig, service: { ...w.clientConfig.service, path: undefined } },
    namespaceSelector: {
      ...w.namespaceSelector,
      matchExpressions: (w.namespaceSelector?.matchExpressions as Obj[] | undefined)?.filter((e) => e.key !== label),
    },
  });
  const first = common(webhooks[0]!);
  for (const w of webhooks.slice(1))
    t.same(common(w), first, `${w.name} is ${webhooks[0]!.name} but for name, path and ${label}`);
  for (const w of webhooks) {
    const modeExprs = (w.namespaceSelector.matchExpressions as Obj[]).filter((e) => e.key === label);
    t.equal(modeExprs.length, 1, `${w.name}: one expression on ${label}`);
  }
});

t.test('settings that keep the cluster safe', async (t) => {
  for (const w of webhooks) {
    t.equal(
      w.failurePolicy,
      'Ignore',
      `${w.name}: failurePolicy Ignore, an outage of pullguard never blocks deployments`,
    );
    t.equal(w.sideEffects, 'None', `${w.name}: sideEffects None, dry-run requests are reviewed too`);
    t.same(w.admissionReviewVersions, ['v1']);
    t.equal(w.matchPolicy, 'Equivalent');
    t.equal(w.objectSelector, undefined, `${w.name}: no objectSelector (users could bypass it with labels)`);
    const timeoutMs = (w.timeoutSeconds as number) * 1000;
    t.ok(w.timeoutSeconds >= 1 && w.timeoutSeconds <= 30, 'timeoutSeconds within the API limits');
    t.ok(
      timeoutMs > config.deadline,
      `${w.name}: timeoutSeconds (${w.timeoutSeconds}s) above the server deadline (${config.deadline}ms), so pullguard answers first`,
    );
    t.ok(
      timeoutMs - config.deadline >= 1000 && timeoutMs - config.deadline <= 5000,
      'a little above: 1 to 5 seconds of margin',
    );
  }
});

t.test('every webhook calls the Service on its HTTPS port', async (t) => {
  const dep = only(objects, 'Deployment');
  const container = dep.spec.template.spec.containers[0];
  for (const w of webhooks) {
    const svc = only(objects, 'Service', w.clientConfig.service.name);
    t.equal(w.clientConfig.url, undefined, `${w.name}: service reference, not a URL`);
    const port = (svc.spec.ports as Obj[]).find((p) => p.port === (w.clientConfig.service.port ?? 443));
    t.ok(port, `${w.name}: the Service has the port the webhook calls`);
    const target =
      typeof port?.targetPort === 'string'
        ? (container.ports as Obj[]).find((p) => p.name === port.targetPort)?.containerPort
        : port?.targetPort;
    t.equal(target, config.server.port, 'which leads to the server port');
    t.ok(
      w.clientConfig.service.namespace === undefined || w.clientConfig.service.namespace === namespace,
      'namespace left to kustomize, or the install namespace',
    );
  }
});

t.test('namespaceSelectors: the label picks the webhook, off and the system namespaces pick none', async (t) => {
  for (const w of webhooks) {
    t.equal(w.namespaceSelector.matchLabels, undefined, `${w.name}: no matchLabels`);
    const exclusion = (w.namespaceSelector.matchExpressions as Obj[]).find((e) => e.key === NAME_LABEL);
    t.equal(exclusion?.operator, 'NotIn', `${w.name}: excludes namespaces by name`);
    t.ok(exclusion?.values.includes('kube-system'), `${w.name}: kube-system excluded`);
    t.ok(
      exclusion?.values.includes(namespace),
      `${w.name}: pullguard's own namespace (${namespace}) excluded, so no label lets it block its own pods`,
    );
  }
  const def = ((byName(DEFAULT.name)?.namespaceSelector.matchExpressions ?? []) as Obj[]).find((e) => e.key === label);
  t.equal(def?.operator, 'NotIn', 'the default webhook: NotIn, which also matches namespaces without the label');
  t.same(
    [...(def?.values ?? [])].sort(),
    ['off', ...MODES].sort(),
    'it leaves out off and every mode that has its own webhook',
  );
  for (const m of PER_MODE) {
    const e = ((byName(m.name)?.namespaceSelector.matchExpressions ?? []) as Obj[]).find((x) => x.key === label);
    t.same(
      { operator: e?.operator, values: e?.values },
      { operator: 'In', values: [m.mode] },
      `${m.name}: ${label} In [${m.mode}]`,
    );
  }

  // Sample namespaces, as the API server sees them (it sets kubernetes.io/metadata.name itself).
  const samples: [string, string, Record<string, string>, string | undefined][] = [
    ['unlabelled namespace', 'shop', {}, DEFAULT.name],
    ...MODES.map((mode): [string, string, Record<string, string>, string | undefined] => [
      `${label}=${mode}`,
      'shop',
      { [label]: mode },
      `${mode}.${WEBHOOK_NAME}`,
    ]),
    [`${label}=off`, 'legacy', { [label]: 'off' }, undefined],
    [`${label}=bogus (unknown value: the default)`, 'shop', { [label]: 'bogus' }, DEFAULT.name],
    [`${label}=Enforce (values are case-sensitive: the default)`, 'shop', { [label]: 'Enforce' }, DEFAULT.name],
    [`${label}="" (empty value: the default)`, 'shop', { [label]: '' }, DEFAULT.name],
    ['an unrelated label', 'shop', { team: 'payments' }, DEFAULT.name],
    ['kube-public (only kube-system is left out)', 'kube-public', {}, DEFAULT.name],
    ['kube-system', 'kube-system', {}, undefined],
    [`kube-system labelled ${label}=enforce`, 'kube-system', { [label]: 'enforce' }, undefined],
    [`pullguard's namespace, labelled off as shipped`, namespace, { [label]: 'off' }, undefined],
    [`pullguard's namespace without its label`, namespace, {}, undefined],
    [`pullguard's namespace labelled ${label}=enforce`, namespace, { [label]: 'enforce' }, undefined],
  ];
  for (const [what, name, labels, expected] of samples) {
    t.same(
      called(name, labels),
      expected ? [expected] : [],
      `${what}: ${expected ? `only ${expected}` : 'no webhook'}`,
    );
  }

  // Disjoint and complete, over every combination of namespace and label value.
  const names = ['shop', 'default', 'kube-public', 'kube-node-lease', 'kube-system', namespace];
  const values: (string | undefined)[] = [undefined, '', 'off', 'bogus', 'OFF', ...MODES];
  let combinations = 0;
  for (const name of names) {
    for (const value of values) {
      combinations++;
      const hits = called(name, value === undefined ? {} : { [label]: value });
      const excluded = name === 'kube-system' || name === namespace || value === 'off';
      const mode = (MODES as readonly (string | undefined)[]).includes(value) ? value : undefined;
      const want = excluded ? [] : [mode ? `${mode}.${WEBHOOK_NAME}` : DEFAULT.name];
      if (JSON.stringify(hits) !== JSON.stringify(want))
        t.fail(
          `${name} ${label}=${value ?? '(absent)'}: called ${JSON.stringify(hits)}, expected ${JSON.stringify(want)}`,
        );
    }
  }
  t.pass(
    `at most one webhook for each of ${combinations} namespaces, and exactly one unless kube-system, ${namespace} or off`,
  );

  const ns = only(objects, 'Namespace');
  t.equal(ns.metadata.name, namespace);
  t.equal(ns.metadata.labels?.[label], 'off', "pullguard's namespace is labelled off as well");
});

t.test('the selectors use the label the server is configured with', async (t) => {
  t.equal(label, 'pullguard.io/mode');
  for (const w of webhooks) {
    const keys = (w.namespaceSelector.matchExpressions as Obj[]).map((e) => e.key).sort();
    t.same(keys, [NAME_LABEL, label].sort(), `${w.name}: selects on ${NAME_LABEL} and ${label} only`);
  }
});
