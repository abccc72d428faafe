// The steering repo's shared/ folder sits beside this repository (../shared), in CI and on a
// developer's machine alike; PULLGUARD_SHARED points elsewhere when needed.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const sharedDir = process.env.PULLGUARD_SHARED ?? join(repoRoot, '..', 'shared');

export function readVectors<T = Record<string, unknown>>(file: string): T[] {
  return JSON.parse(readFileSync(join(sharedDir, 'vectors', file), 'utf8')) as T[];
}

export function readSample(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(sharedDir, 'samples', file), 'utf8')) as Record<string, unknown>;
}
