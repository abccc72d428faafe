// The nodes a pod can land on, filtered as the scheduler and the kubelet filter them: spec.nodeName,
// spec.nodeSelector, required node affinity, tolerations against NoSchedule/NoExecute taints, and
// spec.os.name. Only the filters that decide *where* a pod may run, not whether it fits there now
// (resources, ports, topology spread): an image must pull on every node the pod may ever land on.
// Semantics follow k8s.io/component-helpers/scheduling/corev1 (nodeaffinity, helpers.go) and the
// scheduler's TaintToleration plugin; the DaemonSet tolerations are the controller's own
// (pkg/controller/daemon/util/daemonset_util.go AddOrUpdateDaemonPodTolerations).

/** A node as placement reads it. */
export interface PlacementNode {
  name: string;
  /** os as the node reports it (status.nodeInfo, else the kubernetes.io/os label) */
  os: string;
  labels: Readonly<Record<string, string>>;
  /** only NoSchedule and NoExecute taints: PreferNoSchedule never excludes a node */
  taints: readonly Taint[];
}

export interface Taint {
  key: string;
  value?: string;
  effect: string;
}

interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
}

interface Requirement {
  key: string;
  operator: string;
  values: string[];
}

interface Term {
  expressions: Requirement[];
  fields: Requirement[];
}

/** What of a pod spec decides where it may run; `key` is the same for specs that land alike. */
export interface Placement {
  nodeName?: string;
  nodeSelector: Readonly<Record<string, string>>;
  /** required node affinity: terms ORed; undefined when there is none */
  terms?: Term[];
  tolerations: Toleration[];
  os?: string;
  /** '' for a pod that may land on any node */
  key: string;
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The controller adds these to every DaemonSet pod, so that its pods survive node conditions. */
const DAEMONSET_TOLERATIONS: Toleration[] = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
];
/** …and this one to those on the host network. */
const HOST_NETWORK_TOLERATION: Toleration = {
  key: 'node.kubernetes.io/network-unavailable',
  operator: 'Exists',
  effect: 'NoSchedule',
};

/** The placement of a pod spec; `kind` is the object it sits in (DaemonSets get the controller's tolerations). */
export function placementOf(spec: Obj, kind = 'Pod'): Placement {
  const nodeName = str(spec.nodeName) || undefined;
  const nodeSelector: Record<string, string> = {};
  if (isObj(spec.nodeSelector)) {
    for (const [k, v] of Object.entries(spec.nodeSelector)) if (typeof v === 'string') nodeSelector[k] = v;
  }
  const tolerations: Toleration[] = Array.isArray(spec.tolerations)
    ? spec.tolerations.filter(isObj).map((t) => ({
        key: str(t.key),
        operator: str(t.operator),
        value: str(t.value),
        effect: str(t.effect),
      }))
    : [];
  if (kind === 'DaemonSet') {
    tolerations.push(...DAEMONSET_TOLERATIONS);
    if (spec.hostNetwork === true) tolerations.push(HOST_NETWORK_TOLERATION);
  }
  const terms = requiredTerms(spec.affinity);
  const os = isObj(spec.os) ? str(spec.os.name) || undefined : undefined;
  const placement: Placement = { nodeSelector, tolerations, key: '' };
  if (nodeName) placement.nodeName = nodeName;
  if (terms) placement.terms = terms;
  if (os) placement.os = os;
  const plain = !nodeName && !terms && !os && !tolerations.length && !Object.keys(nodeSelector).length;
  placement.key = plain ? '' : JSON.stringify([nodeName, nodeSelector, terms, tolerations, os]);
  return placement;
}

function requiredTerms(affinity: unknown): Term[] | undefined {
  if (!isObj(affinity) || !isObj(affinity.nodeAffinity)) return undefined;
  const required = affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution;
  if (!isObj(required)) return undefined;
  // Required affinity with no terms (absent, null or []) matches no node. A term that is empty or
  // does not parse (nodeaffinity.NewLazyErrorNodeSelector) matches no node either, so it is dropped:
  // specs that differ only in such terms land alike and get the same key.
  const terms = Array.isArray(required.nodeSelectorTerms) ? required.nodeSelectorTerms.filter(isObj) : [];
  return terms
    .map((t) => ({ expressions: requirements(t.matchExpressions), fields: requirements(t.matchFields) }))
    .filter(
      (t) =>
        (t.expressions.length || t.fields.length) &&
        t.expressions.every(validLabelRequirement) &&
        t.fields.every(validFieldRequirement),
    );
}

function requirements(list: unknown): Requirement[] {
  if (!Array.isArray(list)) return [];
  return list.filter(isObj).map((r) => ({
    key: str(r.key) ?? '',
    operator: str(r.operator) ?? '',
    values: Array.isArray(r.values) ? r.values.filter((v): v is string => typeof v === 'string') : [],
  }));
}

// Label syntax as apimachinery's labels.NewRequirement checks it (validation.IsQualifiedName, IsValidLabelValue).
const NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function qualifiedName(key: string): boolean {
  const parts = key.split('/');
  if (parts.length > 2) return false;
  const name = parts[parts.length - 1]!;
  if (parts.length === 2 && !(parts[0]!.length <= 253 && DNS_SUBDOMAIN.test(parts[0]!))) return false;
  return name.length <= 63 && NAME_PART.test(name);
}

const labelValue = (v: string): boolean => v.length <= 63 && LABEL_VALUE.test(v);

function validLabelRequirement(r: Requirement): boolean {
  if (!qualifiedName(r.key) || !r.values.every(labelValue)) return false;
  switch (r.operator) {
    case 'In':
    case 'NotIn':
      return r.values.length > 0;
    case 'Exists':
    case 'DoesNotExist':
      return r.values.length === 0;
    case 'Gt':
    case 'Lt':
      return r.values.length === 1 && int64(r.values[0]!) !== undefined;
    default:
      return false;
  }
}

/** matchFields: In or NotIn with exactly one value (nodeSelectorRequirementsAsFieldSelector). */
const validFieldRequirement = (r: Requirement): boolean =>
  (r.operator === 'In' || r.operator === 'NotIn') && r.values.length === 1;

/** Whether the pod may land on (or, with nodeName, run on) the node. */
export function fits(p: Placement, node: PlacementNode): boolean {
  if (p.nodeName !== undefined && p.nodeName !== node.name) return false;
  if (p.os !== undefined && node.os !== '' && p.os !== node.os) return false;
  for (const [k, v] of Object.entries(p.nodeSelector)) if (node.labels[k] !== v) return false;
  if (p.terms && !p.terms.some((t) => termMatches(t, node))) return false;
  // A pod with nodeName skips the scheduler: only the kubelet's admission is left, which refuses
  // pods that do not tolerate a NoExecute taint (pkg/kubelet/lifecycle/predicate.go).
  for (const taint of node.taints) {
    if (p.nodeName !== undefined && taint.effect !== 'NoExecute') continue;
    if (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') continue;
    if (!p.tolerations.some((t) => tolerates(t, taint))) return false;
  }
  return true;
}

/** A term ANDs its requirements; placementOf has dropped empty terms and those that do not parse. */
function termMatches(term: Term, node: PlacementNode): boolean {
  for (const r of term.expressions) if (!requirementMatches(r, node.labels[r.key])) return false;
  // A node's only field is metadata.name; a node without a name has none, and then upstream skips
  // matchFields (nodeSelectorTerm.match). A field it does not have reads as ''.
  if (node.name === '') return true;
  for (const r of term.fields) {
    const value = r.key === 'metadata.name' ? node.name : '';
    if ((value === r.values[0]) !== (r.operator === 'In')) return false;
  }
  return true;
}

function requirementMatches(r: Requirement, value: string | undefined): boolean {
  switch (r.operator) {
    case 'In':
      return value !== undefined && r.values.includes(value);
    case 'NotIn':
      return value === undefined || !r.values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    default:
      // Gt or Lt: placementOf keeps no other operator. A label that is not an integer matches neither.
      return value !== undefined && compare(r.operator, value, r.values[0]!);
  }
}

/** `have` Gt/Lt `want`, both as Go's strconv.ParseInt(s, 10, 64) reads them; false if either does not parse. */
function compare(op: string, have: string, want: string): boolean {
  const h = int64(have);
  const w = int64(want);
  if (h === undefined || w === undefined) return false;
  return op === 'Gt' ? h > w : h < w;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function int64(s: string): bigint | undefined {
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  const n = BigInt(s);
  return n < INT64_MIN || n > INT64_MAX ? undefined : n;
}

/**
 * Toleration.ToleratesTaint (k8s.io/api core/v1): an empty effect matches all; an empty key with Exists
 * matches every taint. Gt and Lt compare the taint's value with the toleration's as integers; the API
 * server accepts them only with the TaintTolerationComparisonOperators gate on, so a pod that has
 * them comes from a cluster whose scheduler honours them.
 */
function tolerates(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  switch (t.operator || 'Equal') {
    case 'Equal':
      return (t.value ?? '') === (taint.value ?? '');
    case 'Exists':
      return true;
    case 'Gt':
    case 'Lt':
      return compare(t.operator!, taint.value ?? '', t.value ?? '');
    default:
      return false;
  }
}
