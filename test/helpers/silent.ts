// A server that accepts TCP connections and never says a word: a registry or API server that hangs.
// It reads (and drops) what is sent, so that the client closing its end is seen, and notes when
// each connection was accepted and when it closed.
import { createServer, type AddressInfo, type Socket } from 'node:net';

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

/** Polls until `cond` holds or `ms` pass; says which. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}
