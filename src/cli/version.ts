// The version pullguard reports (--version, SARIF, JSON): its package.json's, read once. The file
// sits above src/cli/, dist/cli/ or a bundle chunk folder: the nearest pullguard package.json up.

import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function version(): string {
  if (cached !== undefined) return cached;
  cached = 'unknown';
  for (let up = '../'; up.length <= 4 * 3; up += '../') {
    try {
      const pkg = JSON.parse(readFileSync(new URL(`${up}package.json`, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'pullguard' && pkg.version) {
        cached = pkg.version;
        break;
      }
    } catch {
      // not here: one folder further up
    }
  }
  return cached;
}
