// Every YAML file under manifests/ parses, is used by a kustomization, and every object in it has
// the fields the API server requires.
import t from 'tap';
import { parseHostsToml } from '../../src/registry/hosts-dir.ts';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { loadConfig } from '../../src/config/schema.ts';
import { baseObjects, genScript, listYamlFiles, manifestsDir, readYaml, repoRoot, type Obj } from './lib.ts';
import { objectProblems } from './schema.ts';

const files = listYamlFiles();
const rel = (f: string) => relative(repoRoot, f);

t.test('every YAML file parses (as YAML 1.1, like the API server)', async (t) => {
  t.ok(files.length >= 10, `found ${files.length} YAML files`);
  for (const file of files) t.doesNotThrow(() => readYaml(file), rel(file));
});

// What each kustomization makes of the files it names.
interface Use {
  as: 'resource' | 'patch' | 'config' | 'hosts' | 'kustomization';
  by: string;
}
const uses = new Map<string, Use[]>();
const missingGenerated: string[] = [];
const kustomizations = files.filter((f) => /\/kustomization\.ya?ml$/.test(f));
const use = (file: string, u: Use) => uses.set(file, [...(uses.get(file) ?? []), u]);

t.test('kustomizations are well formed and every path they name exists', async (t) => {
  t.ok(
    existsSync(join(manifestsDir, 'kustomization.yaml')),
    'manifests/kustomization.yaml exists, so `kubectl apply -k manifests/` works',
  );
  for (const k of kustomizations) {
    const dir = dirname(k);
    const doc = readYaml(k)[0]!;
    use(k, { as: 'kustomization', by: rel(k) });
    // components/ hold kustomize Components (optional parts an overlay includes), the rest Kustomizations
    const component = rel(k).startsWith('manifests/components/');
    t.equal(
      doc.apiVersion,
      component ? 'kustomize.config.k8s.io/v1alpha1' : 'kustomize.config.k8s.io/v1beta1',
      `${rel(k)} apiVersion`,
    );
    t.equal(doc.kind, component ? 'Component' : 'Kustomization', `${rel(k)} kind`);
    for (const c of (doc.components as string[] | undefined) ?? [])
      t.ok(existsSync(join(dir, c, 'kustomization.yaml')), `${rel(k)}: component ${c} exists`);
    const named: [string, Use['as']][] = [
      ...((doc.resources as string[] | undefined) ?? []).map((r): [string, Use['as']] => [r, 'resource']),
      ...((doc.patches as Obj[] | undefined) ?? [])
        .filter((p) => p.path)
        .map((p): [string, Use['as']] => [p.path, 'patch']),
      ...((doc.configMapGenerator as Obj[] | undefined) ?? []).flatMap((g) =>
        ((g.files as string[] | undefined) ?? []).map((f): [string, Use['as']] => {
          const path = f.replace(/^[^=]*=/, '');
          // a node's containerd hosts.toml (components/node-hosts), else pullguard's own configuration
          return [path, path.endsWith('.toml') ? 'hosts' : 'config'];
        }),
      ),
    ];
    for (const [path, as] of named) {
      const full = join(dir, path);
      if (existsSync(full)) {
        if (statSync(full).isDirectory())
          t.ok(existsSync(join(full, 'kustomization.yaml')), `${rel(k)}: ${path} is a kustomization`);
        else use(full, { as, by: rel(k) });
        continue;
      }
      // Only certs/gen.sh output may be missing: it holds keys, so it is ignored by git.
      const ignored =
        existsSync(join(dir, '.gitignore')) && readFileSync(join(dir, '.gitignore'), 'utf8').split('\n').includes(path);
      const written = readFileSync(genScript, 'utf8').includes(path);
      t.ok(ignored && written, `${rel(k)}: ${path} exists, or is written by certs/gen.sh and git-ignored`);
      missingGenerated.push(full);
    }
  }
});

t.test('every YAML file is used by a kustomization', async (t) => {
  for (const file of files) t.ok(uses.has(file), `${rel(file)} is named by a kustomization`);
});

t.test('every object has the fields its kind requires', async (t) => {
  for (const [file, u] of uses) {
    if (!u.some((x) => x.as === 'resource')) continue;
    for (const o of readYaml(file))
      t.same(objectProblems(o, { rendered: false }), [], `${rel(file)}: ${o.kind}/${o.metadata?.name}`);
  }
});

t.test('patches name an object the base defines', async (t) => {
  const targets = baseObjects().map((o) => `${o.kind}/${o.metadata.name}`);
  for (const [file, u] of uses) {
    if (!u.some((x) => x.as === 'patch')) continue;
    for (const o of readYaml(file)) {
      t.ok(o.apiVersion && o.kind && o.metadata?.name, `${rel(file)}: patch has apiVersion, kind and metadata.name`);
      t.ok(
        targets.includes(`${o.kind}/${o.metadata?.name}`),
        `${rel(file)}: patches ${o.kind}/${o.metadata?.name}, which is in the base`,
      );
    }
  }
});

t.test("the nodes' hosts.toml files in ConfigMaps read as pullguard reads them, without warnings", async (t) => {
  let seen = 0;
  for (const [file, u] of uses) {
    if (!u.some((x) => x.as === 'hosts')) continue;
    seen++;
    const warnings: string[] = [];
    const endpoints = parseHostsToml(file, readFileSync(file, 'utf8'), dirname(file), warnings);
    t.ok(endpoints.length > 0, `${rel(file)} names at least one host`);
    t.same(warnings, [], `${rel(file)}: no unknown keys`);
  }
  t.ok(seen >= 1, 'the node-hosts component has its example');
});

t.test('the configuration files in ConfigMaps validate with the schema', async (t) => {
  let seen = 0;
  for (const [file, u] of uses) {
    if (!u.some((x) => x.as === 'config')) continue;
    seen++;
    const text = readFileSync(file, 'utf8');
    t.equal(readYaml(file).length, 1, `${rel(file)} is one document`);
    // read the way `pullguard serve --config` reads it
    t.doesNotThrow(() => loadConfig({ file, env: {} }), `${rel(file)} validates`);
    t.notMatch(text, /\t/, `${rel(file)} has no tabs`);
  }
  t.equal(seen, 1, 'one configuration file (manifests/base/config.yaml)');
});
