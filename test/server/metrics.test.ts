// The per-review metrics are counted without prom-client's per-call work, and must read exactly as
// prom-client's own counter and histogram would after the same reviews.
import t from 'tap';
import { Counter, Histogram, Registry } from 'prom-client';
import { Metrics } from '../../src/server/metrics.ts';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

t.test('review counts and latencies read as prom-client would write them', async (t) => {
  const ours = new Metrics();
  const reference = new Registry();
  const reviews = new Counter({
    name: 'pullguard_reviews_total',
    help: 'Admission reviews by kind, operation, worst verdict and resulting action',
    labelNames: ['kind', 'operation', 'verdict', 'action'],
    registers: [reference],
  });
  const seconds = new Histogram({
    name: 'pullguard_review_duration_seconds',
    help: 'Time to answer an admission review',
    labelNames: ['kind'],
    buckets: BUCKETS,
    registers: [reference],
  });
  const findings = new Counter({
    name: 'pullguard_findings_total',
    help: 'Findings that were not ok, by reason and action',
    labelNames: ['reason', 'action'],
    registers: [reference],
  });
  const kinds = ['Pod', 'Deployment', 'CronJob'];
  const verdicts = [
    ['ok', 'allow'],
    ['fail', 'deny'],
    ['risk', 'warn'],
  ] as const;
  // Every bucket edge, values between them, zero and past the last one.
  const values = [0, 0.0001, ...BUCKETS, ...BUCKETS.map((b) => b * 1.5), 12.5, 60];
  values.forEach((v, i) => {
    const kind = kinds[i % kinds.length]!;
    const [verdict, action] = verdicts[i % verdicts.length]!;
    const operation = i % 2 ? 'UPDATE' : 'CREATE';
    for (const m of [ours.reviews, reviews]) m.inc({ kind, operation, verdict, action });
    for (const m of [ours.reviewSeconds, seconds]) m.observe({ kind }, v);
    if (verdict !== 'ok') for (const m of [ours.findings, findings]) m.inc({ reason: 'tag-not-found', action });
  });
  const text = await ours.registry.metrics();
  for (const name of ['pullguard_reviews_total', 'pullguard_review_duration_seconds', 'pullguard_findings_total']) {
    const block = (all: string) =>
      all
        .split('\n\n')
        .find((b) => b.includes(`# TYPE ${name} `))
        ?.trim();
    const want = block(await reference.metrics());
    t.ok(want?.includes(`${name}`), `${name}: the reference has it`);
    t.equal(block(text), want, `${name}: the same lines`);
  }
});
