// Every face (the webhook, `check`, `diagnose`, the watch) is put together in src/app/, the
// composition root (docs/design.md, "Layers"): outside it, no module builds the pod check, an
// engine, a cluster reader or the watch, so each is built one way.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from '../helpers/fixtures.ts';

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const BUILT_IN_APP =
  /\bnew (PodCheck|Preflight|PodReader|ClusterReader|NodeWatcher|PodCredentials|Watch|AdmissionHandler)\(|\bbuildPodCheck\(/g;

t.test('outside src/app/, no module builds a face or its parts', async (t) => {
  const found: string[] = [];
  for (const file of files(join(repoRoot, 'src'))) {
    const path = relative(repoRoot, file).split('\\').join('/');
    if (path.startsWith('src/app/')) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(BUILT_IN_APP)) found.push(`${path}: ${m[0]}`);
  }
  t.same(found, [], 'built in src/app/ only');
});
