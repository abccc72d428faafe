// A server that accepts TCP connections and never says a word: a registry or API server that hangs.
// It reads (and drops) what is sent, so that the client closing its end is seen, and notes when
// each connection was accepted and when it closed.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { waitFor } from './wait.ts';

export interface SilentServer {
  /** 127.0.0.1:PORT */
  host: string;
  /** performance.now() of each connection accepted, in order */
  accepted: number[];
  /** performance.now() of each connection closed, in order */
  closed: number[];
  /** connections still open */
  open: () => number;
  stop: () => Promise<void>;
}

export async function silentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  const accepted: number[] = [];
  const closed: number[] = [];
  const server = createServer((s) => {
    accepted.push(performance.now());
    sockets.add(s);
    s.resume();
    s.on('error', () => undefined);
    s.on('close', () => {
      sockets.delete(s);
      closed.push(performance.now());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    accepted,
    closed,
    open: () => sockets.size,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * Returns once whatever this process sent on loopback before the call has reached this process's
 * servers: a connection opened now is accepted by a silent server, and the loop has run its close
 * callbacks after that. So a test can say "the server did not see it" about an abort that, had it
 * been sent, was sent before the call, without a fixed sleep.
 */
export async function loopbackBarrier(): Promise<void> {
  const probe = await silentServer();
  try {
    const socket = connect(Number(probe.host.split(':')[1]), '127.0.0.1');
    socket.on('error', () => undefined);
    await waitFor(() => probe.accepted.length > 0, { what: 'a loopback connection to be accepted', everyMs: 1 });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 0));
    socket.destroy();
  } finally {
    await probe.stop();
  }
}
