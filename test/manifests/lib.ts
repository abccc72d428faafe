// Loading manifests/ for the tests: the YAML files as written, and kustomize's rendering of them.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../helpers/fixtures.ts';
import { k8sTool } from '../helpers/k8s-tools.ts';

export { repoRoot };
export const manifestsDir = join(repoRoot, 'manifests');
export const baseDir = join(manifestsDir, 'base');
export const genScript = join(repoRoot, 'certs', 'gen.sh');

// Untyped JSON-like access to Kubernetes objects; the tests check shapes explicitly.
export type Obj = Record<string, any>;

/**
 * Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml): `off` is false and `0440` octal.
 * Parsing the same way makes the tests see what the API server will see.
 */
export function parseYamlDocs(text: string, source: string): Obj[] {
  const docs = parseAllDocuments(text, { version: '1.1', prettyErrors: true });
  const out: Obj[] = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    if (doc.warnings.length) throw new Error(`${source}: ${doc.warnings.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue; // an empty document, e.g. after a trailing ---
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${source}: a document is not a mapping`);
    out.push(value as Obj);
  }
  return out;
}

export function readYaml(file: string): Obj[] {
  return parseYamlDocs(readFileSync(file, 'utf8'), relative(repoRoot, file));
}

export function listYamlFiles(dir = manifestsDir): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listYamlFiles(path));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

/** The base's objects as written (no kustomize), with the kustomization's namespace applied. */
export function baseObjects(): Obj[] {
  const kustomization = readYaml(join(baseDir, 'kustomization.yaml'))[0]!;
  const objects = (kustomization.resources as string[]).flatMap((r) => readYaml(join(baseDir, r)));
  return objects.map((o) =>
    isNamespaced(o.kind) ? { ...o, metadata: { namespace: kustomization.namespace, ...o.metadata } } : o,
  );
}

/** The default configuration file shipped in the ConfigMap. */
export function baseConfigText(): string {
  return readFileSync(join(baseDir, 'config.yaml'), 'utf8');
}

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'CustomResourceDefinition',
  'ClusterIssuer',
]);
export function isNamespaced(kind: string): boolean {
  return !CLUSTER_SCOPED.has(kind);
}

export function only(objects: Obj[], kind: string, name?: string): Obj {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  if (found.length !== 1)
    throw new Error(`expected exactly one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

export function all(objects: Obj[], kind: string): Obj[] {
  return objects.filter((o) => o.kind === kind);
}

/** Resolves a probe's or Service's port (a number or a container port name) to a number. */
export function resolvePort(container: Obj, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  return (container.ports as Obj[] | undefined)?.find((p) => p.name === port)?.containerPort;
}

export function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/**
 * A metav1.LabelSelector against an object's labels, as the API server evaluates a webhook's
 * namespaceSelector: matchLabels and every matchExpression must hold; NotIn and DoesNotExist also
 * match when the label is absent; an absent or empty selector matches everything.
 */
export function selectorMatches(selector: Obj | undefined, labels: Record<string, string>): boolean {
  if (!labelsMatch((selector?.matchLabels as Record<string, string> | undefined) ?? {}, labels)) return false;
  return ((selector?.matchExpressions as Obj[] | undefined) ?? []).every((e) => {
    const has = Object.hasOwn(labels, e.key);
    const values = (e.values as string[] | undefined) ?? [];
    switch (e.operator) {
      case 'In':
        return has && values.includes(labels[e.key]!);
      case 'NotIn':
        return !has || !values.includes(labels[e.key]!);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
      default:
        throw new Error(`unknown label selector operator ${e.operator}`);
    }
  });
}

// --- external tools ---------------------------------------------------------------------------

function which(tool: string, extra: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...extra]) {
    if (!dir) continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      /* next */
    }
  }
  return undefined;
}

// The real kubectl (and its kustomize) from the dev dependency's layer: the same version everywhere.
export const kubectl: string = k8sTool('kubectl');
/** openssl (Debian's, .ci/apt-packages.txt): found on PATH, else the bare name, so a missing one fails where it is run */
export const opensslFound = which('openssl', ['/usr/bin', '/usr/local/bin']);
export const openssl = opensslFound ?? 'openssl';

export function renderKustomize(dir: string): Obj[] {
  const text = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseYamlDocs(text, `kubectl kustomize ${relative(repoRoot, dir) || '.'}`);
}

export interface GenResult {
  pki: string;
  out: string;
  stdout: string;
}

export function runGen(pki: string, out: string, args: string[] = []): GenResult {
  const stdout = execFileSync('bash', [genScript, '--pki', pki, '--out', out, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { pki, out, stdout };
}

/** A scratch directory, removed when the test ends. */
export function scratch(t: { teardown: (fn: () => void) => void }, prefix = 'pullguard-manifests-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * The plain overlay needs certs/gen.sh's output beside it. Render a copy of manifests/ so the
 * repository stays untouched, following the documented steps: gen.sh, then the overlay.
 */
export function renderPlainOverlay(t: { teardown: (fn: () => void) => void }): Obj[] {
  const dir = scratch(t);
  cpSync(manifestsDir, join(dir, 'manifests'), { recursive: true });
  const overlay = join(dir, 'manifests', 'overlays', 'plain');
  runGen(join(dir, 'pki'), overlay);
  return renderKustomize(overlay);
}

/**
 * The Lease Role's rules: get and update on the one named Lease only; the one rule without
 * resourceNames grants create alone (RBAC sees no name on a create, so it cannot be limited).
 */
export function leaseRuleProblems(role: Obj, leaseName: string): string[] {
  const problems: string[] = [];
  for (const r of role.rules as Obj[]) {
    const verbs = [...(r.verbs as string[])].sort().join(',');
    if (r.apiGroups.join() !== 'coordination.k8s.io' || r.resources.join() !== 'leases')
      problems.push(`a rule on ${r.apiGroups}/${r.resources}`);
    else if (r.resourceNames === undefined) {
      if (verbs !== 'create') problems.push(`${verbs} on every Lease in the namespace`);
    } else if (r.resourceNames.join() !== leaseName) problems.push(`${verbs} on Leases ${r.resourceNames}`);
    else if (verbs !== 'get,update') problems.push(`${verbs} on the Lease ${leaseName}`);
  }
  return problems;
}
