// The fields the API server requires of each kind pullguard installs (from the kinds' validation in
// kubernetes/pkg/apis/*/validation and cert-manager's webhook), checked without a cluster.
// A kind missing from KIND_CHECKS is itself a problem, so a new kind cannot slip in unchecked.
import type { Obj } from './lib.ts';
import { isNamespaced } from './lib.ts';

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export interface CheckOptions {
  /** after kustomize: namespaces and generated names are filled in */
  rendered: boolean;
}

type Check = (o: Obj, opts: CheckOptions, problems: string[]) => void;

const nonEmptyArray = (v: unknown): v is unknown[] => Array.isArray(v) && v.length > 0;
const nonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isPort = (v: unknown) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
const isMap = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

function stringMap(where: string, v: unknown, problems: string[], nonEmpty = false) {
  if (!isMap(v) || (nonEmpty && Object.keys(v).length === 0)) {
    problems.push(`${where} must be a${nonEmpty ? ' non-empty' : ''} map of strings`);
    return;
  }
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string')
      problems.push(
        `${where}.${k} is ${JSON.stringify(val)}, not a string (quote it: YAML 1.1 reads off/on/yes/no as booleans)`,
      );
  }
}

function labels(where: string, v: unknown, problems: string[], nonEmpty = false) {
  stringMap(where, v, problems, nonEmpty);
  if (!isMap(v)) return;
  for (const [k, val] of Object.entries(v)) {
    if (!QUALIFIED_NAME.test(k)) problems.push(`${where}: ${k} is not a valid label key`);
    if (typeof val === 'string' && (val.length > 63 || !LABEL_VALUE.test(val)))
      problems.push(`${where}.${k}: "${val}" is not a valid label value`);
  }
}

function podSpec(where: string, spec: Obj | undefined, problems: string[]) {
  if (!isMap(spec)) return void problems.push(`${where} is missing`);
  if (!nonEmptyArray(spec.containers)) return void problems.push(`${where}.containers must not be empty`);
  for (const [i, c] of (spec.containers as Obj[]).entries()) {
    if (!nonEmptyString(c.name) || !DNS1123_LABEL.test(c.name))
      problems.push(`${where}.containers[${i}].name must be a DNS-1123 label`);
    if (!nonEmptyString(c.image)) problems.push(`${where}.containers[${i}].image is required`);
    for (const [j, p] of ((c.ports as Obj[] | undefined) ?? []).entries()) {
      if (!isPort(p.containerPort))
        problems.push(`${where}.containers[${i}].ports[${j}].containerPort must be 1-65535`);
    }
  }
  for (const [i, v] of ((spec.volumes as Obj[] | undefined) ?? []).entries()) {
    if (!nonEmptyString(v.name)) problems.push(`${where}.volumes[${i}].name is required`);
    const sources = Object.keys(v).filter((k) => k !== 'name');
    if (sources.length !== 1)
      problems.push(`${where}.volumes[${i}] must have exactly one volume source, has ${sources.join(', ') || 'none'}`);
  }
}

/** A metav1.LabelSelector as the API server validates it (ValidateLabelSelector). */
function labelSelector(where: string, selector: unknown, problems: string[]) {
  if (selector === undefined) return;
  if (!isMap(selector)) return void problems.push(`${where} must be a map`);
  for (const k of Object.keys(selector))
    if (!['matchLabels', 'matchExpressions'].includes(k)) problems.push(`${where}.${k} is not a label selector field`);
  if (selector.matchLabels !== undefined) labels(`${where}.matchLabels`, selector.matchLabels, problems);
  if (selector.matchExpressions === undefined) return;
  if (!Array.isArray(selector.matchExpressions)) return void problems.push(`${where}.matchExpressions must be a list`);
  for (const [i, e] of (selector.matchExpressions as Obj[]).entries()) {
    const at = `${where}.matchExpressions[${i}]`;
    if (!isMap(e)) {
      problems.push(`${at} must be a map`);
      continue;
    }
    if (!nonEmptyString(e.key) || !QUALIFIED_NAME.test(e.key)) problems.push(`${at}.key is not a valid label key`);
    if (['In', 'NotIn'].includes(e.operator)) {
      if (!nonEmptyArray(e.values)) problems.push(`${at}: ${e.operator} needs values`);
    } else if (['Exists', 'DoesNotExist'].includes(e.operator)) {
      if (e.values !== undefined && !(Array.isArray(e.values) && e.values.length === 0))
        problems.push(`${at}: ${e.operator} takes no values`);
    } else {
      problems.push(`${at}.operator ${JSON.stringify(e.operator)} is not In, NotIn, Exists or DoesNotExist`);
    }
    for (const v of (Array.isArray(e.values) ? e.values : []) as unknown[]) {
      if (typeof v !== 'string')
        problems.push(
          `${at}.values: ${JSON.stringify(v)} is not a string (quote it: YAML 1.1 reads off/on/yes/no as booleans)`,
        );
      else if (v.length > 63 || !LABEL_VALUE.test(v)) problems.push(`${at}.values: "${v}" is not a valid label value`);
    }
  }
}

function selectorMatches(where: string, selector: unknown, podLabels: unknown, problems: string[]) {
  const ml = isMap(selector) ? selector.matchLabels : undefined;
  labels(`${where}.matchLabels`, ml, problems, true);
  if (isMap(ml) && isMap(podLabels) && !Object.entries(ml).every(([k, v]) => podLabels[k] === v)) {
    problems.push(`${where} does not select the pod template's labels`);
  }
}

/** Role and ClusterRole validate their rules alike. */
const rbacRules: Check = (o, _opts, p) => {
  for (const [i, r] of ((o.rules as Obj[] | undefined) ?? []).entries()) {
    if (!nonEmptyArray(r.verbs)) p.push(`rules[${i}].verbs must not be empty`);
    if (!(nonEmptyArray(r.resources) && Array.isArray(r.apiGroups)) && !nonEmptyArray(r.nonResourceURLs))
      p.push(`rules[${i}] needs apiGroups and resources`);
  }
};

/** RoleBinding and ClusterRoleBinding validate their roleRef and subjects alike. */
const rbacBinding: Check = (o, opts, p) => {
  const ref = o.roleRef as Obj | undefined;
  if (
    !(
      ref?.apiGroup === 'rbac.authorization.k8s.io' &&
      ['ClusterRole', 'Role'].includes(ref.kind) &&
      nonEmptyString(ref.name)
    )
  )
    p.push('roleRef needs apiGroup rbac.authorization.k8s.io, kind and name');
  if (!nonEmptyArray(o.subjects)) return void p.push('subjects must not be empty');
  for (const [i, s] of (o.subjects as Obj[]).entries()) {
    if (!nonEmptyString(s.kind) || !nonEmptyString(s.name)) p.push(`subjects[${i}] needs kind and name`);
    if (s.kind === 'ServiceAccount' && opts.rendered && !nonEmptyString(s.namespace))
      p.push(`subjects[${i}]: a ServiceAccount subject needs a namespace`);
  }
};

export const KIND_CHECKS: Record<string, { apiVersion: string; check: Check }> = {
  Namespace: { apiVersion: 'v1', check: () => {} },
  ServiceAccount: { apiVersion: 'v1', check: () => {} },
  ConfigMap: {
    apiVersion: 'v1',
    check: (o, _opts, p) => stringMap('data', o.data, p, true),
  },
  Secret: {
    apiVersion: 'v1',
    check: (o, _opts, p) => {
      if (!nonEmptyString(o.type)) p.push('type is required');
      stringMap('data', o.data, p, true);
      for (const [k, v] of Object.entries((o.data as Obj | undefined) ?? {})) {
        if (typeof v === 'string' && !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) p.push(`data.${k} is not base64`);
      }
      if (o.type === 'kubernetes.io/tls' && !(o.data?.['tls.crt'] && o.data?.['tls.key']))
        p.push('a kubernetes.io/tls Secret needs tls.crt and tls.key');
    },
  },
  Service: {
    apiVersion: 'v1',
    check: (o, _opts, p) => {
      if (!nonEmptyArray(o.spec?.ports)) return void p.push('spec.ports must not be empty');
      for (const [i, port] of (o.spec.ports as Obj[]).entries()) {
        if (!isPort(port.port)) p.push(`spec.ports[${i}].port must be 1-65535`);
        if (o.spec.ports.length > 1 && !nonEmptyString(port.name))
          p.push(`spec.ports[${i}].name is required when there are several ports`);
      }
      labels('spec.selector', o.spec.selector, p, true);
    },
  },
  Deployment: {
    apiVersion: 'apps/v1',
    check: (o, _opts, p) => {
      selectorMatches('spec.selector', o.spec?.selector, o.spec?.template?.metadata?.labels, p);
      labels('spec.template.metadata.labels', o.spec?.template?.metadata?.labels, p, true);
      podSpec('spec.template.spec', o.spec?.template?.spec, p);
    },
  },
  PodDisruptionBudget: {
    apiVersion: 'policy/v1',
    check: (o, _opts, p) => {
      labels('spec.selector.matchLabels', o.spec?.selector?.matchLabels, p, true);
      const set = ['minAvailable', 'maxUnavailable'].filter((k) => o.spec?.[k] !== undefined);
      if (set.length !== 1) p.push('spec needs exactly one of minAvailable, maxUnavailable');
    },
  },
  ClusterRole: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    check: rbacRules,
  },
  ClusterRoleBinding: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    check: rbacBinding,
  },
  Role: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    check: rbacRules,
  },
  RoleBinding: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    check: rbacBinding,
  },
  ValidatingWebhookConfiguration: {
    apiVersion: 'admissionregistration.k8s.io/v1',
    check: (o, opts, p) => {
      if (!nonEmptyArray(o.webhooks)) return void p.push('webhooks must not be empty');
      const names = new Set<string>();
      for (const [i, w] of (o.webhooks as Obj[]).entries()) {
        const at = `webhooks[${i}]`;
        if (!nonEmptyString(w.name) || !DNS1123_SUBDOMAIN.test(w.name) || w.name.split('.').length < 3)
          p.push(`${at}.name must be fully qualified (at least three DNS segments)`);
        if (names.has(w.name)) p.push(`${at}.name ${w.name} is not unique`);
        names.add(w.name);
        const cc = w.clientConfig as Obj | undefined;
        if (!cc || (cc.url === undefined) === (cc.service === undefined))
          p.push(`${at}.clientConfig needs exactly one of url, service`);
        if (cc?.service) {
          if (!nonEmptyString(cc.service.name)) p.push(`${at}.clientConfig.service.name is required`);
          if (opts.rendered && !nonEmptyString(cc.service.namespace))
            p.push(`${at}.clientConfig.service.namespace is required`);
          if (cc.service.port !== undefined && !isPort(cc.service.port))
            p.push(`${at}.clientConfig.service.port must be 1-65535`);
          if (cc.service.path !== undefined && !String(cc.service.path).startsWith('/'))
            p.push(`${at}.clientConfig.service.path must start with /`);
        }
        if (cc?.caBundle !== undefined && !/^[A-Za-z0-9+/]+={0,2}$/.test(String(cc.caBundle)))
          p.push(`${at}.clientConfig.caBundle is not base64`);
        if (!['None', 'NoneOnDryRun'].includes(w.sideEffects)) p.push(`${at}.sideEffects must be None or NoneOnDryRun`);
        if (!nonEmptyArray(w.admissionReviewVersions)) p.push(`${at}.admissionReviewVersions is required`);
        if (
          w.timeoutSeconds !== undefined &&
          !(Number.isInteger(w.timeoutSeconds) && w.timeoutSeconds >= 1 && w.timeoutSeconds <= 30)
        )
          p.push(`${at}.timeoutSeconds must be 1-30`);
        if (w.failurePolicy !== undefined && !['Fail', 'Ignore'].includes(w.failurePolicy))
          p.push(`${at}.failurePolicy must be Fail or Ignore`);
        if (w.matchPolicy !== undefined && !['Exact', 'Equivalent'].includes(w.matchPolicy))
          p.push(`${at}.matchPolicy must be Exact or Equivalent`);
        labelSelector(`${at}.namespaceSelector`, w.namespaceSelector, p);
        labelSelector(`${at}.objectSelector`, w.objectSelector, p);
        for (const [j, r] of ((w.rules as Obj[] | undefined) ?? []).entries()) {
          for (const f of ['apiGroups', 'apiVersions', 'operations', 'resources']) {
            if (!nonEmptyArray(r[f])) p.push(`${at}.rules[${j}].${f} must not be empty`);
          }
          if (r.scope !== undefined && !['Cluster', 'Namespaced', '*'].includes(r.scope))
            p.push(`${at}.rules[${j}].scope is invalid`);
        }
      }
    },
  },
  NetworkPolicy: {
    apiVersion: 'networking.k8s.io/v1',
    check: (o, _opts, p) => {
      if (!isMap(o.spec?.podSelector)) p.push('spec.podSelector is required');
      for (const dir of ['ingress', 'egress'] as const) {
        for (const [i, rule] of ((o.spec?.[dir] as Obj[] | undefined) ?? []).entries()) {
          for (const [j, port] of ((rule.ports as Obj[] | undefined) ?? []).entries()) {
            if (!isPort(port.port) && !(nonEmptyString(port.port) && DNS1123_LABEL.test(port.port)))
              p.push(`spec.${dir}[${i}].ports[${j}].port must be 1-65535 or a port name`);
            if (!['TCP', 'UDP', 'SCTP'].includes(port.protocol ?? 'TCP'))
              p.push(`spec.${dir}[${i}].ports[${j}].protocol is invalid`);
          }
        }
      }
    },
  },
  ServiceMonitor: {
    apiVersion: 'monitoring.coreos.com/v1',
    check: (o, _opts, p) => {
      if (!isMap(o.spec?.selector)) p.push('spec.selector is required');
      if (!nonEmptyArray(o.spec?.endpoints)) p.push('spec.endpoints must not be empty');
    },
  },
  PrometheusRule: {
    apiVersion: 'monitoring.coreos.com/v1',
    check: (o, _opts, p) => {
      for (const [i, g] of ((o.spec?.groups as Obj[] | undefined) ?? []).entries()) {
        if (!nonEmptyString(g.name)) p.push(`spec.groups[${i}].name is required`);
        for (const [j, r] of ((g.rules as Obj[] | undefined) ?? []).entries()) {
          if (!nonEmptyString(r.expr)) p.push(`spec.groups[${i}].rules[${j}].expr is required`);
          if (!nonEmptyString(r.alert) && !nonEmptyString(r.record))
            p.push(`spec.groups[${i}].rules[${j}] needs alert or record`);
        }
      }
    },
  },
  Issuer: {
    apiVersion: 'cert-manager.io/v1',
    check: (o, _opts, p) => {
      const types = ['selfSigned', 'ca', 'acme', 'vault', 'venafi'].filter((k) => o.spec?.[k] !== undefined);
      if (types.length !== 1) p.push('spec needs exactly one issuer type (selfSigned, ca, acme, vault, venafi)');
      if (o.spec?.ca && !nonEmptyString(o.spec.ca.secretName)) p.push('spec.ca.secretName is required');
    },
  },
  Certificate: {
    apiVersion: 'cert-manager.io/v1',
    check: (o, _opts, p) => {
      if (!nonEmptyString(o.spec?.secretName)) p.push('spec.secretName is required');
      if (!nonEmptyString(o.spec?.issuerRef?.name)) p.push('spec.issuerRef.name is required');
      if (!nonEmptyString(o.spec?.commonName) && !nonEmptyArray(o.spec?.dnsNames))
        p.push('spec needs commonName or dnsNames');
    },
  },
};

/** Every problem with one complete object, as "<kind>/<name>: <problem>". */
export function objectProblems(o: Obj, opts: CheckOptions): string[] {
  const problems: string[] = [];
  const spec = KIND_CHECKS[o.kind as string];
  const name = o.metadata?.name as unknown;
  const id = `${o.kind ?? '(no kind)'}/${typeof name === 'string' ? name : '(no name)'}`;
  if (!spec) return [`${id}: kind ${o.kind} has no entry in test/manifests/schema.ts KIND_CHECKS`];
  if (o.apiVersion !== spec.apiVersion) problems.push(`apiVersion is ${o.apiVersion}, expected ${spec.apiVersion}`);
  if (!nonEmptyString(name) || name.length > 253 || !DNS1123_SUBDOMAIN.test(name))
    problems.push('metadata.name must be a DNS-1123 subdomain');
  if (o.metadata?.labels !== undefined) labels('metadata.labels', o.metadata.labels, problems);
  if (o.metadata?.annotations !== undefined) stringMap('metadata.annotations', o.metadata.annotations, problems);
  if (isNamespaced(o.kind)) {
    if (opts.rendered && !nonEmptyString(o.metadata?.namespace)) problems.push('metadata.namespace is required');
  } else if (o.metadata?.namespace !== undefined) {
    problems.push('a cluster-scoped object must not have metadata.namespace');
  }
  spec.check(o, opts, problems);
  return problems.map((p) => `${id}: ${p}`);
}
