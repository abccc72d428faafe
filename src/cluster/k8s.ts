// @kubernetes/client-node, loaded on first use. It is large (its generated models take ~60 MiB of
// heap once loaded, as much again as the rest of pullguard); a webhook or `pullguard check` without
// a cluster never uses it, so it never carries it. Type imports are free and stay static. What it
// loads is k8s-parts.ts, the names pullguard uses: in the bundle, the rest of the package (every
// other API group) is left out.
import { createRequire } from 'node:module';

type ClientNode = typeof import('./k8s-parts.ts');

let loaded: ClientNode | undefined;

export function clientNode(): ClientNode {
  // In the bundle (scripts/build.ts) esbuild sees the plain require() and bundles the parts as a
  // lazily initialised module; run from source, this ES module has no require() and makes one.
  loaded ??= (
    typeof require === 'function' ? require('./k8s-parts.ts') : createRequire(import.meta.url)('./k8s-parts.ts')
  ) as ClientNode;
  return loaded;
}
