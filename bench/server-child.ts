// A webhook server in its own process, so that its CPU time per review can be read apart from the
// load generator's (both share the machine's cores), and its in-process latency is not disturbed by
// the parent's garbage. argv[2]: 'pullguard', 'baseline' (fastify echo) or 'node-baseline'.
// Settings come in BENCH_SERVER as JSON; the parent asks over IPC for process.cpuUsage() or for N
// timed in-process reviews.

import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { inject, type DispatchFunc } from 'light-my-request';
import type { StageCost } from './stages.ts';

interface Settings {
  certFile: string;
  keyFile: string;
  registryHost: string;
  logLevel: string;
  /** pullguard: watch this cluster's nodes (placement, platforms) and read its ServiceAccounts */
  kubeconfig?: string;
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
  /** what the server's socket hands each request to */
  listener: DispatchFunc;
  close: () => Promise<void>;
  stages?: (n: number, body: string) => Promise<StageCost[]>;
}

async function start(): Promise<Server> {
  // Imported on demand so the baseline processes do not carry pullguard's modules.
  const tls = () => ({ cert: readFileSync(settings.certFile, 'utf8'), key: readFileSync(settings.keyFile, 'utf8') });
  if (kind === 'baseline') {
    const { buildBaseline } = await import('./baseline-server.ts');
    const app = await buildBaseline(tls());
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return { url, listener: listenerOf(app.server), close: () => app.close() };
  }
  if (kind === 'node-baseline') {
    const { buildNodeBaseline } = await import('./baseline-server.ts');
    const server = buildNodeBaseline(tls());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    return {
      url: `https://127.0.0.1:${port}`,
      listener: listenerOf(server),
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }
  const { startServer } = await import('../src/app/server.ts');
  const { validateConfig } = await import('../src/config/schema.ts');
  const { createLogger } = await import('../src/server/logger.ts');
  // What pino() writes to by default: SonicBoom on fd 1, asynchronous (the parent points it at /dev/null).
  const logger = createLogger(settings.logLevel);
  const config = validateConfig({
    server: { host: '127.0.0.1', port: 0, metricsPort: 0, tlsCert: settings.certFile, tlsKey: settings.keyFile },
    registry: { insecure: [settings.registryHost] },
    cluster: settings.kubeconfig ? { kubeconfig: settings.kubeconfig, watchNodes: true } : { watchNodes: false },
    log: { level: settings.logLevel },
  });
  // An empty environment: no KUBECONFIG or in-cluster account may change what is measured.
  const running = await startServer(config, {}, logger);
  const { stageCosts } = await import('./stages.ts');
  return {
    url: running.url,
    listener: listenerOf(running.app.server),
    close: running.close,
    stages: (n, body) => stageCosts(running.engine, config, body, n),
  };
}

function listenerOf(server: import('node:events').EventEmitter): DispatchFunc {
  return server.listeners('request')[0] as (req: IncomingMessage, res: ServerResponse) => void;
}

/**
 * Requests handed to the server's request listener as its socket would (light-my-request, as
 * fastify's inject does): routing, body reading, handler, the answer; no TLS, no sockets.
 */
async function injectTimes(listener: DispatchFunc, n: number, warm: number, body: string): Promise<ChildMessage> {
  const one = () =>
    inject(listener, {
      method: 'POST',
      url: '/validate',
      headers: { 'content-type': 'application/json' },
      payload: body,
    });
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
        injectTimes(server.listener, m.n, m.warm, m.body).then(send, (err: unknown) =>
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
