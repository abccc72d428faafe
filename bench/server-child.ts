// A webhook server in its own process, so that its CPU time per review can be read apart from the
// load generator's (both share the machine's cores), and its in-process latency is not disturbed by
// the parent's garbage. argv[2]: 'pullguard' or 'baseline'. Settings come in BENCH_SERVER as JSON;
// the parent asks over IPC for process.cpuUsage() or for N timed in-process reviews.

import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { FastifyInstance } from 'fastify';
import type { StageCost } from './stages.ts';

interface Settings {
  certFile: string;
  keyFile: string;
  registryHost: string;
  logLevel: string;
}

export type ParentMessage =
  | { type: 'cpu' }
  | { type: 'profile-start' }
  | { type: 'profile-stop'; file: string }
  | { type: 'stop' }
  | { type: 'inject'; n: number; warm: number; body: string }
  | { type: 'stages'; n: number; body: string };

export type ChildMessage =
  | { type: 'ready'; url: string }
  | { type: 'cpu'; user: number; system: number; rss: number; mainThread: number }
  | { type: 'profile'; file: string }
  | { type: 'inject'; times: number[]; cpuUsPerReview: number }
  | { type: 'stages'; stages: StageCost[] }
  | { type: 'error'; message: string };

const kind = process.argv[2];
const settings = JSON.parse(process.env.BENCH_SERVER ?? '{}') as Settings;
const send = (m: ChildMessage) => process.send?.(m);

interface Server {
  url: string;
  app: FastifyInstance;
  close: () => Promise<void>;
  stages?: (n: number, body: string) => Promise<StageCost[]>;
}

async function start(): Promise<Server> {
  // Imported on demand so the baseline process does not carry pullguard's modules.
  if (kind === 'baseline') {
    const { buildBaseline } = await import('./baseline-server.ts');
    const app = await buildBaseline({
      cert: readFileSync(settings.certFile, 'utf8'),
      key: readFileSync(settings.keyFile, 'utf8'),
    });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return { url, app, close: () => app.close() };
  }
  const { startServer } = await import('../src/app/server.ts');
  const { validateConfig } = await import('../src/config.ts');
  const { createLogger } = await import('../src/server/logger.ts');
  // What pino() writes to by default: SonicBoom on fd 1, asynchronous (the parent points it at /dev/null).
  const logger = createLogger(settings.logLevel);
  const config = validateConfig({
    server: { host: '127.0.0.1', port: 0, metricsPort: 0, tlsCert: settings.certFile, tlsKey: settings.keyFile },
    registry: { insecure: [settings.registryHost] },
    cluster: { watchNodes: false },
    log: { level: settings.logLevel },
  });
  // An empty environment: no KUBECONFIG or in-cluster account may change what is measured.
  const running = await startServer(config, {}, logger);
  const { stageCosts } = await import('./stages.ts');
  return {
    url: running.url,
    app: running.app,
    close: running.close,
    stages: (n, body) => stageCosts(running.engine, config, body, n),
  };
}

/** fastify's inject: routing, body parsing, handler, serialisation; no TLS, no sockets. */
async function injectTimes(app: FastifyInstance, n: number, warm: number, body: string): Promise<ChildMessage> {
  const one = () =>
    app.inject({ method: 'POST', url: '/validate', headers: { 'content-type': 'application/json' }, payload: body });
  for (let i = 0; i < warm; i++) await one();
  const times: number[] = [];
  // CPU time, not wall time: a figure a busy machine does not move much.
  const cpu0 = process.threadCpuUsage();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await one();
    times.push(performance.now() - t0);
    if (res.statusCode !== 200)
      throw new Error(`in-process review answered ${res.statusCode}: ${res.body.slice(0, 200)}`);
  }
  const cpu = process.threadCpuUsage(cpu0);
  return { type: 'inject', times, cpuUsPerReview: (cpu.user + cpu.system) / n };
}

// BENCH_CPU_PROF: a V8 CPU profile of the measured load window only (not start-up, warm-up or the
// in-process timings), sampled every 100 µs, written where the parent says.
let profiler: Session | null = null;
async function profileStart(): Promise<void> {
  profiler = new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
  await profiler.post('Profiler.start');
}
async function profileStop(file: string): Promise<ChildMessage> {
  if (!profiler) throw new Error('profile-stop without profile-start');
  const { profile } = await profiler.post('Profiler.stop');
  profiler.disconnect();
  profiler = null;
  writeFileSync(file, JSON.stringify(profile));
  return { type: 'profile', file };
}

start().then(
  (server) => {
    process.on('message', (m: ParentMessage) => {
      if (m.type === 'cpu') {
        const c = process.cpuUsage();
        // The main thread alone (JavaScript, parsing, TLS); the rest is GC and libuv helper threads.
        const m = process.threadCpuUsage();
        send({
          type: 'cpu',
          user: c.user,
          system: c.system,
          rss: process.memoryUsage().rss,
          mainThread: m.user + m.system,
        });
      } else if (m.type === 'profile-start') {
        profileStart().then(
          () => send({ type: 'profile', file: '' }),
          (err: unknown) => send({ type: 'error', message: (err as Error).message }),
        );
      } else if (m.type === 'profile-stop') {
        profileStop(m.file).then(send, (err: unknown) => send({ type: 'error', message: (err as Error).message }));
      } else if (m.type === 'inject') {
        injectTimes(server.app, m.n, m.warm, m.body).then(send, (err: unknown) =>
          send({ type: 'error', message: (err as Error).message }),
        );
      } else if (m.type === 'stages' && server.stages) {
        server.stages(m.n, m.body).then(
          (stages) => send({ type: 'stages', stages }),
          (err: unknown) => send({ type: 'error', message: (err as Error).message }),
        );
      } else if (m.type === 'stop') {
        server.close().finally(() => process.exit(0));
      }
    });
    send({ type: 'ready', url: server.url });
  },
  (err: unknown) => {
    send({ type: 'error', message: (err as Error).stack ?? String(err) });
    process.exit(1);
  },
);

// The parent went away (crashed or was killed): do not outlive it.
process.on('disconnect', () => process.exit(0));
