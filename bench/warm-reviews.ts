// warm-reviews: a cached Deployment review over HTTPS with keep-alive, against a fastify handler on
// the same TLS settings that only echoes an allow. Each server runs in its own process so that its
// CPU time per review can be read (the load generator shares the machine's cores); the two are
// loaded in alternating windows; then both are timed in-process without the network (server-side latency).

import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent } from 'undici';
import { sharedPki } from '../test/helpers/pki.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { startKubeLab, type KubeLab } from '../test/helpers/kube-lab.ts';
import { admissionBody, figure, mean, percentile, QUICK, round, type Recorder } from './lib.ts';
import type { ChildMessage, ParentMessage } from './server-child.ts';
import { imageNodeFlags, postReview, startServerProcess, stopServerProcess } from './webhook.ts';
import type { StageCost } from './stages.ts';

// The cluster the warm reviews are placed in: platforms, labels and taints as mixed clusters have
// them, so that every review filters the nodes by its placement (remembered per placement).
const LAB_NODES = Array.from({ length: 60 }, (_, i) => {
  const [os, arch] = i < 40 ? ['linux', 'amd64'] : i < 56 ? ['linux', 'arm64'] : ['windows', 'amd64'];
  const taints = i >= 48 && i < 56 ? [{ key: 'dedicated', value: 'arm', effect: 'NoSchedule' }] : [];
  if (os === 'windows') taints.push({ key: 'os', value: 'windows', effect: 'NoSchedule' });
  return { name: `node-${i}`, os, arch, pool: i % 3 ? 'general' : 'batch', taints };
});
const PLACEMENT = {
  nodeSelector: { 'kubernetes.io/arch': 'amd64', pool: 'general' },
  tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }],
};

function platformMix(): string {
  const counts = new Map<string, number>();
  for (const n of LAB_NODES) counts.set(`${n.os}/${n.arch}`, (counts.get(`${n.os}/${n.arch}`) ?? 0) + 1);
  return [...counts].map(([p, c]) => `${c} ${p}`).join(', ');
}

async function fillNodes(lab: KubeLab): Promise<void> {
  const { CoreV1Api, PatchStrategy, setHeaderOptions } = await import('@kubernetes/client-node');
  const core = lab.kc().makeApiClient(CoreV1Api);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  for (const n of LAB_NODES) {
    const labels = { 'kubernetes.io/os': n.os, 'kubernetes.io/arch': n.arch, pool: n.pool };
    await core.createNode({ body: { metadata: { name: n.name, labels } } });
    // The lab has no node lifecycle controller to lift the not-ready taint a new node gets.
    await core.patchNode({ name: n.name, body: { spec: { taints: n.taints } } }, merge);
    const nodeInfo = { operatingSystem: n.os, architecture: n.arch };
    await core.patchNodeStatus({ name: n.name, body: { status: { nodeInfo } } }, merge);
  }
}

/** BENCH_CPU_PROF=DIR: each server writes a CPU profile of its measured run there (figures then include the profiler's cost). */
const PROFILE_DIR = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : '';
// Linux perf of each server over the measured windows: CPU time only, native frames (TLS, JSON) included.
const PERF_DIR = process.env.BENCH_PERF ? resolve(process.env.BENCH_PERF) : '';

interface LoadRun {
  kind: 'pullguard' | 'baseline' | 'node-baseline';
  rps: number;
  reviews: number;
  durationS: number;
  /** the measured windows, in order */
  windows: { reviews: number; durationS: number; cpuUsPerReview: number }[];
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  cpuUs: number;
  cpuUsPerReview: number;
  /** the server's main thread alone; the rest of cpuUs is its helper threads (GC, libuv) */
  mainThreadUsPerReview: number;
  reviewsPerCoreSecond: number;
  serverRssBytes: number;
  registryRequests: number;
  /** in-process (fastify inject) times in the same server process, after the load */
  inProcess: number[];
  /** main-thread CPU per in-process review (fastify inject: no TLS, no sockets) */
  inProcessCpuUs: number;
  stages?: StageCost[];
}

function ask<T extends ChildMessage['type']>(
  child: ChildProcess,
  message: ParentMessage,
  type: T,
): Promise<Extract<ChildMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const on = (m: ChildMessage) => {
      if (m.type !== type && m.type !== 'error') return;
      child.off('message', on);
      if (m.type === 'error') reject(new Error(m.message));
      else resolve(m as Extract<ChildMessage, { type: T }>);
    };
    child.on('message', on);
    child.send(message);
  });
}

async function load(
  url: string,
  body: string,
  durationS: number,
): Promise<{ result: Awaited<ReturnType<typeof autocannon>>; latencies: number[] }> {
  const latencies: number[] = [];
  const instance = autocannon({
    url: `${url}/validate`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections: 10,
    pipelining: 1,
    duration: durationS,
  });
  // autocannon's own histogram has 1 ms resolution; keep every response time (float ms) as well.
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status === 200) latencies.push(ms);
  });
  const result = await instance;
  return { result, latencies };
}

interface Server {
  kind: LoadRun['kind'];
  child: ChildProcess;
  url: string;
}

/** perf record on one server until the returned function is called (SIGINT: perf writes its file). */
function startPerf(server: Server): () => Promise<void> {
  mkdirSync(PERF_DIR, { recursive: true });
  const file = join(PERF_DIR, `warm-reviews-${server.kind}.perf.data`);
  const perf = spawn('perf', ['record', '-F', '999', '-g', '-o', file, '-p', String(server.child.pid)], {
    stdio: 'ignore',
  });
  return () =>
    new Promise<void>((resolve) => {
      perf.once('exit', () => resolve());
      perf.kill('SIGINT');
    });
}

/** Starts a server and sends it one review: pullguard asks the registry here and caches the answer. */
async function prepare(kind: LoadRun['kind'], settings: object, body: string, caPem: string): Promise<Server> {
  const { child, url } = await startServerProcess(
    kind,
    settings,
    // perf names JIT-compiled JavaScript functions from /tmp/perf-PID.map
    PERF_DIR ? ['--perf-basic-prof', '--interpreted-frames-native-stack'] : [],
  );
  const agent = new Agent({ connect: { ca: caPem } });
  try {
    // With a cluster, the node list first (the readiness probe waits for it, as the API server would).
    for (let i = 0; kind === 'pullguard' && i < 600; i++) {
      const ready = await agent.request({ origin: url, path: '/readyz', method: 'GET' });
      await ready.body.dump();
      if (ready.statusCode === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const res = await postReview(url, body, agent);
    const answer = (await res.body.json()) as { response?: { allowed?: boolean; uid?: string; warnings?: string[] } };
    // A plain allow, as most reviews are: a warning would be logged and measured with every review.
    if (res.statusCode !== 200 || answer.response?.allowed !== true || answer.response.warnings?.length)
      throw new Error(`${kind}: warm review answered ${res.statusCode} ${JSON.stringify(answer)}`);
  } catch (err) {
    await stopServerProcess(child);
    throw err;
  } finally {
    await agent.close();
  }
  return { kind, child, url };
}

interface Window {
  reviews: number;
  durationS: number;
  latencies: number[];
  errors: number;
  non2xx: number;
  cpuUs: number;
  mainThreadUs: number;
}

/** One measured window of load on one server, with the server's own CPU time over it. */
async function measure(server: Server, body: string, durationS: number): Promise<Window> {
  const cpu0 = await ask(server.child, { type: 'cpu' }, 'cpu');
  const { result, latencies } = await load(server.url, body, durationS);
  const cpu1 = await ask(server.child, { type: 'cpu' }, 'cpu');
  return {
    reviews: result['2xx'],
    durationS: result.duration,
    latencies,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    cpuUs: cpu1.user - cpu0.user + (cpu1.system - cpu0.system),
    mainThreadUs: cpu1.mainThread - cpu0.mainThread,
  };
}

/** The windows of one server added up, its RSS after them, then its in-process timings. */
async function summarise(server: Server, windows: Window[], body: string, n: number, registryRequests: number) {
  const sum = (f: (w: Window) => number) => windows.reduce((a, w) => a + f(w), 0);
  const reviews = sum((w) => w.reviews);
  const durationS = sum((w) => w.durationS);
  const cpuUs = sum((w) => w.cpuUs);
  const latencies = windows.flatMap((w) => w.latencies);
  const { rss } = await ask(server.child, { type: 'cpu' }, 'cpu');
  // Server-side latency in the same process, JIT warm from the load, sequential.
  const injected = await ask(server.child, { type: 'inject', n, warm: n, body }, 'inject');
  const stages =
    server.kind === 'pullguard'
      ? (await ask(server.child, { type: 'stages', n: n * 5, body }, 'stages')).stages
      : undefined;
  const run: LoadRun = {
    kind: server.kind,
    rps: reviews / durationS,
    reviews,
    durationS,
    windows: windows.map((w) => ({
      reviews: w.reviews,
      durationS: w.durationS,
      cpuUsPerReview: round(w.cpuUs / w.reviews, 2) ?? NaN,
    })),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors: sum((w) => w.errors),
    non2xx: sum((w) => w.non2xx),
    cpuUs,
    cpuUsPerReview: cpuUs / reviews,
    mainThreadUsPerReview: sum((w) => w.mainThreadUs) / reviews,
    reviewsPerCoreSecond: reviews / (cpuUs / 1e6),
    serverRssBytes: rss,
    registryRequests,
    inProcess: injected.times,
    inProcessCpuUs: injected.cpuUsPerReview,
    ...(stages ? { stages } : {}),
  };
  return run;
}

export async function warmReviews(rec: Recorder): Promise<void> {
  const durationS = QUICK ? 1 : 10;
  const rounds = QUICK ? 1 : 5;
  const warmS = QUICK ? 1 : 2;
  const n = QUICK ? 200 : 2000;
  if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
  const pki = await sharedPki();
  const [reg, lab] = await Promise.all([startRegistry({ auth: 'none', proxy: true }), startKubeLab()]);
  rec.settings = {
    fixture: `deployment-create.json, its template placed: ${JSON.stringify(PLACEMENT)}`,
    cluster: `test/kube-lab (kube-apiserver v1.20) with ${LAB_NODES.length} nodes (${platformMix()}); pullguard watches them and reads the namespace's ServiceAccount`,
    registry: 'docker-registry on loopback, anonymous HTTP, behind the counting proxy',
    tls: "test CA server certificate (EC P-256) and pullguard's SERVER_TLS (TLS 1.2+, its ciphers in its order), for every server",
    nodeFlags: imageNodeFlags(),
    autocannon: {
      connections: 10,
      pipelining: 1,
      warmupSeconds: warmS,
      durationSeconds: durationS,
      windows: `${rounds} per server, ${durationS / rounds} s each, in turn, the order reversed every round (ABC CBA)`,
      keepAlive: true,
    },
    pullguardLogLevel: 'info, the default (plain allows are logged at debug, so not written; stdout is /dev/null)',
    inProcessReviews: n,
  };
  try {
    await reg.pushImage('demo/app', '1.0');
    await fillNodes(lab);
    const review = admissionBody('deployment-create.json', { host: reg.host }) as {
      request: { object: { spec: { template: { spec: Record<string, unknown> } } } };
    };
    Object.assign(review.request.object.spec.template.spec, PLACEMENT);
    const body = JSON.stringify(review);
    const settings = {
      certFile: pki.server.certFile,
      keyFile: pki.server.keyFile,
      registryHost: reg.host,
      logLevel: 'info',
      kubeconfig: lab.kubeconfig,
    };

    // The servers run side by side but are loaded in turn, never together (they must not share the
    // cores with each other), in alternating windows (ABC CBA order): load from other work on a shared
    // machine drifts within seconds, and this way it falls on both alike.
    const servers: Server[] = [];
    let baseline: LoadRun;
    let nodeBaseline: LoadRun;
    let pullguard: LoadRun;
    try {
      servers.push(await prepare('baseline', settings, body, pki.caPem));
      servers.push(await prepare('node-baseline', settings, body, pki.caPem));
      servers.push(await prepare('pullguard', settings, body, pki.caPem));
      for (const s of servers) await load(s.url, body, warmS);
      reg.resetCounters();
      if (PROFILE_DIR) for (const s of servers) await ask(s.child, { type: 'profile-start' }, 'profile');
      const perfs = PERF_DIR ? servers.map((s) => startPerf(s)) : [];
      const windows: Record<LoadRun['kind'], Window[]> = { baseline: [], 'node-baseline': [], pullguard: [] };
      for (let r = 0; r < rounds; r++)
        for (const s of r % 2 ? [...servers].reverse() : servers)
          windows[s.kind].push(await measure(s, body, durationS / rounds));
      for (const stop of perfs) await stop();
      if (PROFILE_DIR)
        for (const s of servers) {
          const file = join(PROFILE_DIR, `warm-reviews-${s.kind}.cpuprofile`);
          await ask(s.child, { type: 'profile-stop', file }, 'profile');
        }
      const registryRequests = reg.proxy?.count() ?? -1;
      baseline = await summarise(servers[0]!, windows.baseline, body, n, registryRequests);
      nodeBaseline = await summarise(servers[1]!, windows['node-baseline'], body, n, registryRequests);
      pullguard = await summarise(servers[2]!, windows.pullguard, body, n, registryRequests);
    } finally {
      for (const s of servers) await stopServerProcess(s.child);
    }

    const pgTimes = pullguard.inProcess;
    const baseTimes = baseline.inProcess;

    const b = (name: string, value: number, unit: string) => ({ name, value, unit });
    const ratioGoal = { text: 'ratio ≥ 0.8', met: (f: { ratio: number | null }) => (f.ratio ?? 0) >= 0.8 };
    // A figure against both echo servers: the fastify one (the goal's baseline), then the node:https one.
    const againstEchoes = (name: string, unit: string, of: (r: LoadRun) => number, goal?: typeof ratioGoal) => [
      figure(name, of(pullguard), unit, b('echo-allow fastify', of(baseline), unit), goal),
      figure(name, of(pullguard), unit, b('echo-allow node:https', of(nodeBaseline), unit)),
    ];
    rec.add(
      ...againstEchoes('reviews/s over HTTPS', '/s', (r) => r.rps, ratioGoal),
      figure('client latency p50', pullguard.p50, 'ms', b('echo-allow fastify', baseline.p50, 'ms')),
      figure('client latency p99', pullguard.p99, 'ms', b('echo-allow fastify', baseline.p99, 'ms'), {
        text: 'p99 < 5 ms',
        met: (f) => (f.value ?? Infinity) < 5,
      }),
      ...againstEchoes('server CPU per review', 'µs', (r) => r.cpuUsPerReview),
      figure(
        'server main-thread CPU per review',
        pullguard.mainThreadUsPerReview,
        'µs',
        b('echo-allow fastify', baseline.mainThreadUsPerReview, 'µs'),
      ),
      ...againstEchoes('reviews per core-second', '/cpu-s', (r) => r.reviewsPerCoreSecond, ratioGoal),
      ...againstEchoes('main-thread CPU per review (in-process)', 'µs', (r) => r.inProcessCpuUs),
      figure(
        'server-side latency p50 (in-process)',
        percentile(pgTimes, 50),
        'ms',
        b('echo-allow fastify', percentile(baseTimes, 50), 'ms'),
      ),
      figure(
        'server-side latency p99 (in-process)',
        percentile(pgTimes, 99),
        'ms',
        b('echo-allow fastify', percentile(baseTimes, 99), 'ms'),
      ),
      figure(
        'registry requests while measured',
        pullguard.registryRequests,
        '',
        b('reviews served', pullguard.reviews, ''),
        { text: '0 (all cached)', met: (f) => f.value === 0 },
      ),
      figure(
        'server RSS after the run',
        pullguard.serverRssBytes / 1048576,
        'MiB',
        b('echo-allow fastify', baseline.serverRssBytes / 1048576, 'MiB'),
      ),
    );
    // Each step of a cached review beside the whole of the echo server's in-process request.
    const echoP50 = percentile(baseTimes, 50) * 1000;
    for (const st of pullguard.stages ?? []) {
      rec.add(figure(`  step: ${st.stage}`, st.us, 'µs', b('echo-allow whole request p50', echoP50, 'µs')));
    }
    const strip = ({ inProcess: _i, ...rest }: LoadRun) => rest;
    rec.details = {
      http: { pullguard: strip(pullguard), baseline: strip(baseline), nodeBaseline: strip(nodeBaseline) },
      inProcess: {
        pullguard: {
          n: pgTimes.length,
          p50: round(percentile(pgTimes, 50), 4),
          p99: round(percentile(pgTimes, 99), 4),
          mean: round(mean(pgTimes), 4),
        },
        baseline: {
          n: baseTimes.length,
          p50: round(percentile(baseTimes, 50), 4),
          p99: round(percentile(baseTimes, 99), 4),
          mean: round(mean(baseTimes), 4),
        },
      },
    };
    if (pullguard.errors || pullguard.non2xx || baseline.errors || baseline.non2xx) {
      rec.note(
        `errors or non-2xx answers: pullguard ${pullguard.errors}/${pullguard.non2xx}, baseline ${baseline.errors}/${baseline.non2xx}`,
      );
    }
    rec.note(
      'autocannon and the server share the machine\'s cores; "server CPU per review" and "reviews per core-second" come from the server process\'s own process.cpuUsage() over the measured run',
    );
    rec.note(
      "client latencies are autocannon's per-response times (float ms), over TLS with 10 keep-alive connections",
    );
    rec.note(
      `each server was loaded in ${rounds} windows, in turn with the others'; each window opens its 10 connections anew (TLS handshakes count in every server's CPU)`,
    );
    if (PROFILE_DIR)
      rec.note(
        `CPU profiles in ${PROFILE_DIR} (node bench/profile-top.ts FILE); the profiler's cost is in these figures: compare ratios only between profiled runs`,
      );
  } finally {
    await Promise.all([reg.stop(), lab.stop()]);
  }
}
