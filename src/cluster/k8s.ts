// @kubernetes/client-node, loaded on first use. It is large (its generated models take ~60 MiB of
// heap once loaded, as much again as the rest of pullguard); a webhook or `pullguard check` without
// a cluster never uses it, so it never carries it. Type imports are free and stay static.
import { createRequire } from 'node:module';

type ClientNode = typeof import('@kubernetes/client-node');

let loaded: ClientNode | undefined;

export function clientNode(): ClientNode {
  // In the bundle (scripts/build.ts) esbuild sees the plain require() and bundles the package as a
  // lazily initialised module; run from source, this ES module has no require() and makes one.
  loaded ??= (
    typeof require === 'function'
      ? require('@kubernetes/client-node')
      : createRequire(import.meta.url)('@kubernetes/client-node')
  ) as ClientNode;
  return loaded;
}
