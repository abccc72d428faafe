// The dependency-direction rule of docs/design.md: a module under src/ imports only its own layer and
// the layers below it, imports form no cycle (between files or between folders), and every folder
// or file directly under src/ has a layer. Run by `npm run lint`; rules in .ci/layers.rules.ts.
//
// Imports come from the TypeScript compiler itself (`tsc --explainFiles`, which lists for every
// file the files that import it, type-only and dynamic imports included), so the check reads the
// same syntax the compiler does; dependency-cruiser 18 needs a TypeScript 2–6 compiler API, which
// TypeScript 7 no longer ships.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface Exception {
  /** importing file, relative to the project root (src/…) */
  from: string;
  /** imported file */
  to: string;
  /** why it is allowed for now, and the issue that removes it */
  why: string;
}

export interface Rules {
  /** lowest first; each entry is a folder or a file directly under src/ ("reference", "findings.ts") */
  layers: string[][];
  exceptions: Exception[];
}

export interface Edge {
  from: string;
  to: string;
}

export interface Problem {
  rule: 'unplaced-module' | 'upward-import' | 'cycle' | 'folder-cycle' | 'stale-exception';
  message: string;
}

/** The top-level entry under src/ a file belongs to: "src/registry/client.ts" → "registry". */
export function moduleOf(file: string): string {
  const parts = file.split('/');
  return parts[1] ?? '';
}

/** Import edges between files under src/, read from `tsc --explainFiles` output. */
export function parseExplainFiles(output: string, cwd: string, root: string): Edge[] {
  const edges: Edge[] = [];
  let current: string | undefined;
  const rel = (p: string) => relative(root, resolve(cwd, p)).split(sep).join('/');
  for (const line of output.split('\n')) {
    if (line && !/^\s/.test(line)) {
      current = rel(line.trim());
      continue;
    }
    const m = /^\s+Imported via (['"])(?:.*?)\1 from file '(.*)'/.exec(line);
    if (!m || current === undefined) continue;
    const from = rel(m[2]!);
    if (from.startsWith('src/') && current.startsWith('src/')) edges.push({ from, to: current });
  }
  return edges;
}

/** The TypeScript 7 compiler's native executable, as the package's own launcher finds it. */
async function compiler(): Promise<string> {
  const pkg = createRequire(import.meta.url).resolve('typescript/package.json');
  const { default: getExePath } = (await import(pathToFileURL(join(dirname(pkg), 'lib', 'getExePath.js')).href)) as {
    default: () => string;
  };
  return getExePath();
}

/** Runs the project's TypeScript compiler (no type check) and returns the import edges under src/. */
export async function readImports(root: string, tsconfig: string): Promise<Edge[]> {
  // The native compiler directly, not its node launcher: a test runner's loader hooks (NODE_OPTIONS)
  // must not load the launcher.
  const r = spawnSync(await compiler(), ['-p', tsconfig, '--noEmit', '--noCheck', '--explainFiles'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`tsc --explainFiles failed (${r.status ?? r.signal}): ${r.stdout}${r.stderr}`);
  return parseExplainFiles(r.stdout, root, root);
}

/** The folders and files directly under src/. */
export function srcEntries(root: string): string[] {
  return readdirSync(join(root, 'src'), { withFileTypes: true })
    .filter((d) => d.isDirectory() || /\.[cm]?ts$/.test(d.name))
    .map((d) => d.name)
    .sort();
}

/** Strongly connected components with more than one member (Tarjan), each sorted. */
function cycles(nodes: Iterable<string>, next: (n: string) => Iterable<string>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return out;
}

function adjacency(edges: Edge[], key: (f: string) => string): Map<string, Set<string>> {
  const adj = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = key(e.from);
    const b = key(e.to);
    if (a === b) continue;
    if (!adj.has(a)) adj.set(a, new Set());
    if (!adj.has(b)) adj.set(b, new Set());
    adj.get(a)!.add(b);
  }
  return adj;
}

function reaches(adj: Map<string, Set<string>>, from: string, to: string): boolean {
  const seen = new Set([from]);
  const todo = [from];
  while (todo.length) {
    const n = todo.pop()!;
    if (n === to) return true;
    for (const m of adj.get(n) ?? []) {
      if (seen.has(m)) continue;
      seen.add(m);
      todo.push(m);
    }
  }
  return false;
}

/** Every way the imports break the rules; empty when they keep them. */
export function check(edges: Edge[], entries: string[], rules: Rules): Problem[] {
  const problems: Problem[] = [];
  const layerOf = new Map<string, number>();
  rules.layers.forEach((layer, i) => {
    for (const m of layer) layerOf.set(m, i);
  });
  const describe = (m: string) => `${m.endsWith('.ts') ? m : `${m}/`} (layer ${layerOf.get(m)})`;

  for (const entry of entries) {
    if (!layerOf.has(entry))
      problems.push({
        rule: 'unplaced-module',
        message: `src/${entry}${entry.endsWith('.ts') ? '' : '/'} has no layer: add it to .ci/layers.rules.ts and docs/design.md`,
      });
  }

  const excepted = (e: Edge) => rules.exceptions.find((x) => x.from === e.from && x.to === e.to);
  const kept = edges.filter((e) => !excepted(e));

  const isUpward = (e: Edge) => {
    const a = layerOf.get(moduleOf(e.from));
    const b = layerOf.get(moduleOf(e.to));
    return a !== undefined && b !== undefined && b > a;
  };
  for (const e of kept.filter(isUpward)) {
    problems.push({
      rule: 'upward-import',
      message: `${e.from} imports ${e.to}: ${describe(moduleOf(e.from))} must not depend on ${describe(moduleOf(e.to))}`,
    });
  }

  // Every cycle through an upward import is reported above as that import; what is left are cycles
  // inside one layer.
  const level = kept.filter((e) => !isUpward(e));
  const fileAdj = adjacency(level, (f) => f);
  for (const scc of cycles(fileAdj.keys(), (n) => fileAdj.get(n) ?? [])) {
    problems.push({ rule: 'cycle', message: `files import each other: ${scc.join(' ⇄ ')}` });
  }
  const folderAdj = adjacency(level, moduleOf);
  for (const scc of cycles(folderAdj.keys(), (n) => folderAdj.get(n) ?? [])) {
    const links = level
      .filter(
        (e) => scc.includes(moduleOf(e.from)) && scc.includes(moduleOf(e.to)) && moduleOf(e.from) !== moduleOf(e.to),
      )
      .map((e) => `${e.from} → ${e.to}`);
    problems.push({
      rule: 'folder-cycle',
      message: `folders import each other: ${scc.map((m) => `src/${m}`).join(' ⇄ ')} (${links.join('; ')})`,
    });
  }

  for (const x of rules.exceptions) {
    const e = edges.find((e) => e.from === x.from && e.to === x.to);
    const upward = isUpward(x);
    const closesCycle = reaches(fileAdj, x.to, x.from) || reaches(folderAdj, moduleOf(x.to), moduleOf(x.from));
    if (!e)
      problems.push({
        rule: 'stale-exception',
        message: `exception ${x.from} → ${x.to} matches no import any more: remove it from .ci/layers.rules.ts`,
      });
    else if (!upward && !closesCycle)
      problems.push({
        rule: 'stale-exception',
        message: `exception ${x.from} → ${x.to} is no longer needed (neither upward nor in a cycle): remove it from .ci/layers.rules.ts`,
      });
  }
  return problems;
}

async function main(): Promise<number> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const { rules } = (await import('./layers.rules.ts')) as { rules: Rules };
  const edges = await readImports(root, join('.ci', 'tsconfig.layers.json'));
  const problems = check(edges, srcEntries(root), rules);
  for (const p of problems) console.error(`layers/${p.rule}: ${p.message}`);
  if (problems.length) {
    console.error(`${problems.length} layer problem(s); the layers are described in docs/design.md`);
    return 1;
  }
  console.log(
    `layers: ${edges.length} imports between ${new Set(edges.flatMap((e) => [e.from, e.to])).size} files keep the layers (${rules.exceptions.length} named exceptions)`,
  );
  return 0;
}

if (import.meta.main) process.exitCode = await main();
