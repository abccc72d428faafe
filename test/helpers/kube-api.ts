// A fixture Kubernetes API server on loopback, over TLS with the test PKI (client-node refuses
// plain http without skipTLSVerify, and a real API server is always TLS): the real core/v1 paths and JSON shapes that
// @kubernetes/client-node uses for secrets, service accounts and nodes (list with limit/continue,
// streaming watch with resourceVersion replay, 410 Expired), Status objects for errors, bearer
// token auth and a simple RBAC so tests see what a cluster would answer. Every request is
// recorded with the verb the API server's authorizer would see.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiAccess } from '../../src/cluster/access.ts';
import { REQUIRED_ACCESS } from '../../src/cluster/access.ts';
import { sharedPki, type TestPki } from './pki.ts';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** get | list | watch | create | update | patch | delete | deletecollection */
  verb: string;
  apiGroup: string;
  resource: string;
  namespace?: string;
  name?: string;
  authenticated: boolean;
}

export interface ForbidRule {
  resource: string;
  namespace?: string;
  name?: string;
}

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}

interface Watcher {
  res: ServerResponse;
  timer?: NodeJS.Timeout;
}

export interface KubeApiOptions {
  token?: string;
  /** what the token may do; default REQUIRED_ACCESS (what pullguard's RBAC grants) */
  rbac?: readonly ApiAccess[];
  /** default: the process's shared test PKI */
  pki?: TestPki;
}

export class KubeApiServer {
  readonly token: string;
  url = '';
  readonly requests: RecordedRequest[] = [];
  /** delay before answering non-watch requests */
  latencyMs = 0;
  /** while set, non-watch requests wait for it to settle: the test decides when the server answers */
  hold: Promise<unknown> | undefined;

  readonly #server: Server;
  readonly #caPem: string;
  readonly #rbac: readonly ApiAccess[];
  readonly #forbid: ForbidRule[] = [];
  readonly #secrets = new Map<string, Obj>();
  readonly #serviceAccounts = new Map<string, Obj>();
  readonly #nodes = new Map<string, Obj>();
  readonly #history: WatchEvent[] = [];
  readonly #watchers = new Set<Watcher>();
  #rv = 1000;
  #open = 0;
  /** watches from a resourceVersion below this get 410 Expired */
  #compactedRv = 0;

  private constructor(opts: KubeApiOptions, pki: TestPki) {
    this.token = opts.token ?? randomBytes(16).toString('hex');
    this.#rbac = opts.rbac ?? REQUIRED_ACCESS;
    this.#caPem = pki.caPem;
    this.#server = createServer({ cert: pki.server.certPem, key: pki.server.keyPem }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendStatus(res, 500, 'InternalError', String(err));
        else res.destroy();
      });
    });
  }

  static async start(opts: KubeApiOptions = {}): Promise<KubeApiServer> {
    const api = new KubeApiServer(opts, opts.pki ?? (await sharedPki()));
    await new Promise<void>((resolve) => api.#server.listen(0, '127.0.0.1', resolve));
    const { port } = api.#server.address() as AddressInfo;
    api.url = `https://127.0.0.1:${port}`;
    return api;
  }

  /** Writes a kubeconfig for this server (token auth) into dir and returns its path. */
  get caPem(): string {
    return this.#caPem;
  }

  async writeKubeconfig(dir: string, opts: { token?: string; file?: string } = {}): Promise<string> {
    await mkdir(dir, { recursive: true });
    const file = join(dir, opts.file ?? 'kubeconfig');
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'fixture',
          cluster: { server: this.url, 'certificate-authority-data': Buffer.from(this.#caPem).toString('base64') },
        },
      ],
      users: [{ name: 'pullguard', user: { token: opts.token ?? this.token } }],
      contexts: [{ name: 'fixture', context: { cluster: 'fixture', user: 'pullguard', namespace: 'default' } }],
      'current-context': 'fixture',
      preferences: {},
    };
    await writeFile(file, JSON.stringify(config, null, 2)); // JSON is YAML
    return file;
  }

  async close(): Promise<void> {
    for (const w of this.#watchers) this.#endWatch(w);
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  // ---- objects -------------------------------------------------------------------------------

  /** Stores a Secret. `stringData` values are base64-encoded into data, as the API server does. */
  putSecret(s: {
    namespace: string;
    name: string;
    type?: string;
    stringData?: Record<string, string>;
    data?: Record<string, string>;
  }): Obj {
    const data: Record<string, string> = { ...(s.data ?? {}) };
    for (const [k, v] of Object.entries(s.stringData ?? {})) data[k] = Buffer.from(v, 'utf8').toString('base64');
    const key = `${s.namespace}/${s.name}`;
    const obj: Obj = {
      kind: 'Secret',
      apiVersion: 'v1',
      metadata: this.#meta(s.name, s.namespace, this.#secrets.get(key)),
      data,
      type: s.type ?? 'Opaque',
    };
    this.#secrets.set(key, obj);
    return obj;
  }

  deleteSecret(namespace: string, name: string): void {
    this.#secrets.delete(`${namespace}/${name}`);
  }

  putServiceAccount(namespace: string, name: string, imagePullSecrets?: string[]): Obj {
    const key = `${namespace}/${name}`;
    const obj: Obj = {
      kind: 'ServiceAccount',
      apiVersion: 'v1',
      metadata: this.#meta(name, namespace, this.#serviceAccounts.get(key)),
      ...(imagePullSecrets ? { imagePullSecrets: imagePullSecrets.map((n) => ({ name: n })) } : {}),
    };
    this.#serviceAccounts.set(key, obj);
    return obj;
  }

  deleteServiceAccount(namespace: string, name: string): void {
    this.#serviceAccounts.delete(`${namespace}/${name}`);
  }

  /** Adds or replaces a Node and sends ADDED or MODIFIED to the watchers. */
  putNode(node: Obj): Obj {
    const name = String(node.metadata.name);
    const prev = this.#nodes.get(name);
    const obj: Obj = {
      kind: 'Node',
      apiVersion: 'v1',
      ...node,
      metadata: { ...node.metadata, ...this.#meta(name, undefined, prev) },
    };
    this.#nodes.set(name, obj);
    this.#emit(prev ? 'MODIFIED' : 'ADDED', obj);
    return obj;
  }

  deleteNode(name: string): void {
    const prev = this.#nodes.get(name);
    if (!prev) return;
    this.#nodes.delete(name);
    // A DELETED event carries the last state with a new resourceVersion.
    this.#emit('DELETED', { ...prev, metadata: { ...prev.metadata, resourceVersion: String(++this.#rv) } });
  }

  /**
   * Holds every non-watch answer (hold) until the returned function is called, or the test ends:
   * the test decides when the server answers.
   */
  holdAnswers(t: { teardown(fn: () => void): unknown }): () => void {
    let release = () => {};
    this.hold = new Promise<void>((resolve) => (release = resolve));
    const answer = () => {
      release();
      this.hold = undefined;
    };
    t.teardown(answer);
    return answer;
  }

  /** Makes requests matching the rule answer 403, on top of the RBAC rules. */
  forbid(rule: ForbidRule): void {
    this.#forbid.push(rule);
  }

  /** Removes every rule added with forbid(). */
  allowAll(): void {
    this.#forbid.length = 0;
  }

  /** Forget the event history: watches from older resourceVersions get 410 Expired. */
  compact(): void {
    this.#compactedRv = this.#rv + 1;
    this.#history.length = 0;
  }

  /** Ends every open watch: cleanly (as the server's timeout does) or by resetting the connection. */
  dropWatches(opts: { abrupt?: boolean } = {}): number {
    const n = this.#watchers.size;
    for (const w of [...this.#watchers]) {
      if (opts.abrupt) {
        this.#watchers.delete(w);
        if (w.timer) clearTimeout(w.timer);
        w.res.socket?.destroy();
      } else {
        this.#endWatch(w);
      }
    }
    return n;
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watcher. */
  bookmark(): void {
    const line = JSON.stringify({
      type: 'BOOKMARK',
      object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(this.#rv) } },
    });
    for (const w of this.#watchers) w.res.write(`${line}\n`);
  }

  /** Requests (watches included) whose connection is still open: not answered, not given up by the client. */
  get openRequests(): number {
    return this.#open;
  }

  get openWatches(): number {
    return this.#watchers.size;
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Requests (if any) that the given access rules would not allow. */
  requestsOutside(access: readonly ApiAccess[]): RecordedRequest[] {
    return this.requests.filter((r) => !allows(access, r));
  }

  countRequests(filter: Partial<Pick<RecordedRequest, 'verb' | 'resource' | 'namespace' | 'name'>>): number {
    return this.requests.filter((r) => Object.entries(filter).every(([k, v]) => r[k as keyof RecordedRequest] === v))
      .length;
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fixture');
    const query = Object.fromEntries(url.searchParams);
    const route = parsePath(url.pathname);
    const method = req.method ?? 'GET';
    const watch = query.watch === 'true' || query.watch === '1';
    const verb = verbOf(method, route, watch);
    const authenticated = req.headers.authorization === `Bearer ${this.token}`;
    const rec: RecordedRequest = {
      method,
      path: url.pathname,
      query,
      verb,
      apiGroup: route?.apiGroup ?? '',
      resource: route?.resource ?? '',
      authenticated,
      ...(route?.namespace !== undefined ? { namespace: route.namespace } : {}),
      ...(route?.name !== undefined ? { name: route.name } : {}),
    };
    this.requests.push(rec);
    this.#open++;
    res.on('close', () => this.#open--);
    req.resume();

    if (!authenticated) return sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
    if (!route) return sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
    if (!allows(this.#rbac, rec) || this.#forbidden(rec)) {
      const where = rec.namespace !== undefined ? ` in the namespace "${rec.namespace}"` : ' at the cluster scope';
      return sendStatus(
        res,
        403,
        'Forbidden',
        `${route.resource}${rec.name !== undefined ? ` "${rec.name}"` : ''} is forbidden: User "system:serviceaccount:pullguard:pullguard" cannot ${verb} resource "${route.resource}" in API group "${route.apiGroup}"${where}`,
        { ...(rec.name !== undefined ? { name: rec.name } : {}), kind: route.resource },
      );
    }
    // unref: a test that set a long latency must not keep its process alive after it closed the server.
    if (!watch && this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs).unref());
    if (!watch && this.hold) await this.hold;
    if (res.destroyed) return;

    if (method !== 'GET')
      return sendStatus(
        res,
        405,
        'MethodNotAllowed',
        `the server does not allow this method on the requested resource`,
      );
    const { resource, namespace, name } = route;
    if (resource === 'secrets' && namespace !== undefined && name !== undefined) {
      return this.#sendObject(res, this.#secrets.get(`${namespace}/${name}`), resource, name);
    }
    if (resource === 'serviceaccounts' && namespace !== undefined && name !== undefined) {
      return this.#sendObject(res, this.#serviceAccounts.get(`${namespace}/${name}`), resource, name);
    }
    if (resource === 'nodes' && name !== undefined) return this.#sendObject(res, this.#nodes.get(name), resource, name);
    if (resource === 'nodes' && watch) return this.#watchNodes(res, query);
    if (resource === 'nodes') return this.#listNodes(res, query);
    return sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
  }

  #sendObject(res: ServerResponse, obj: Obj | undefined, resource: string, name: string): void {
    if (!obj) return sendStatus(res, 404, 'NotFound', `${resource} "${name}" not found`, { name, kind: resource });
    sendJSON(res, 200, obj);
  }

  #listNodes(res: ServerResponse, query: Record<string, string>): void {
    const all = [...this.#nodes.values()].sort((a, b) =>
      String(a.metadata.name).localeCompare(String(b.metadata.name)),
    );
    let start = 0;
    let rv = String(this.#rv);
    if (query.continue) {
      const token = JSON.parse(Buffer.from(query.continue, 'base64').toString('utf8')) as { start: string; rv: string };
      start = all.findIndex((n) => String(n.metadata.name) > token.start);
      if (start < 0) start = all.length;
      rv = token.rv;
    }
    const limit = query.limit ? Number(query.limit) : 0;
    const items = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
    const remaining = all.length - start - items.length;
    const last = items.at(-1);
    const metadata: Record<string, unknown> = { resourceVersion: rv };
    if (remaining > 0 && last) {
      metadata.continue = Buffer.from(JSON.stringify({ start: String(last.metadata.name), rv })).toString('base64');
      metadata.remainingItemCount = remaining;
    }
    // Items in a real list carry no kind/apiVersion.
    sendJSON(res, 200, {
      kind: 'NodeList',
      apiVersion: 'v1',
      metadata,
      items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest),
    });
  }

  #watchNodes(res: ServerResponse, query: Record<string, string>): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const rvParam = query.resourceVersion;
    const send = (type: string, object: unknown) => res.write(`${JSON.stringify({ type, object })}\n`);
    if (rvParam === undefined || rvParam === '' || rvParam === '0') {
      // "Start at most recent": synthetic ADDED events for the current state.
      for (const n of this.#nodes.values()) send('ADDED', n);
    } else {
      const from = Number(rvParam);
      if (!Number.isFinite(from) || from < this.#compactedRv - 1) {
        send('ERROR', statusBody(410, 'Expired', `too old resource version: ${rvParam} (${this.#compactedRv})`));
        res.end();
        return;
      }
      for (const e of this.#history) if (e.rv > from) send(e.type, e.object);
    }
    const w: Watcher = { res };
    const timeout = Number(query.timeoutSeconds ?? 0);
    if (timeout > 0) {
      w.timer = setTimeout(() => this.#endWatch(w), timeout * 1000);
      w.timer.unref();
    }
    this.#watchers.add(w);
    res.on('close', () => {
      if (w.timer) clearTimeout(w.timer);
      this.#watchers.delete(w);
    });
  }

  #endWatch(w: Watcher): void {
    if (w.timer) clearTimeout(w.timer);
    this.#watchers.delete(w);
    w.res.end();
  }

  #emit(type: WatchEvent['type'], object: Obj): void {
    const rv = Number(object.metadata.resourceVersion);
    this.#history.push({ rv, type, object });
    const line = `${JSON.stringify({ type, object })}\n`;
    for (const w of this.#watchers) w.res.write(line);
  }

  #meta(name: string, namespace: string | undefined, prev: Obj | undefined): Record<string, unknown> {
    return {
      name,
      ...(namespace !== undefined ? { namespace } : {}),
      uid: (prev?.metadata.uid as string | undefined) ?? randomUUID(),
      resourceVersion: String(++this.#rv),
      creationTimestamp:
        (prev?.metadata.creationTimestamp as string | undefined) ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
  }

  #forbidden(r: RecordedRequest): boolean {
    return this.#forbid.some(
      (f) =>
        f.resource === r.resource &&
        (f.namespace === undefined || f.namespace === r.namespace) &&
        (f.name === undefined || f.name === r.name),
    );
  }
}

// ---- object builders -------------------------------------------------------------------------

export interface NodeSpec {
  name: string;
  os?: string;
  architecture?: string;
  /** each entry is one image's names (RepoDigests then RepoTags) */
  images?: string[][];
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: string }[];
}

/** A Node as a kubelet reports it, trimmed to the fields that matter plus realistic neighbours. */
export function makeNode(spec: NodeSpec): Obj {
  const os = spec.os ?? 'linux';
  const arch = spec.architecture ?? 'amd64';
  return {
    metadata: {
      name: spec.name,
      labels: {
        'beta.kubernetes.io/arch': arch,
        'beta.kubernetes.io/os': os,
        'kubernetes.io/arch': arch,
        'kubernetes.io/hostname': spec.name,
        'kubernetes.io/os': os,
        ...(spec.labels ?? {}),
      },
      annotations: {
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
    },
    spec: {
      podCIDR: '10.244.1.0/24',
      podCIDRs: ['10.244.1.0/24'],
      providerID: `kind://docker/fixture/${spec.name}`,
      ...(spec.taints ? { taints: spec.taints } : {}),
    },
    status: {
      capacity: { cpu: '4', 'ephemeral-storage': '102626232Ki', memory: '16318324Ki', pods: '110' },
      allocatable: { cpu: '4', 'ephemeral-storage': '102626232Ki', memory: '16318324Ki', pods: '110' },
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          lastHeartbeatTime: '2026-01-10T09:00:00Z',
          lastTransitionTime: '2026-01-10T08:00:00Z',
          reason: 'KubeletReady',
          message: 'kubelet is posting ready status',
        },
      ],
      addresses: [
        { type: 'InternalIP', address: '172.18.0.2' },
        { type: 'Hostname', address: spec.name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: randomBytes(16).toString('hex'),
        systemUUID: randomUUID(),
        bootID: randomUUID(),
        kernelVersion: '6.8.0-45-generic',
        osImage: os === 'windows' ? 'Windows Server 2022 Datacenter' : 'Debian GNU/Linux 12 (bookworm)',
        containerRuntimeVersion: 'containerd://2.1.3',
        kubeletVersion: 'v1.34.1',
        kubeProxyVersion: 'v1.34.1',
        operatingSystem: os,
        architecture: arch,
      },
      images: (spec.images ?? []).map((names, i) => ({ names, sizeBytes: 100_000_000 - i * 1000 })),
    },
  };
}

/** stringData for a kubernetes.io/dockerconfigjson secret */
export function dockerConfigJson(
  auths: Record<string, { username: string; password: string }>,
): Record<string, string> {
  const out: Record<string, { username: string; password: string; auth: string }> = {};
  for (const [host, { username, password }] of Object.entries(auths)) {
    out[host] = { username, password, auth: Buffer.from(`${username}:${password}`).toString('base64') };
  }
  return { '.dockerconfigjson': JSON.stringify({ auths: out }) };
}

/** stringData for a legacy kubernetes.io/dockercfg secret */
export function dockercfg(
  auths: Record<string, { username: string; password: string; email?: string }>,
): Record<string, string> {
  const out: Record<string, { auth: string; email: string }> = {};
  for (const [host, { username, password, email }] of Object.entries(auths)) {
    out[host] = { auth: Buffer.from(`${username}:${password}`).toString('base64'), email: email ?? '' };
  }
  return { '.dockercfg': JSON.stringify(out) };
}

// ---- helpers ---------------------------------------------------------------------------------

interface Route {
  apiGroup: string;
  resource: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

// /api/v1/[namespaces/{ns}/]{resource}[/{name}[/{sub}]] and /apis/{group}/{version}/...
function parsePath(path: string): Route | undefined {
  const parts = path
    .split('/')
    .filter((p) => p !== '')
    .map(decodeURIComponent);
  let rest: string[];
  let apiGroup: string;
  if (parts[0] === 'api' && parts[1] === 'v1') {
    apiGroup = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    apiGroup = parts[1] ?? '';
    rest = parts.slice(3);
  } else {
    return undefined;
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  if (resource === undefined) return undefined;
  return {
    apiGroup,
    resource,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(subresource !== undefined ? { subresource } : {}),
  };
}

function verbOf(method: string, route: Route | undefined, watch: boolean): string {
  const named = route?.name !== undefined;
  switch (method) {
    case 'GET':
    case 'HEAD':
      return watch ? 'watch' : named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

function allows(access: readonly ApiAccess[], r: RecordedRequest): boolean {
  return access.some(
    (a) =>
      a.apiGroup === r.apiGroup &&
      a.resource === r.resource &&
      a.verbs.includes(r.verb) &&
      // a namespaced grant does not cover cluster-wide requests, and vice versa
      a.namespaced === (r.namespace !== undefined),
  );
}

function statusBody(
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

function sendStatus(
  res: ServerResponse,
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): void {
  sendJSON(res, code, statusBody(code, reason, message, details));
}

function sendJSON(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
