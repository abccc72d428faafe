// The version pullguard reports (--version, SARIF, JSON): the package's, read once.

import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function version(): string {
  if (cached === undefined) {
    // src/cli and dist/cli are both two folders below package.json
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    cached = pkg.version ?? 'unknown';
  }
  return cached;
}
