// dead-registry: reviews against a registry that accepts connections and never answers (the fault
// proxy's `hang`) must all be answered by the deadline, as allows with a timeout warning. Every
// review names a different image, so none is helped by another's cached timeout.

import { Agent } from 'undici';
import { startServer } from '../src/app/server.ts';
import { validateConfig } from '../src/config/schema.ts';
import { createLogger } from '../src/server/logger.ts';
import { sharedPki } from '../test/helpers/pki.ts';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.ts';
import { admissionBody, figure, mean, percentile, QUICK, round, since, sleep, type Recorder } from './lib.ts';
import { postReview } from './webhook.ts';

interface Answered {
  ms: number;
  status: number;
  allowed: boolean;
  timeoutWarning: boolean;
}

/** `afterwards` runs after the last answer, while the server (and its engine) still runs. */
async function reviews(
  reg: TestRegistry,
  deadline: number,
  n: number,
  concurrency: number,
  imageOf: (i: number) => string,
  afterwards?: () => Promise<void>,
): Promise<Answered[]> {
  const pki = await sharedPki();
  const logger = createLogger('info', { write: () => undefined });
  const config = validateConfig({
    deadline,
    server: { host: '127.0.0.1', port: 0, metricsPort: 0, tlsCert: pki.server.certFile, tlsKey: pki.server.keyFile },
    registry: { insecure: [reg.host] },
    cluster: { watchNodes: false },
  });
  const running = await startServer(config, {}, logger);
  // As the API server does: HTTPS, connections kept alive, `concurrency` reviews in flight.
  const agent = new Agent({ connect: { ca: pki.caPem }, connections: concurrency });
  try {
    const out: Answered[] = [];
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < n; i = next++) {
        const body = JSON.stringify(
          admissionBody('pod-create.json', { host: reg.host, image: imageOf(i), uid: `dead-${i}` }),
        );
        const t0 = performance.now();
        const res = await postReview(running.url, body, agent, 30_000);
        const answer = (await res.body.json()) as { response?: { allowed?: boolean; warnings?: string[] } };
        out.push({
          ms: since(t0),
          status: res.statusCode,
          allowed: answer.response?.allowed === true,
          timeoutWarning: (answer.response?.warnings ?? []).some((w) =>
            /timeout|deadline|did not answer|in time/i.test(w),
          ),
        });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await afterwards?.();
    return out;
  } finally {
    await agent.close();
    await running.close();
  }
}

export async function deadRegistry(rec: Recorder): Promise<void> {
  const n = QUICK ? 10 : 50;
  const concurrency = QUICK ? 5 : 10;
  const deadline = QUICK ? 500 : 2000;
  const reg = await startRegistry({ auth: 'none', proxy: true });
  rec.settings = {
    reviews: n,
    concurrency,
    deadlineMs: deadline,
    fixture: 'pod-create.json, each review with a different image',
    registry:
      'docker-registry behind the fault proxy; dead: every request gets `hang` (read, never answered); live: pass-through',
    client: 'undici over HTTPS to the in-process server, keep-alive',
  };
  try {
    // Baseline: the same reviews against the live registry (existing tags).
    const tags = Array.from({ length: n }, (_, i) => `t${i}`);
    await reg.pushTags('bench/live', tags);
    const live = await reviews(reg, deadline, n, concurrency, (i) => `${reg.host}/bench/live:t${i}`);

    reg.proxy!.fault({ kind: 'hang' });
    reg.resetCounters();
    let hung = 0;
    let late = 0;
    let open = 0;
    const dead = await reviews(
      reg,
      deadline,
      n,
      concurrency,
      (i) => `${reg.host}/bench/dead:t${i}`,
      async () => {
        // Registry work the deadline did not cancel: requests still queued behind the per-registry
        // cap when their review was answered go out afterwards, while the engine runs.
        hung = reg.proxy!.count();
        // Cancelled requests close with their review's answer; a moment for the closes to arrive.
        await sleep(100);
        open = reg.proxy!.open();
        await sleep(deadline + 900);
        late = reg.proxy!.count() - hung;
      },
    );
    reg.proxy!.clearRules();

    const worst = Math.max(...dead.map((d) => d.ms));
    const b = (name: string, value: number, unit: string) => ({ name, value, unit });
    const p50 = (list: Answered[]) =>
      percentile(
        list.map((d) => d.ms),
        50,
      );
    rec.add(
      figure('dead: worst answer time', worst, 'ms', b('deadline', deadline, 'ms'), {
        text: 'ratio ≤ 1.1',
        met: (f) => (f.ratio ?? Infinity) <= 1.1,
      }),
      figure('dead: p50 answer time', p50(dead), 'ms', b('deadline', deadline, 'ms')),
      figure('dead: p50 answer time', p50(dead), 'ms', b('live registry p50', p50(live), 'ms')),
      figure(
        'dead: worst answer time',
        worst,
        'ms',
        b('live registry worst', Math.max(...live.map((d) => d.ms)), 'ms'),
      ),
      figure('dead: reviews answered 200', dead.filter((d) => d.status === 200).length, '', b('reviews sent', n, ''), {
        text: 'all',
        met: (f) => f.value === n,
      }),
      figure('dead: allowed (never denied)', dead.filter((d) => d.allowed).length, '', b('reviews sent', n, ''), {
        text: 'all',
        met: (f) => f.value === n,
      }),
      figure(
        'dead: with a timeout warning',
        dead.filter((d) => d.timeoutWarning).length,
        '',
        b('reviews sent', n, ''),
        { text: 'all', met: (f) => f.value === n },
      ),
      figure('live: allowed', live.filter((d) => d.allowed).length, '', b('reviews sent', n, '')),
      figure('dead: requests sent after the last answer', late, '', b('requests before it', hung, '')),
      figure('dead: requests still open 100 ms after the last answer', open, '', b('requests before it', hung, ''), {
        text: 'none',
        met: (f) => f.value === 0,
      }),
    );
    rec.details = {
      deadMs: dead.map((d) => round(d.ms, 1)),
      liveMs: live.map((d) => round(d.ms, 1)),
      deadMeanMs: round(mean(dead.map((d) => d.ms)), 1),
      hungRequests: hung,
      requestsAfterLastAnswer: late,
      requestsOpenAfterLastAnswer: open,
    };
    rec.note(
      `the dead registry received ${hung} requests by the last answer and ${late} more within ${deadline + 1000} ms after it; none was answered`,
    );
  } finally {
    await reg.stop();
  }
}
