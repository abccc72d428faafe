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
  if (!isObj(required) || !Array.isArray(required.nodeSelectorTerms)) return undefined;
  return required.nodeSelectorTerms.filter(isObj).map((t) => ({
    expressions: requirements(t.matchExpressions),
    fields: requirements(t.matchFields),
  }));
}

function requirements(list: unknown): Requirement[] {
  if (!Array.isArray(list)) return [];
  return list.filter(isObj).map((r) => ({
    key: str(r.key) ?? '',
    operator: str(r.operator) ?? '',
    values: Array.isArray(r.values) ? r.values.filter((v): v is string => typeof v === 'string') : [],
  }));
}

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

/** A term with no requirements matches no node (nodeaffinity: "a null or empty term matches no objects"). */
function termMatches(term: Term, node: PlacementNode): boolean {
  if (!term.expressions.length && !term.fields.length) return false;
  for (const r of term.expressions) if (!requirementMatches(r, node.labels[r.key])) return false;
  for (const r of term.fields) {
    // metadata.name is the only field node affinity supports, with In and NotIn.
    if (r.key !== 'metadata.name' || (r.operator !== 'In' && r.operator !== 'NotIn')) return false;
    if (!requirementMatches(r, node.name)) return false;
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
    case 'Gt':
    case 'Lt': {
      // One integer value; a label that is not an integer matches neither.
      if (value === undefined || r.values.length !== 1) return false;
      const have = integer(value);
      const want = integer(r.values[0]!);
      if (have === undefined || want === undefined) return false;
      return r.operator === 'Gt' ? have > want : have < want;
    }
    default:
      return false;
  }
}

function integer(s: string): number | undefined {
  return /^[+-]?\d+$/.test(s) ? Number(s) : undefined;
}

/** Toleration.ToleratesTaint (k8s.io/api core/v1): an empty effect matches all; an empty key with Exists matches every taint. */
function tolerates(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  const op = t.operator || 'Equal';
  if (op === 'Exists') return true;
  if (op !== 'Equal') return false;
  return (t.value ?? '') === (taint.value ?? '');
}
