// Files the tests read from the repository itself: the upstream test vectors in
// test/fixtures/vectors (see its README.md for where each comes from), the names of the captured
// AdmissionReview samples and the repository root.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const vectorsDir = join(repoRoot, 'test', 'fixtures', 'vectors');

/** The AdmissionReview bodies captured from a real API server, in test/fixtures/admission. */
export const ADMISSION_SAMPLES = [
  'pod-create.json',
  'pod-create-dryrun.json',
  'pod-create-init-digest.json',
  'pod-update-set-image.json',
  'pod-update-server-side-apply.json',
  'deployment-create.json',
  'deployment-create-latest.json',
  'deployment-update.json',
  'deployment-update-image.json',
] as const;

export function readVectors<T = Record<string, unknown>>(file: string): T[] {
  return JSON.parse(readFileSync(join(vectorsDir, file), 'utf8')) as T[];
}
