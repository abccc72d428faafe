#!/usr/bin/env node
// The installed command: npm's `pullguard` and `kubectl-pullguard` bins and the container image's
// entrypoint all run this file. It is kept to syntax every Node.js with ES modules can load, so an
// older Node gets one line naming the version it needs instead of a crash inside a dependency.
import module from 'node:module';

// package.json "engines" says the same (a test checks they agree): undici needs 22.19.
const MINIMUM = [22, 19, 0];
const have = process.versions.node.split('.').map(Number);
const differs = MINIMUM.findIndex((n, i) => have[i] !== n);
if (differs !== -1 && have[differs] < MINIMUM[differs]) {
  process.stderr.write(`pullguard needs Node.js >= ${MINIMUM.join('.')}; this is ${process.versions.node}\n`);
  process.exit(2);
}

// Compiled modules are cached on disk (in the system's temporary folder): later starts skip parsing.
if (typeof module.enableCompileCache === 'function') module.enableCompileCache();

import('../dist/cli/main.js').then((cli) => cli.runCli(process.argv.slice(2)));
