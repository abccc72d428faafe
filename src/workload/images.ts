// Every image a pod spec would make the kubelet pull, wherever the spec sits in the object:
// containers, init containers (sidecars included), ephemeral containers and image volumes.

import { kindByName, POD_SPEC_KINDS } from './kinds.ts';
import type { ImageUse } from '../findings.ts';
import { cut } from '../text.ts';
import { parseImageName } from '../reference/index.ts';

type Obj = Record<string, unknown>;

export interface PodSpecSite {
  kind: string;
  namespace?: string;
  name?: string;
  /** dotted path of the pod spec, e.g. spec.template.spec */
  specPath: string;
  spec: Obj;
  /** true for templates (workloads): the ServiceAccount admission plugin has not run on them */
  template: boolean;
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

const SPEC_PATHS = new Map(POD_SPEC_KINDS.map((k) => [k, k.specPath.join('.')]));

/** The pod spec of an object of a supported kind, or undefined (other kinds, or a nil template). */
export function podSpecSite(object: unknown): PodSpecSite | undefined {
  if (!isObj(object)) return undefined;
  const kind = str(object.kind);
  const info = kind ? kindByName(kind) : undefined;
  if (!info) return undefined;
  let node: unknown = object;
  for (const key of info.specPath) node = isObj(node) ? node[key] : undefined;
  if (!isObj(node)) return undefined;
  const meta = isObj(object.metadata) ? object.metadata : {};
  const namespace = str(meta.namespace);
  const name = str(meta.name) ?? str(meta.generateName);
  return {
    kind: info.kind,
    ...(namespace ? { namespace } : {}),
    ...(name ? { name } : {}),
    specPath: SPEC_PATHS.get(info) ?? info.specPath.join('.'),
    spec: node,
    template: info.kind !== 'Pod',
  };
}

/**
 * The default the API server gives imagePullPolicy (SetDefaults_Container): the kubelet's own
 * ParseImageName, then Always for tag latest (given or implied), else IfNotPresent. A reference that
 * does not parse gets no tag, so IfNotPresent, as in the API server.
 */
export function defaultPullPolicy(image: string): string {
  let tag = '';
  try {
    tag = parseImageName(image).tag;
  } catch {
    // an invalid reference: the engine reports it; the policy stays IfNotPresent
  }
  return tag === 'latest' ? 'Always' : 'IfNotPresent';
}

const CONTAINER_LISTS = ['initContainers', 'containers', 'ephemeralContainers'] as const;

/** Image uses of one pod spec site. */
export function imageUsesOf(site: PodSpecSite): ImageUse[] {
  const object = {
    kind: site.kind,
    ...(site.namespace ? { namespace: site.namespace } : {}),
    ...(site.name ? { name: site.name } : {}),
  };
  const uses: ImageUse[] = [];
  for (const list of CONTAINER_LISTS) {
    const containers = site.spec[list];
    if (!Array.isArray(containers)) continue;
    containers.forEach((c, i) => {
      if (!isObj(c)) return;
      const image = str(c.image);
      // The API server rejects a container without an image (imageFieldProblems says so for
      // manifests); a webhook never sees one.
      if (image === undefined || image === '') return;
      uses.push({
        object,
        container: str(c.name) ?? `${list}[${i}]`,
        field: `${site.specPath}.${list}[${i}].image`,
        image,
        pullPolicy: str(c.imagePullPolicy) ?? defaultPullPolicy(image),
      });
    });
  }
  const volumes = site.spec.volumes;
  if (Array.isArray(volumes)) {
    volumes.forEach((v, i) => {
      if (!isObj(v) || !isObj(v.image)) return;
      const image = str(v.image.reference);
      if (!image) return;
      uses.push({
        object,
        container: `volume ${str(v.name) ?? i}`,
        field: `${site.specPath}.volumes[${i}].image.reference`,
        image,
        pullPolicy: str(v.image.pullPolicy) ?? defaultPullPolicy(image),
      });
    });
  }
  return uses;
}

/** A pod spec field the API server would reject before any image is pulled. */
export interface ImageFieldProblem {
  container: string;
  /** JSON path of the field, e.g. spec.containers[0].image */
  field: string;
  problem: string;
}

/**
 * Containers whose image is missing (or empty: the API server cannot tell the two apart) or not a
 * string, and image volumes whose reference is not a string: `kubectl apply` fails on them with
 * "Required value" or "cannot unmarshal".
 */
export function imageFieldProblems(site: PodSpecSite): ImageFieldProblem[] {
  const out: ImageFieldProblem[] = [];
  const describe = (v: unknown) =>
    `${Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : `a ${typeof v}`} (${cut(JSON.stringify(v), 40)})`;
  for (const list of CONTAINER_LISTS) {
    const containers = site.spec[list];
    if (!Array.isArray(containers)) continue;
    containers.forEach((c, i) => {
      if (!isObj(c)) return;
      const container = str(c.name) ?? `${list}[${i}]`;
      const field = `${site.specPath}.${list}[${i}].image`;
      if (c.image === undefined || c.image === null || c.image === '')
        out.push({ container, field, problem: 'image is required (the API server rejects the object)' });
      else if (typeof c.image !== 'string')
        out.push({ container, field, problem: `image must be a string, not ${describe(c.image)}` });
    });
  }
  const volumes = site.spec.volumes;
  if (Array.isArray(volumes)) {
    volumes.forEach((v, i) => {
      if (!isObj(v) || !isObj(v.image)) return;
      const ref = v.image.reference;
      if (ref !== undefined && ref !== null && typeof ref !== 'string')
        out.push({
          container: `volume ${str(v.name) ?? i}`,
          field: `${site.specPath}.volumes[${i}].image.reference`,
          problem: `image.reference must be a string, not ${describe(ref)}`,
        });
    });
  }
  return out;
}

/** The pull secret names a spec lists (empty names are ignored, as the kubelet does). */
export function pullSecretNames(spec: Obj): string[] {
  const list = spec.imagePullSecrets;
  if (!Array.isArray(list)) return [];
  return list.map((s) => (isObj(s) ? str(s.name) : undefined)).filter((n): n is string => Boolean(n));
}

/** Objects inside `List` kinds (kubectl get -o yaml, helm output), flattened. */
export function flattenLists(object: unknown): unknown[] {
  if (isObj(object) && typeof object.kind === 'string' && object.kind.endsWith('List') && Array.isArray(object.items)) {
    return object.items.flatMap(flattenLists);
  }
  return [object];
}
