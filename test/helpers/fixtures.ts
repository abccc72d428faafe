// Files the tests read from the repository itself: the upstream test vectors in
// test/fixtures/vectors (see its README.md for where each comes from) and the repository root.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const vectorsDir = join(repoRoot, 'test', 'fixtures', 'vectors');

export function readVectors<T = Record<string, unknown>>(file: string): T[] {
  return JSON.parse(readFileSync(join(vectorsDir, file), 'utf8')) as T[];
}
