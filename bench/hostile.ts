// hostile: one webhook server (in its own process, as in a pod) under the loads that took a replica
// past its memory limit, while a client like the API server keeps sending real reviews on its
// kept-alive connections:
//   bodies:   the worst bodies, several at once — 16 MiB of `[{},{},…]`, 8M-deep `[[[…]]]`, the
//             same just under the body limit, and multi-MiB reviews with long strings
//   trickle:  3,000 connections that send headers and then one byte of body a second
// Figures: the server's peak RSS (VmHWM, since its start) against the Deployment's memory limit
// (manifests/base/deployment.yaml, 384Mi; goal: ratio < 0.7), and the reviews answered meanwhile.

import { readFileSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';
import { Agent } from 'undici';
import { deepArrays, manyObjects, reviewWithManyObjects } from '../test/helpers/big-objects.ts';
import { sharedPki } from '../test/helpers/pki.ts';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.ts';
import { admissionBody, figure, MiB, percentile, QUICK, round, since, sleep, type Recorder } from './lib.ts';
import { postReview, startServerProcess, stopServerProcess } from './webhook.ts';

const MEMORY_LIMIT = 384 * MiB;

/** Resident set size now and at its peak since the process started, from /proc. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

interface Reviews {
  answered: number;
  other: Record<string, number>;
  ms: number[];
}

/** What the API server does meanwhile: one review after another on its kept-alive connections. */
function reviewLoop(url: string, agent: Agent, body: string, until: () => boolean): Promise<Reviews> {
  const out: Reviews = { answered: 0, other: {}, ms: [] };
  const one = async () => {
    while (!until()) {
      const t0 = performance.now();
      try {
        const res = await postReview(url, body, agent, 15_000);
        const answer = (await res.body.json()) as { response?: { uid?: string } };
        if (res.statusCode === 200 && answer.response?.uid) {
          out.answered++;
          out.ms.push(since(t0));
        } else out.other[String(res.statusCode)] = (out.other[String(res.statusCode)] ?? 0) + 1;
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'error';
        out.other[code] = (out.other[code] ?? 0) + 1;
        await sleep(50);
      }
    }
  };
  return Promise.all([one(), one()]).then(() => out);
}

/** Sends `body` to /validate, reading whatever comes back; never throws. */
async function hostilePost(url: string, agent: Agent, body: Buffer): Promise<string> {
  try {
    const res = await postReview(url, body, agent, 30_000);
    await res.body.dump();
    return String(res.statusCode);
  } catch (err) {
    return (err as { code?: string }).code ?? 'error';
  }
}

/**
 * A phase's figures: the server's peak RSS (goal: under 0.7 of the memory limit) and its RSS before
 * the load, against the limit; the reviews answered meanwhile and their p50, against `load`.
 */
function phaseFigures(
  phase: string,
  before: { rss: number },
  after: { peak: number },
  reviews: Reviews,
  load: { name: string; value: number; unit: string },
) {
  const limit = { name: 'memory limit', value: MEMORY_LIMIT / MiB, unit: 'MiB' };
  const goal = { text: 'ratio < 0.7', met: (f: { ratio: number | null }) => (f.ratio ?? Infinity) < 0.7 };
  return [
    figure(`${phase}: server peak RSS`, after.peak / MiB, 'MiB', limit, goal),
    figure(`${phase}: server RSS before the load`, before.rss / MiB, 'MiB', limit),
    figure(`${phase}: reviews answered meanwhile`, reviews.answered, '', {
      name: 'reviews not answered',
      value: Object.values(reviews.other).reduce((a, b) => a + b, 0),
      unit: '',
    }),
    figure(`${phase}: review p50 meanwhile`, percentile(reviews.ms, 50), 'ms', load),
  ];
}

function count(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1;
}

export async function hostile(rec: Recorder): Promise<void> {
  const pki = await sharedPki();
  const reg: TestRegistry = await startRegistry({ auth: 'none' });
  const rounds = QUICK ? 2 : 6;
  const parallel = 4;
  const trickling = QUICK ? 300 : 3000;
  const trickleSeconds = QUICK ? 4 : 15;
  rec.settings = {
    memoryLimit: '384Mi (manifests/base/deployment.yaml)',
    bodies: `${rounds} rounds of ${parallel} hostile bodies at once, each round every kind`,
    trickle: `${trickling} TLS connections sending headers and then a byte a second, for ${trickleSeconds} s`,
    reviews: 'pod-create.json against a live registry, 2 at a time on kept-alive connections opened beforehand',
  };
  try {
    await reg.pushImage('demo/app', '1.0');
    const body = JSON.stringify(admissionBody('pod-create.json', { host: reg.host }));
    const settings = {
      certFile: pki.server.certFile,
      keyFile: pki.server.keyFile,
      registryHost: reg.host,
      logLevel: 'warn',
    };

    // --- bodies ---------------------------------------------------------------------------------
    {
      const { child, url } = await startServerProcess('pullguard', settings);
      const agent = new Agent({ connect: { ca: pki.caPem }, connections: 2 });
      const hostileAgent = new Agent({ connect: { ca: pki.caPem }, connections: parallel });
      try {
        for (let i = 0; i < 20; i++) await postReview(url, body, agent).then((r) => r.body.dump());
        const idle = memoryOf(child.pid!);
        const kinds: [string, () => Buffer][] = [
          ['16 MiB [{},{},…]', () => manyObjects(16 * MiB)],
          ['8M-deep [[[…]]]', () => deepArrays(8 * 1024 * 1024)],
          ['[{},…] just under the body limit', () => manyObjects(8 * MiB - 1024)],
          ['a review carrying [{},…] under the limit', () => reviewWithManyObjects(8 * MiB - 4096)],
          [
            'a 7.9 MiB review of long strings',
            () => {
              const review = admissionBody('pod-create.json', { host: reg.host }) as {
                request: { object: { metadata: Record<string, unknown> } };
              };
              review.request.object.metadata.annotations = { blob: 'z'.repeat(8 * MiB - 8192) };
              return Buffer.from(JSON.stringify(review));
            },
          ],
        ];
        const bodies = kinds.map(([name, make]) => [name, make()] as const);
        let done = false;
        const meanwhile = reviewLoop(url, agent, body, () => done);
        const t0 = performance.now();
        const statuses: Record<string, number> = {};
        for (let r = 0; r < rounds; r++) {
          const queue = [...bodies];
          await Promise.all(
            Array.from({ length: parallel }, async () => {
              for (let b = queue.shift(); b; b = queue.shift())
                count(statuses, `${b[0]}: ${await hostilePost(url, hostileAgent, b[1])}`);
            }),
          );
        }
        done = true;
        const reviews = await meanwhile;
        const elapsed = since(t0);
        const mem = memoryOf(child.pid!);
        rec.add(...phaseFigures('bodies', idle, mem, reviews, { name: 'load duration', value: elapsed, unit: 'ms' }));
        rec.details.bodies = {
          statuses,
          reviewsOther: reviews.other,
          worstReviewMs: round(Math.max(0, ...reviews.ms), 1),
        };
      } finally {
        await agent.close();
        await hostileAgent.close();
        await stopServerProcess(child);
      }
    }

    // --- trickle --------------------------------------------------------------------------------
    {
      const { child, url } = await startServerProcess('pullguard', settings);
      const agent = new Agent({ connect: { ca: pki.caPem }, connections: 2, keepAliveTimeout: 60_000 });
      const { hostname, port } = new URL(url);
      const sockets = new Set<TLSSocket>();
      const outcomes: Record<string, number> = {};
      let stop = false;
      let opened = 0;
      const open = (): void => {
        if (stop) return;
        opened++;
        const sock = connect({ host: hostname, port: Number(port), ca: pki.caPem, servername: 'localhost' }, () => {
          sock.write(
            `POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{`,
          );
          count(outcomes, 'connected');
        });
        sockets.add(sock);
        sock.on('error', (err: NodeJS.ErrnoException) => count(outcomes, err.code ?? 'error'));
        sock.on('close', () => {
          sockets.delete(sock);
          count(outcomes, 'closed by the server or failed');
          // Reconnect, as an attacker would, a little later: bounded by the phase's end.
          if (!stop) setTimeout(open, 500);
        });
      };
      try {
        for (let i = 0; i < 20; i++) await postReview(url, body, agent).then((r) => r.body.dump());
        const idle = memoryOf(child.pid!);
        let done = false;
        const meanwhile = reviewLoop(url, agent, body, () => done);
        for (let i = 0; i < trickling; i++) {
          open();
          if (i % 100 === 99) await sleep(20);
        }
        const trickle = setInterval(() => {
          for (const s of sockets) if (s.writable) s.write(' ');
        }, 1000);
        await sleep(trickleSeconds * 1000);
        done = true;
        stop = true;
        clearInterval(trickle);
        const reviews = await meanwhile;
        const mem = memoryOf(child.pid!);
        for (const s of sockets) s.destroy();
        rec.add(
          ...phaseFigures('trickle', idle, mem, reviews, { name: 'phase', value: trickleSeconds * 1000, unit: 'ms' }),
        );
        rec.details.trickle = {
          opened,
          outcomes,
          reviewsOther: reviews.other,
          worstReviewMs: round(Math.max(0, ...reviews.ms), 1),
        };
      } finally {
        stop = true;
        for (const s of sockets) s.destroy();
        await agent.close();
        await stopServerProcess(child);
      }
    }
  } finally {
    await reg.stop();
  }
}
