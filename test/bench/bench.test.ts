// Smoke test of `npm run bench`: one short mode (bursts, BENCH_QUICK=1) runs against the real
// registry and writes its JSON in the documented shape. Request counts are asserted; speed never is.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function bench(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(root, 'bench/run.ts'), ...args],
      { cwd: root, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({
          code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0,
          stdout,
          stderr,
        }),
    );
  });
}

interface Figure {
  name: string;
  value: number | null;
  unit: string;
  baseline: { name: string; value: number | null; unit: string };
  ratio: number | null;
  goal?: string;
  met?: boolean;
}

t.test('bursts, quick: prints a table and writes bench JSON', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-bench-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = await bench(['bursts'], { BENCH_QUICK: '1', BENCH_RESULTS_DIR: dir });
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /== bursts \(quick\)/);
  t.match(run.stdout, /figure\s+value\s+baseline\s+baseline value\s+ratio\s+goal/);

  const result = JSON.parse(readFileSync(join(dir, 'bursts.json'), 'utf8')) as Record<string, unknown> & {
    figures: Figure[];
    machine: Record<string, unknown>;
    versions: Record<string, unknown>;
  };
  t.equal(result.benchmark, 'bursts');
  t.equal(result.quick, true);
  t.type(result.startedAt, 'string');
  t.type(result.elapsedMs, 'number');
  t.match(result.machine, {
    os: String,
    release: String,
    arch: String,
    cpus: Number,
    cpuModel: String,
    memoryBytes: Number,
    loadAverage: { start: Number, end: Number },
  });
  t.match(result.versions, { node: process.version, pullguard: String, registry: /distribution/, skopeo: String });
  t.type(result.settings, 'object');
  t.type(result.details, 'object');
  t.ok(Array.isArray(result.notes));

  t.ok(result.figures.length > 0, 'figures');
  for (const f of result.figures) {
    t.type(f.name, 'string');
    t.ok(f.value === null || typeof f.value === 'number', `${f.name}: value`);
    t.type(f.unit, 'string');
    t.type(f.baseline.name, 'string', `${f.name}: every figure has a baseline`);
    t.ok(f.baseline.value === null || typeof f.baseline.value === 'number', `${f.name}: baseline value`);
    t.ok(f.ratio === null || typeof f.ratio === 'number', `${f.name}: ratio`);
    if (f.goal !== undefined) t.type(f.met, 'boolean', `${f.name}: a goal says whether it was met`);
  }

  // Counts, not speed.
  const byName = (prefix: string) => result.figures.find((f) => f.name.startsWith(prefix));
  t.equal(byName('(a) manifest requests')?.value, 2, 'for the whole burst: the tag, then its digest, once');
  t.equal(byName('(a) reviews allowed')?.value, byName('(a) reviews allowed')?.baseline.value, 'every review allowed');
  const cache = byName('(b) cache entries');
  t.ok(
    cache && cache.value !== null && cache.baseline.value !== null && cache.value <= cache.baseline.value,
    'cache within its limit',
  );
  t.equal(byName('(b) images answered ok')?.value, byName('(b) images answered ok')?.baseline.value);
});

t.test('an unknown benchmark is refused', async (t) => {
  const run = await bench(['no-such-bench'], { BENCH_RESULTS_DIR: tmpdir() });
  t.equal(run.code, 2);
  t.match(run.stderr, /unknown benchmark no-such-bench; choose from: .*warm-reviews/);
});
