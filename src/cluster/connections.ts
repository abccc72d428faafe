// Connections to the API server: reused, and ended when pullguard says so.
//
// client-node makes a new undici Agent for every request (KubeConfig.createDispatcher, from the
// kubeconfig's TLS settings), so each request opened a connection of its own, with a TLS handshake
// and a TLS context of its own: a `diagnose -A` or a watch diagnosing 1,000 stuck pods opened
// thousands, each holding OpenSSL memory outside the JavaScript heap until it was collected. Each
// loaded KubeConfig now keeps one dispatcher for as long as its TLS settings stay the same (a
// rotated client certificate makes a new one; the old one finishes what it carries and closes).
//
// undici leaves a connection that is still in its TLS handshake open after its request is aborted,
// until its own connect timeout (10 s): a one-shot command whose API server never answered would
// wait that long after its answer. The dispatcher connects through a connector that remembers its
// sockets until they close, and closeConnections ends them.

import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { buildConnector, type Dispatcher } from 'undici';

type Cluster = Parameters<KubeConfig['createDispatcherOptions']>[0];
type AgentOptions = Parameters<KubeConfig['createDispatcherOptions']>[1];

/** client-node's own (TypeScript-private) method that makes a request's dispatcher. */
interface MakesDispatchers {
  createDispatcher?: (cluster: Cluster, agentOptions: AgentOptions) => Dispatcher | undefined;
}

interface Connections {
  sockets: Set<Socket>;
  /** the dispatcher kept, and the digest of the settings it was made from */
  kept?: { key: string; dispatcher: Dispatcher };
}

const open = new WeakMap<KubeConfig, Connections>();

export function trackConnections(kc: KubeConfig): void {
  if (open.has(kc)) return;
  const state: Connections = { sockets: new Set() };
  open.set(kc, state);
  const options = kc.createDispatcherOptions.bind(kc);
  kc.createDispatcherOptions = (cluster, agentOptions) => {
    const o = options(cluster, agentOptions);
    // Proxies and SOCKS keep client-node's own dispatcher; 'none' (no TLS settings) is undici's default.
    if (o.type !== 'agent' && o.type !== 'none') return o;
    const connect = buildConnector(o.type === 'agent' ? (o.connect as buildConnector.BuildOptions) : {});
    const tracked: buildConnector.connector = (opts, callback) => {
      const socket = connect(opts, callback) as unknown as Socket;
      state.sockets.add(socket);
      socket.once('close', () => state.sockets.delete(socket));
      return socket;
    };
    // undici takes a connector function where client-node passes connect options.
    return { type: 'agent', connect: tracked as unknown as Extract<typeof o, { type: 'agent' }>['connect'] };
  };
  const internals = kc as unknown as MakesDispatchers;
  const create = internals.createDispatcher?.bind(kc);
  if (!create) return; // a client-node without it: each request keeps its own dispatcher
  internals.createDispatcher = (cluster, agentOptions) => {
    // The settings as client-node reads them for this request (CA, client certificate, proxy),
    // held only as a digest.
    const key = createHash('sha256')
      .update(JSON.stringify([cluster?.server, options(cluster, agentOptions)]))
      .digest('hex');
    if (state.kept?.key === key) return state.kept.dispatcher;
    const dispatcher = create(cluster, agentOptions);
    const old = state.kept;
    state.kept = dispatcher ? { key, dispatcher } : undefined;
    old?.dispatcher.close().catch(() => {});
    return dispatcher;
  };
}

/** Ends every connection the KubeConfig's requests opened, handshaking ones included. */
export function closeConnections(kc: KubeConfig): void {
  const state = open.get(kc);
  if (!state) return;
  // With an error: a socket still in its handshake then fails its connect, so the request waiting
  // for it settles (destroyed silently, undici would wait for it forever).
  for (const socket of state.sockets) socket.destroy(new Error('pullguard closed its connections to the API server'));
  state.sockets.clear();
  // a later request makes a new dispatcher
  state.kept?.dispatcher.destroy().catch(() => {});
  state.kept = undefined;
}
