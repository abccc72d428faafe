// `npm run build`: the CLI as an ES module bundle in dist/ (dist/cli/main.js and shared chunks), its
// dependencies included. The published package then installs without dependencies and starts by
// reading a few files instead of resolving hundreds; `serve` and the cluster client sit in chunks
// of their own that only their code paths load.
import { build, type Metafile, type Plugin } from 'esbuild';
import { rmSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

// undici's index also loads fetch, WebSocket, EventSource, cache stores, mocks and interceptors at
// once (tens of ms at every start); pullguard's own code (the registry transport) uses Agent,
// ProxyAgent, buildConnector and the request API only, so its imports get those parts alone. A name
// it imports that is not here fails the build. @kubernetes/client-node, in its own chunk, keeps the
// index (it uses fetch). Of client-node itself the bundle carries what src/cluster/k8s-parts.ts
// imports by name: esbuild leaves out the other API groups (~10 MB of generated code).
const undiciParts: Plugin = {
  name: 'undici-parts',
  setup(b) {
    const ours = join(root, 'src', sep);
    b.onResolve({ filter: /^undici$/ }, (args) =>
      args.importer.startsWith(ours) ? { path: 'undici-parts', namespace: 'undici-parts' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'undici-parts' }, () => ({
      resolveDir: root,
      loader: 'js',
      contents: [
        "import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';",
        "import api from 'undici/lib/api/index.js';",
        // as undici's index does: request() and the other API methods live on every dispatcher
        'Object.assign(Dispatcher.prototype, api);',
        "export { default as Agent } from 'undici/lib/dispatcher/agent.js';",
        "export { default as ProxyAgent } from 'undici/lib/dispatcher/proxy-agent.js';",
        "export { default as buildConnector } from 'undici/lib/core/connect.js';",
      ].join('\n'),
    }));
  },
};
/** The bundle into `outdir` (default dist/), emptied first; tests build into a folder of their own. */
export async function buildCli(opts: { outdir?: string; metafile?: boolean } = {}): Promise<Metafile | undefined> {
  const outdir = resolve(root, opts.outdir ?? 'dist');
  rmSync(outdir, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: root,
    // the page worker (cluster/page-split.ts starts it from dist/cluster/page-worker.js)
    entryPoints: ['src/cli/main.ts', 'src/cluster/page-worker.ts'],
    outbase: 'src',
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    // package.json "engines" and bin/pullguard.js's check name the same version
    target: 'node22.19',
    chunkNames: 'chunks/[name]-[hash]',
    // some dependencies are CommonJS and call require() for Node's own modules
    banner: {
      js: "import { createRequire as __pullguardRequire } from 'node:module'; const require = __pullguardRequire(import.meta.url);",
    },
    legalComments: 'linked',
    plugins: [undiciParts],
    metafile: opts.metafile ?? false,
    logLevel: 'warning',
  });
  return result.metafile;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await buildCli();
