// cluster-scale (issue 25): the installed command (bin/pullguard.js over the bundle `npm run build`
// makes) against a private test/kube-lab (its own etcd) filled with objects shaped like a real
// cluster's (test/helpers/cluster-fill.ts): N nodes of ~12 KB with 50 images each, M pods with 2
// containers, 15 env entries, resources and a probe, 1 in 20 stuck in ImagePullBackOff.
//
// `serve` with the watch runs three times, each in a process of its own: against the empty lab (the
// baseline), with the N nodes, and with the nodes and the M pods. Figures: its RSS once the lists are
// in (per node and per pod over the run before), its peak RSS (VmHWM) against 0.7 of the chart's
// 384Mi limit, the warm review p99 during the initial pod list (2 clients, one review after another
// on kept-alive connections, as the API server sends them; the list's start and end are serve's own
// debug lines), and the requests to the API server per minute once the lists are in
// (pullguard_api_requests_total). Then `diagnose -A`: its time and peak RSS (GNU time).
//
// Sizes: BENCH_QUICK=1 20 nodes / 400 pods; default 200 / 5,000 (CI); BENCH_CLUSTER_FULL=1
// 5,000 / 150,000 (Kubernetes' envelope; long: see bench/README.md); BENCH_CLUSTER_NODES and
// BENCH_CLUSTER_PODS set either. BENCH_CLI=PATH measures another build's bin/pullguard.js (a before).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Agent, request } from 'undici';
import { fillLab } from '../test/helpers/cluster-fill.ts';
import { startKubeLab, type KubeLab } from '../test/helpers/kube-lab.ts';
import { sharedPki } from '../test/helpers/pki.ts';
import { freePort, startRegistry, type TestRegistry } from '../test/helpers/registry.ts';
import { admissionBody, figure, MiB, percentile, QUICK, type Recorder, repoRoot, round, since, sleep } from './lib.ts';
import { imageNodeFlags, postReview } from './webhook.ts';

const MEMORY_LIMIT = 384 * MiB;

/**
 * glibc's malloc settings as the image sets them (the Dockerfile's `ENV MALLOC_…`), then those of
 * the bench's own environment (to compare: `MALLOC_ARENA_MAX=8 npm run bench -- cluster-scale`).
 */
function mallocEnv(withImage = true): NodeJS.ProcessEnv {
  if (!withImage) return Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_')));
  const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
  const image = [...dockerfile.matchAll(/\b(MALLOC_[A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]);
  const own = Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_'));
  return Object.fromEntries([...image, ...own]);
}
const FULL = process.env.BENCH_CLUSTER_FULL === '1';
const NODES = Number(process.env.BENCH_CLUSTER_NODES ?? (FULL ? 5_000 : QUICK ? 20 : 200));
const PODS = Number(process.env.BENCH_CLUSTER_PODS ?? (FULL ? 150_000 : QUICK ? 400 : 5_000));
const CLI = process.env.BENCH_CLI ?? join(repoRoot, 'bin', 'pullguard.js');
/** steady state: API requests counted over this window once the lists are in */
const STEADY_MS = QUICK ? 10_000 : FULL ? 60_000 : 30_000;

function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

interface LogLine {
  time: number;
  msg: string;
  count?: number;
}

interface Serve {
  child: ChildProcess;
  url: string;
  metricsUrl: string;
  lines: LogLine[];
  stderr: string[];
}

/** `pullguard serve` with the watch, as the chart runs it (the image's node flags), against the lab. */
async function startServe(lab: KubeLab, reg: TestRegistry, timeoutMs: number): Promise<Serve> {
  const pki = await sharedPki();
  const [port, metricsPort] = [await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    [
      ...imageNodeFlags(),
      CLI,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--metrics-port',
      String(metricsPort),
      '--tls-cert',
      pki.server.certFile,
      '--tls-key',
      pki.server.keyFile,
      '--insecure-registry',
      reg.host,
      '--kubeconfig',
      lab.kubeconfig,
    ],
    {
      env: {
        ...mallocEnv(),
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        PULLGUARD_WATCH_ENABLED: 'true',
        PULLGUARD_LOG_LEVEL: 'debug',
        POD_NAMESPACE: 'pullguard',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const serve: Serve = {
    child,
    url: `https://127.0.0.1:${port}`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    lines: [],
    stderr: [],
  };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const l = JSON.parse(line) as LogLine;
      serve.lines.push({ time: l.time, msg: l.msg, ...(l.count !== undefined ? { count: l.count } : {}) });
    } catch {
      // a line that is not pino's JSON: kept as text
      serve.lines.push({ time: Date.now(), msg: line });
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => serve.stderr.push(line));
  const agent = new Agent({ connect: { ca: pki.caPem } });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`serve exited ${child.exitCode}: ${serve.stderr.slice(-5).join(' | ')}`);
      if (Date.now() > deadline) throw new Error('serve did not become ready');
      const ok = await request(`${serve.url}/healthz`, { dispatcher: agent, headersTimeout: 2_000 })
        .then(async (r) => {
          await r.body.dump();
          return r.statusCode === 200;
        })
        .catch(() => false);
      if (ok) break;
      await sleep(100);
    }
  } finally {
    await agent.close();
  }
  return serve;
}

async function stopServe(serve: Serve): Promise<void> {
  if (serve.child.exitCode !== null) return;
  const gone = new Promise<void>((resolve) => serve.child.once('exit', () => resolve()));
  serve.child.kill('SIGTERM');
  const timer = setTimeout(() => serve.child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

/** Waits (bounded) for a log line; its time. */
async function logged(serve: Serve, msg: string, timeoutMs: number): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = serve.lines.find((l) => l.msg === msg);
    if (line) return line;
    if (serve.child.exitCode !== null) throw new Error(`serve exited ${serve.child.exitCode} before "${msg}"`);
    if (Date.now() > deadline) throw new Error(`serve did not log "${msg}" within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** One scrape: the API request counts by `verb resource`, and the heap in use. */
async function scrape(
  serve: Serve,
): Promise<{ requests: Record<string, number>; heapUsed: number; heapTotal: number; external: number }> {
  const res = await request(serve.metricsUrl, { headersTimeout: 10_000 });
  const text = await res.body.text();
  const requests: Record<string, number> = {};
  for (const m of text.matchAll(/^pullguard_api_requests_total\{verb="([^"]*)",resource="([^"]*)"\} (\d+)/gm))
    requests[`${m[1]} ${m[2]}`] = Number(m[3]);
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  return {
    requests,
    heapUsed: metric('pullguard_nodejs_heap_size_used_bytes'),
    heapTotal: metric('pullguard_nodejs_heap_size_total_bytes'),
    external: metric('pullguard_nodejs_external_memory_bytes'),
  };
}

/** The requests that keep pullguard's view current: lists and watches of its collections, and the Lease. */
function keepingCurrent(perMinute: Record<string, number>): number {
  let n = 0;
  for (const [k, v] of Object.entries(perMinute)) if (/^(list|watch) (?!events)|leases$/.test(k)) n += v;
  return n;
}

interface Review {
  at: number;
  ms: number;
}

/** Reviews, one after another on 2 kept-alive connections, until `until`; each with its start (epoch ms). */
function reviewLoop(
  url: string,
  agent: Agent,
  body: string,
  until: () => boolean,
): Promise<{ ok: Review[]; failed: number }> {
  const out = { ok: [] as Review[], failed: 0 };
  const one = async () => {
    while (!until()) {
      const at = Date.now();
      const t0 = performance.now();
      try {
        const res = await postReview(url, body, agent, 30_000);
        await res.body.dump();
        if (res.statusCode === 200) out.ok.push({ at, ms: since(t0) });
        else out.failed++;
      } catch {
        out.failed++;
        await sleep(50);
      }
    }
  };
  return Promise.all([one(), one()]).then(() => out);
}

interface PhaseResult {
  rss: number;
  peak: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  listMs: number | null;
  podsHeld: number | null;
  reviewsInList: number;
  p50InList: number | null;
  p99InList: number | null;
  /** the same reviews after the lists, while the steady requests are counted */
  p99Steady: number | null;
  reviewsSteady: number;
  maxInList: number | null;
  requestsPerMinute: Record<string, number>;
  requestsAtListed: Record<string, number>;
  /** the highest RSS sampled (every 250 ms) before the pod list, during it, and after it */
  rssBy: { beforePodList: number; podList: number; afterLists: number };
}

/** Samples a process's RSS every 250 ms until stopped: when its peak came, not only how high. */
function sampleRss(pid: number): () => { at: number; rss: number }[] {
  const samples: { at: number; rss: number }[] = [];
  const timer = setInterval(() => {
    try {
      samples.push({ at: Date.now(), rss: memoryOf(pid).rss });
    } catch {
      // the process has ended
    }
  }, 250);
  return () => {
    clearInterval(timer);
    return samples;
  };
}

/** One serve run: the lists, reviews meanwhile, then memory and the steady requests. */
async function servePhase(lab: KubeLab, reg: TestRegistry, body: string, pods: number): Promise<PhaseResult> {
  const pki = await sharedPki();
  const listTimeout = 120_000 + pods * 3;
  const serve = await startServe(lab, reg, 120_000);
  const agent = new Agent({ connect: { ca: pki.caPem }, connections: 2 });
  const sampled = sampleRss(serve.child.pid!);
  try {
    let done = false;
    const reviews = reviewLoop(serve.url, agent, body, () => done);
    const [, podsListed] = await Promise.all([
      logged(serve, 'nodes listed', listTimeout),
      logged(serve, 'pods in all namespaces listed', listTimeout),
    ]);
    done = true;
    const { ok } = await reviews;
    // a build without the line (a before): the window starts with the first review
    const listStart =
      serve.lines.find((l) => l.msg === 'listing pods in all namespaces')?.time ?? ok[0]?.at ?? podsListed.time;
    // warm: after the first 20 answers (the registry and the cluster reads cached)
    const warmFrom = ok.length > 20 ? ok[20]!.at : Number.POSITIVE_INFINITY;
    const inList = ok.filter((r) => r.at >= Math.max(listStart, warmFrom) && r.at + r.ms <= podsListed.time);
    const ms = inList.map((r) => r.ms);
    await sleep(5_000); // settle: what stays, not the list's garbage
    const mem = memoryOf(serve.child.pid!);
    const first = await scrape(serve);
    // the same reviews once the lists are in: the machine's own noise, the baseline of the p99
    let steadyDone = false;
    const steadyReviews = reviewLoop(serve.url, agent, body, () => steadyDone);
    await sleep(STEADY_MS);
    steadyDone = true;
    const steadyMs = (await steadyReviews).ok.map((r) => r.ms);
    const second = await scrape(serve);
    const samples = sampled();
    const highest = (from: number, to: number) =>
      samples.filter((x) => x.at >= from && x.at < to).reduce((m, x) => Math.max(m, x.rss), 0);
    const rssBy = {
      beforePodList: highest(0, listStart),
      podList: highest(listStart, podsListed.time),
      afterLists: highest(podsListed.time, Number.POSITIVE_INFINITY),
    };
    const perMinute: Record<string, number> = {};
    for (const [k, n] of Object.entries(second.requests)) {
      const d = n - (first.requests[k] ?? 0);
      if (d) perMinute[k] = round((d * 60_000) / STEADY_MS, 2) ?? 0;
    }
    return {
      rss: mem.rss,
      peak: memoryOf(serve.child.pid!).peak,
      heapUsed: first.heapUsed,
      heapTotal: first.heapTotal,
      external: first.external,
      listMs: podsListed.time - listStart,
      podsHeld: podsListed.count ?? null,
      reviewsInList: inList.length,
      p50InList: ms.length ? percentile(ms, 50) : null,
      p99InList: ms.length ? percentile(ms, 99) : null,
      p99Steady: steadyMs.length ? percentile(steadyMs, 99) : null,
      reviewsSteady: steadyMs.length,
      maxInList: ms.length ? ms.reduce((a, b) => Math.max(a, b)) : null,
      requestsPerMinute: perMinute,
      requestsAtListed: first.requests,
      rssBy,
    };
  } finally {
    sampled();
    await agent.close();
    await stopServe(serve);
  }
}

/** `pullguard diagnose -A -o json` under GNU time: seconds, peak RSS, diagnoses, exit code. */
function diagnoseAll(
  lab: KubeLab,
  reg: TestRegistry,
): Promise<{ s: number; peak: number; diagnoses: number; code: number; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-cluster-scale-'));
  const timeFile = join(dir, 'time');
  return new Promise((resolve) => {
    execFile(
      '/usr/bin/time',
      [
        '-f',
        '%e %M',
        '-o',
        timeFile,
        process.execPath,
        ...imageNodeFlags(),
        CLI,
        'diagnose',
        '-A',
        '-o',
        'json',
        '--insecure-registry',
        reg.host,
        '--kubeconfig',
        lab.kubeconfig,
      ],
      {
        // as npm installs it on a workstation: not the image's settings
        env: { ...mallocEnv(false), PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
        timeout: 600_000,
        maxBuffer: 256 * MiB,
      },
      (err, stdout, stderr) => {
        const [s = Number.NaN, kb = Number.NaN] = readFileSync(timeFile, 'utf8')
          .trim()
          .split('\n')
          .at(-1)!
          .split(' ')
          .map(Number);
        rmSync(dir, { recursive: true, force: true });
        let diagnoses = 0;
        try {
          const out = JSON.parse(stdout) as { diagnoses?: unknown[] } | unknown[];
          diagnoses = Array.isArray(out) ? out.length : (out.diagnoses?.length ?? 0);
        } catch {
          diagnoses = -1;
        }
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1
          : 0;
        resolve({ s, peak: kb * 1024, diagnoses, code, stderr: stderr.slice(0, 500) });
      },
    );
  });
}

export async function clusterScale(rec: Recorder): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing`);
  if (!existsSync(join(CLI, '..', '..', 'dist', 'cli', 'main.js')))
    throw new Error(`${CLI}: no bundle beside it; run "npm run build" first`);
  rec.settings = {
    nodes: NODES,
    pods: PODS,
    stuck: '1 pod in 20 (ImagePullBackOff, written through the status subresource)',
    cli: CLI,
    nodeFlags: imageNodeFlags(),
    reviews: 'pod-create.json, warm, 2 clients one after another on kept-alive connections',
    steadyWindowMs: STEADY_MS,
    memoryLimit: '384Mi (charts/pullguard/values.yaml)',
    malloc: { serve: mallocEnv(), diagnose: mallocEnv(false) },
  };
  const t0 = performance.now();
  const lab = await startKubeLab();
  const reg = await startRegistry({ auth: 'none' });
  try {
    await reg.pushImage('demo/bad-app', '1.0');
    const body = JSON.stringify(admissionBody('pod-create.json', { host: reg.host }));
    // the Lease's namespace
    const admin = new Agent({ connect: { rejectUnauthorized: false } });
    await request(`${lab.url}/api/v1/namespaces`, {
      method: 'POST',
      dispatcher: admin,
      headers: { authorization: `Bearer ${lab.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ metadata: { name: 'pullguard' } }),
    }).then((r) => r.body.dump());
    await admin.close();

    // each phase's numbers go to stderr as it ends: a long run that fails later keeps them
    const said = <T>(what: string, r: T): T => {
      process.stderr.write(`cluster-scale: ${what}: ${JSON.stringify(r)}\n`);
      return r;
    };
    const empty = said('serve, empty', await servePhase(lab, reg, body, 0));
    const progress = (what: string) => (done: number, total: number) =>
      process.stderr.write(`cluster-scale: ${what} ${done}/${total} (${Math.round(since(t0) / 1000)} s)\n`);
    const tNodes = performance.now();
    await fillLab(lab, { nodes: NODES, pods: 0, namespaces: 0, stuckImage: () => '', progress: progress('nodes') });
    const nodesMs = since(tNodes);
    const withNodes = said('serve, nodes', await servePhase(lab, reg, body, 0));
    const tPods = performance.now();
    const filled = await fillLab(lab, {
      nodes: 0,
      bindTo: NODES,
      pods: PODS,
      stuckImage: (i) => `${reg.host}/demo/missing:${i % 5}`,
      progress: progress('pods'),
    });
    const podsMs = since(tPods);
    const full = said('serve, nodes and pods', await servePhase(lab, reg, body, PODS));
    const diag = said('diagnose -A', await diagnoseAll(lab, reg));

    const perNode = (withNodes.rss - empty.rss) / Math.max(1, NODES);
    const perPod = (full.rss - withNodes.rss) / Math.max(1, PODS);
    const heapPerNode = (withNodes.heapUsed - empty.heapUsed) / Math.max(1, NODES);
    const heapPerPod = (full.heapUsed - withNodes.heapUsed) / Math.max(1, PODS);
    const limit = { name: 'memory limit', value: MEMORY_LIMIT / MiB, unit: 'MiB' };
    const none = { name: '', value: null, unit: '' };
    const size = `${NODES} nodes, ${PODS} pods`;
    rec.add(
      figure(`serve, watch on, ${size}: peak RSS`, full.peak / MiB, 'MiB', limit, {
        text: 'ratio < 0.7',
        met: (f) => (f.ratio ?? Number.POSITIVE_INFINITY) < 0.7,
      }),
      figure(`serve, watch on, ${size}: RSS after the lists`, full.rss / MiB, 'MiB', limit),
      figure('serve, watch on, empty cluster: RSS', empty.rss / MiB, 'MiB', limit),
      figure('memory per node over the baseline (RSS)', perNode / 1024, 'KiB', {
        name: 'serve RSS, empty cluster',
        value: empty.rss / MiB,
        unit: 'MiB',
      }),
      figure('memory per pod over the nodes (RSS)', perPod / 1024, 'KiB', {
        name: `serve RSS, ${NODES} nodes`,
        value: withNodes.rss / MiB,
        unit: 'MiB',
      }),
      figure('heap per node over the baseline', heapPerNode / 1024, 'KiB', none),
      figure('heap per pod over the nodes', heapPerPod / 1024, 'KiB', none),
      figure(
        `warm review p99 during the initial list of ${PODS} pods`,
        full.p99InList,
        'ms',
        { name: 'warm p99 after the lists (same run)', value: full.p99Steady, unit: 'ms' },
        { text: 'p99 < 5 ms', met: (f) => f.value !== null && f.value < 5 },
      ),
      figure('initial pod list (serve)', full.listMs, 'ms', none),
      figure(
        `diagnose -A, ${size}: time`,
        diag.s,
        's',
        { name: 'goal', value: 60, unit: 's' },
        {
          text: '< 60 s',
          met: (f) => f.value !== null && f.value < 60,
        },
      ),
      figure(
        `diagnose -A, ${size}: peak RSS`,
        diag.peak / MiB,
        'MiB',
        { name: 'goal', value: 256, unit: 'MiB' },
        {
          text: '< 256 MiB',
          met: (f) => f.value !== null && f.value < 256,
        },
      ),
      figure(
        `API requests per minute keeping current (lists, watches, Lease), ${size}`,
        keepingCurrent(full.requestsPerMinute),
        '/min',
        { name: 'empty cluster', value: keepingCurrent(empty.requestsPerMinute), unit: '/min' },
        { text: 'flat in cluster size (ratio ≤ 1.5)', met: (f) => f.ratio !== null && f.ratio <= 1.5 },
      ),
      figure(
        `API requests per minute in all (diagnosing ${filled.stuck} stuck pods), ${size}`,
        Object.values(full.requestsPerMinute).reduce((a, b) => a + b, 0),
        '/min',
        {
          name: 'empty cluster',
          value: Object.values(empty.requestsPerMinute).reduce((a, b) => a + b, 0),
          unit: '/min',
        },
      ),
    );
    rec.details = {
      fill: {
        nodesMs: Math.round(nodesMs),
        podsMs: Math.round(podsMs),
        stuck: filled.stuck,
        requests: filled.requests,
      },
      phases: { empty, withNodes, full },
      diagnose: diag,
      totalMs: Math.round(since(t0)),
    };
    rec.note(
      `fill: ${NODES} nodes in ${Math.round(nodesMs / 1000)} s, ${PODS} pods (${filled.stuck} stuck) in ${Math.round(podsMs / 1000)} s; whole run ${Math.round(since(t0) / 1000)} s`,
    );
    rec.note(
      `diagnose -A: exit ${diag.code}, ${diag.diagnoses} diagnoses${diag.stderr ? `; stderr: ${diag.stderr}` : ''}`,
    );
    rec.note(
      `steady requests/min, ${size}: ${JSON.stringify(full.requestsPerMinute)}; empty: ${JSON.stringify(empty.requestsPerMinute)}`,
    );
    rec.note(
      `initial list: ${full.reviewsInList} warm reviews in ${full.listMs} ms, p50 ${round(full.p50InList, 2)} ms, max ${round(full.maxInList, 2)} ms; pods held by the watch: ${full.podsHeld}`,
    );
  } finally {
    await reg.stop();
    await lab.stop();
  }
}
