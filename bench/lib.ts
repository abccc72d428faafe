// Shared by every benchmark: the machine and versions, percentiles, figures beside their baselines,
// the printed table and the JSON written to bench/results/<name>.json; running a process to its end.

import { execFile, execFileSync } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, loadavg, platform, release, totalmem, type as osType } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const fixturesDir = join(repoRoot, 'test', 'fixtures', 'admission');

/** BENCH_QUICK=1: small numbers, for the smoke test and for trying things out. */
export const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';

export function resultsDir(): string {
  return process.env.BENCH_RESULTS_DIR ? resolve(process.env.BENCH_RESULTS_DIR) : join(repoRoot, 'bench', 'results');
}

export interface Baseline {
  name: string;
  value: number | null;
  unit: string;
}

export interface Figure {
  name: string;
  value: number | null;
  unit: string;
  baseline: Baseline;
  /** value / baseline.value */
  ratio: number | null;
  goal?: string;
  met?: boolean;
}

export interface BenchResult {
  benchmark: string;
  quick: boolean;
  startedAt: string;
  elapsedMs: number;
  machine: Machine;
  versions: Versions;
  settings: Record<string, unknown>;
  figures: Figure[];
  /** raw numbers behind the figures (distributions, counts per image) */
  details: Record<string, unknown>;
  notes: string[];
}

export interface Machine {
  os: string;
  release: string;
  arch: string;
  cpus: number;
  cpuModel: string;
  availableParallelism: number;
  memoryBytes: number;
  /** 1-minute load average when the benchmark started and ended: other work on the machine skews every figure */
  loadAverage: { start: number; end: number };
}

export interface Versions {
  node: string;
  pullguard: string;
  registry: string;
  skopeo: string;
}

export function machine(loadAtStart: number): Machine {
  const list = cpus();
  return {
    os: `${osType()} (${platform()})`,
    release: release(),
    arch: arch(),
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    availableParallelism: availableParallelism(),
    memoryBytes: totalmem(),
    loadAverage: { start: round(loadAtStart, 2) ?? 0, end: round(loadavg()[0] ?? 0, 2) ?? 0 },
  };
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return (
      execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] })
        .trim()
        .split('\n')[0] ?? ''
    );
  } catch (err) {
    return `unavailable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message.split('\n')[0]})`;
  }
}

let versionsCache: Versions | undefined;
export function versions(): Versions {
  versionsCache ??= {
    node: process.version,
    pullguard: (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version,
    registry: firstLine(process.env.PULLGUARD_REGISTRY_BIN ?? '/usr/bin/docker-registry', ['--version']),
    skopeo: firstLine('skopeo', ['--version']),
  };
  return versionsCache;
}

/** Nearest-rank percentile of unsorted numbers. */
export function percentile(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function mean(values: readonly number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN;
}

export function round(n: number | null, digits = 3): number | null {
  if (n === null || !Number.isFinite(n)) return null;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** A figure beside its baseline; the ratio is value / baseline. */
export function figure(
  name: string,
  value: number | null,
  unit: string,
  baseline: Baseline,
  goal?: { text: string; met: (f: { value: number | null; ratio: number | null }) => boolean },
): Figure {
  const ratio = value !== null && baseline.value !== null && baseline.value !== 0 ? value / baseline.value : null;
  const f: Figure = {
    name,
    value: round(value),
    unit,
    baseline: { ...baseline, value: round(baseline.value) },
    ratio: round(ratio, 4),
  };
  if (goal) {
    f.goal = goal.text;
    f.met = goal.met({ value, ratio });
  }
  return f;
}

export const since = (t0: number) => performance.now() - t0;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function fmt(n: number | null, unit: string): string {
  if (n === null) return '–';
  const abs = Math.abs(n);
  const text =
    abs >= 1000
      ? Math.round(n).toLocaleString('en-US')
      : abs >= 100
        ? n.toFixed(0)
        : abs >= 10
          ? n.toFixed(1)
          : abs >= 1
            ? n.toFixed(2)
            : n.toFixed(3);
  return unit ? `${text} ${unit}` : text;
}

export function table(result: BenchResult): string {
  const rows = result.figures.map((f) => [
    f.name,
    fmt(f.value, f.unit),
    f.baseline.name,
    fmt(f.baseline.value, f.baseline.unit),
    f.ratio === null ? '–' : f.ratio.toFixed(3),
    f.goal ? `${f.goal} ${f.met ? '✓' : '✗'}` : '',
  ]);
  const head = ['figure', 'value', 'baseline', 'baseline value', 'ratio', 'goal'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const out = [
    `== ${result.benchmark}${result.quick ? ' (quick)' : ''}: ${(result.elapsedMs / 1000).toFixed(1)} s, load average ${result.machine.loadAverage.start} → ${result.machine.loadAverage.end} on ${result.machine.cpus} cpus`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ];
  for (const n of result.notes) out.push(`  note: ${n}`);
  return `${out.join('\n')}\n`;
}

export interface Recorder {
  settings: Record<string, unknown>;
  figures: Figure[];
  details: Record<string, unknown>;
  notes: string[];
  add(...f: Figure[]): void;
  note(text: string): void;
}

/** Runs one benchmark body, then prints its table and writes its JSON. */
export async function runBenchmark(name: string, body: (rec: Recorder) => Promise<void>): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg()[0] ?? 0;
  const t0 = performance.now();
  const rec: Recorder = {
    settings: {},
    figures: [],
    details: {},
    notes: [],
    add: (...f) => void rec.figures.push(...f),
    note: (text) => void rec.notes.push(text),
  };
  await body(rec);
  const result: BenchResult = {
    benchmark: name,
    quick: QUICK,
    startedAt,
    elapsedMs: Math.round(since(t0)),
    machine: machine(loadAtStart),
    versions: versions(),
    settings: rec.settings,
    figures: rec.figures,
    details: rec.details,
    notes: rec.notes,
  };
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${table(result)}\n`);
  return result;
}

/** A captured AdmissionReview with its registry host replaced and, optionally, its image and uid. */
export function admissionBody(
  file: string,
  o: { host: string; image?: string; uid?: string },
): Record<string, unknown> {
  let text = readFileSync(join(fixturesDir, file), 'utf8');
  if (o.image) {
    // Every occurrence of the fixture's image (spec and last-applied annotation) becomes the new one.
    const original = /127\.0\.0\.1:5000\/[a-z0-9/_.-]+:[A-Za-z0-9_.-]+/.exec(text)?.[0];
    if (!original) throw new Error(`${file}: no 127.0.0.1:5000 image to replace`);
    text = text.split(original).join(o.image);
  }
  text = text.split('127.0.0.1:5000').join(o.host);
  const body = JSON.parse(text) as { request: { uid: string } };
  if (o.uid) body.request.uid = o.uid;
  return body as unknown as Record<string, unknown>;
}

/** Sampled peak of process.memoryUsage().rss. */
export function rssSampler(intervalMs = 10): { peak: () => number; stop: () => number } {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    const rss = process.memoryUsage().rss;
    if (rss > peak) peak = rss;
  }, intervalMs);
  return {
    peak: () => peak,
    stop: () => {
      clearInterval(timer);
      const rss = process.memoryUsage().rss;
      if (rss > peak) peak = rss;
      return peak;
    },
  };
}

export const MiB = 1024 * 1024;

/**
 * Counts the connections undici opens in this process (its diagnostics channel), by host:port:
 * how often pullguard's registry client connects, without touching it.
 */
export function connectionCounter(): { count: (host?: string) => number; reset: () => void; stop: () => void } {
  const byHost = new Map<string, number>();
  const on = (message: unknown) => {
    const p = (message as { connectParams?: { hostname?: string; host?: string; port?: string | number } })
      .connectParams;
    const host = p?.port ? `${p.hostname}:${p.port}` : (p?.host ?? '?');
    byHost.set(host, (byHost.get(host) ?? 0) + 1);
  };
  diagnostics.subscribe('undici:client:connected', on);
  return {
    count: (host) => (host === undefined ? [...byHost.values()].reduce((a, b) => a + b, 0) : (byHost.get(host) ?? 0)),
    reset: () => byHost.clear(),
    stop: () => void diagnostics.unsubscribe('undici:client:connected', on),
  };
}

/** For CLI processes: no cluster (the variables that would point one at a cluster are dropped), no colour. */
export function noClusterEnv(): NodeJS.ProcessEnv {
  const { KUBECONFIG: _k, KUBERNETES_SERVICE_HOST: _h, KUBERNETES_SERVICE_PORT: _p, ...env } = process.env;
  return { ...env, NO_COLOR: '1' };
}

/** Runs a process to its end: its exit code (1 when it could not start or was killed) and output. */
export function runProcess(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 30_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({
        code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0,
        stdout,
        stderr,
      }),
    );
  });
}
