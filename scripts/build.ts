// `npm run build`: the CLI as an ES module bundle in dist/ (dist/cli/main.js and shared chunks), its
// dependencies included. The published package then installs without dependencies and starts by
// reading a few files instead of resolving hundreds; `serve` and the cluster client sit in chunks
// of their own that only their code paths load.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/main.ts'],
  outbase: 'src',
  outdir: 'dist',
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
  logLevel: 'warning',
});
