// Connections to the API server that pullguard can end. client-node makes an undici Agent for each
// request from the kubeconfig's TLS settings, and undici leaves a connection that is still in its
// TLS handshake open after its request is aborted, until its own connect timeout (10 s): a one-shot
// command whose API server never answered would wait that long after its answer. Each loaded
// KubeConfig makes its connections through a connector that remembers them until they close.

import type { Socket } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { buildConnector } from 'undici';

const open = new WeakMap<KubeConfig, Set<Socket>>();

export function trackConnections(kc: KubeConfig): void {
  if (open.has(kc)) return;
  const sockets = new Set<Socket>();
  open.set(kc, sockets);
  const options = kc.createDispatcherOptions.bind(kc);
  kc.createDispatcherOptions = (cluster, agentOptions) => {
    const o = options(cluster, agentOptions);
    // Proxies and SOCKS keep client-node's own dispatcher; 'none' (no TLS settings) is undici's default.
    if (o.type !== 'agent' && o.type !== 'none') return o;
    const connect = buildConnector(o.type === 'agent' ? (o.connect as buildConnector.BuildOptions) : {});
    const tracked: buildConnector.connector = (opts, callback) => {
      const socket = connect(opts, callback) as unknown as Socket;
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      return socket;
    };
    // undici takes a connector function where client-node passes connect options.
    return { type: 'agent', connect: tracked as unknown as Extract<typeof o, { type: 'agent' }>['connect'] };
  };
}

/** Ends every connection the KubeConfig's requests opened, handshaking ones included. */
export function closeConnections(kc: KubeConfig): void {
  const sockets = open.get(kc);
  if (!sockets) return;
  // With an error: a socket still in its handshake then fails its connect, so the request waiting
  // for it settles (destroyed silently, undici would wait for it forever).
  for (const socket of sockets) socket.destroy(new Error('pullguard closed its connections to the API server'));
  sockets.clear();
}
