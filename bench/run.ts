// `npm run bench [-- NAME...]`: runs every benchmark, or the named ones, one after another (they
// must not share the cores), printing a table each and writing bench/results/<name>.json.
// BENCH_QUICK=1 runs them with small numbers; BENCH_RESULTS_DIR writes the JSON elsewhere.

import { runBenchmark, type Recorder } from './lib.ts';
import { bursts } from './bursts.ts';
import { check50 } from './check-50.ts';
import { clusterScale } from './cluster-scale.ts';
import { coldChecks } from './cold-checks.ts';
import { deadRegistry } from './dead-registry.ts';
import { hostile } from './hostile.ts';
import { startup } from './startup.ts';
import { warmReviews } from './warm-reviews.ts';

const BENCHMARKS: Record<string, (rec: Recorder) => Promise<void>> = {
  'warm-reviews': warmReviews,
  'cold-checks': coldChecks,
  bursts,
  'dead-registry': deadRegistry,
  'check-50': check50,
  hostile,
  startup,
  'cluster-scale': clusterScale,
};

const asked = process.argv.slice(2).filter((a) => a !== '--');
const unknown = asked.filter((a) => !(a in BENCHMARKS));
if (unknown.length) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; choose from: ${Object.keys(BENCHMARKS).join(', ')}\n`);
  process.exit(2);
}
const t0 = performance.now();
const failed: string[] = [];
for (const name of asked.length ? asked : Object.keys(BENCHMARKS)) {
  try {
    await runBenchmark(name, BENCHMARKS[name]!);
  } catch (err) {
    // One broken benchmark must not hide the others' figures.
    failed.push(name);
    process.stderr.write(`benchmark ${name} failed: ${(err as Error).stack ?? String(err)}\n`);
  }
}
process.stdout.write(
  `all done in ${((performance.now() - t0) / 1000).toFixed(1)} s${failed.length ? `; failed: ${failed.join(', ')}` : ''}\n`,
);
// Registry pools and timers of the helpers would keep the loop alive a while longer.
process.exit(failed.length ? 1 : 0);
