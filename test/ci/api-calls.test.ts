// Every Kubernetes API call is made in src/cluster/ (docs/design.md, "Layers"): outside it, modules
// may name the client's types, never load it or make an API client of their own.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from '../helpers/fixtures.ts';

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** What in a file loads the Kubernetes client or makes a request with it. */
function apiUses(text: string): string[] {
  const uses: string[] = [];
  // value imports (import type and `import { type X }` alone are free)
  for (const m of text.matchAll(/^import\s+(?!type\s)([^;]*?)\s+from\s+'@kubernetes\/client-node';/gms)) {
    const names = /\{([^}]*)\}/.exec(m[1]!)?.[1];
    const values = names === undefined ? [m[1]!] : names.split(',').filter((n) => n.trim() && !/^\s*type\s/.test(n));
    if (values.length) uses.push(`imports ${values.map((v) => v.trim()).join(', ')}`);
  }
  if (/import\(\s*'@kubernetes\/client-node'\s*\)/.test(text)) uses.push('loads the client');
  if (/\bmakeApiClient\(|\bclientNode\(\)|\bmakeInformer\(/.test(text)) uses.push('makes an API client');
  return uses;
}

t.test('the check sees value imports and API clients, not type imports', async (t) => {
  t.same(apiUses("import type { V1Pod } from '@kubernetes/client-node';"), []);
  t.same(apiUses("import { type V1Pod, type KubeConfig } from '@kubernetes/client-node';"), []);
  t.same(apiUses("import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';"), ['imports CoreV1Api']);
  t.same(apiUses('const api = kc.makeApiClient(CoreV1Api);'), ['makes an API client']);
});

t.test('outside src/cluster/, no module calls the Kubernetes API', async (t) => {
  const src = join(repoRoot, 'src');
  const found: string[] = [];
  for (const file of files(src)) {
    const path = relative(repoRoot, file).split('\\').join('/');
    if (path.startsWith('src/cluster/')) continue;
    for (const use of apiUses(readFileSync(file, 'utf8'))) found.push(`${path} ${use}`);
  }
  t.same(found, [], 'every API call is in src/cluster/');
});
