// Shared set-up for the webhook tests: the captured AdmissionReview bodies pointed at real test
// registries, a server started with startServer on loopback, an HTTPS client that trusts the test
// CA, and a logger whose lines the test can read.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Agent, request } from 'undici';
import type { Logger } from 'pino';
import { startServer, type Running } from '../../src/app/server.ts';
import { validateConfig, type ConfigInput } from '../../src/config/schema.ts';
import { mergeLayers } from '../../src/config/layers.ts';
import { createLogger } from '../../src/server/logger.ts';
import { sharedPki, type TestPki } from '../helpers/pki.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

export type Obj = Record<string, any>;

/** The digest the captured pod-create-init-digest.json pins (demo/app:1.0 in the capture's registry). */
export const CAPTURED_DIGEST = 'sha256:213c73d80c4fdebbf9b1454261bfce8e4391592f826fe153f472518d83a1c714';

export { ADMISSION_SAMPLES as SAMPLES } from '../helpers/fixtures.ts';

export interface Registries {
  /** anonymous plain HTTP, behind a counting fault proxy: stands in for 127.0.0.1:5000 */
  plain: TestRegistry;
  /** TLS + htpasswd, behind a counting fault proxy: stands in for 127.0.0.1:5443 */
  secure: TestRegistry;
  /** the digest of demo/app:1.0 on `plain` */
  appDigest: string;
  /** the basic-auth user the nodes' docker config carries for `secure` */
  user: { username: string; password: string };
  /** a docker config file with that user for `secure` (node credentials) */
  dockerConfig: string;
  pki: TestPki;
  /** zero both proxies' request logs */
  reset(): void;
  /** requests both proxies saw since the last reset */
  requests(): number;
  stop(): Promise<void>;
}

export async function startRegistries(): Promise<Registries> {
  const pki = await sharedPki();
  const user = { username: 'node-puller', password: `pw-${Math.random().toString(36).slice(2)}-Zq9` };
  const [plain, secure] = await Promise.all([
    startRegistry({ auth: 'none', proxy: true }),
    startRegistry({ auth: 'htpasswd', users: [user], proxy: true }),
  ]);
  const app = await plain.pushImage('demo/app', '1.0', { platform: 'linux/amd64' });
  await plain.pushIndex('demo/app', 'multi', ['linux/amd64', 'linux/arm64/v8']);
  await secure.pushImage('demo/app', '1.0', { platform: 'linux/amd64' });
  await secure.pushIndex('demo/app', 'multi', ['linux/amd64', 'linux/arm64/v8']);
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-server-test-'));
  const dockerConfig = join(dir, 'config.json');
  writeFileSync(
    dockerConfig,
    JSON.stringify({
      auths: { [secure.host]: { auth: Buffer.from(`${user.username}:${user.password}`).toString('base64') } },
    }),
  );
  const reset = () => {
    plain.resetCounters();
    secure.resetCounters();
  };
  reset();
  return {
    plain,
    secure,
    appDigest: app.digest,
    user,
    dockerConfig,
    pki,
    reset,
    requests: () => (plain.proxy?.count() ?? 0) + (secure.proxy?.count() ?? 0),
    async stop() {
      await Promise.all([plain.stop(), secure.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A captured AdmissionReview with its registries, and its pinned digest, replaced by the test's. */
export function sample(name: string, regs?: Pick<Registries, 'plain' | 'secure' | 'appDigest'>): Obj {
  let text = readFileSync(new URL(`../fixtures/admission/${name}`, import.meta.url), 'utf8');
  if (regs) {
    text = text
      .replace(/127\.0\.0\.1:(5000|5443)/g, (_m, port: string) =>
        port === '5000' ? regs.plain.host : regs.secure.host,
      )
      .replaceAll(CAPTURED_DIGEST, regs.appDigest);
  }
  return JSON.parse(text) as Obj;
}

/** A Pod CREATE review (from pod-create.json) with the given containers, a fresh uid. */
export function podReview(
  regs: Pick<Registries, 'plain' | 'secure' | 'appDigest'>,
  containers: { name: string; image: string }[],
  uid = crypto.randomUUID(),
): Obj {
  const body = sample('pod-create.json', regs);
  body.request.uid = uid;
  body.request.object.spec.containers = containers.map((c) => ({
    ...c,
    imagePullPolicy: 'IfNotPresent',
    resources: {},
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
  }));
  return body;
}

export interface CapturedLog {
  logger: Logger;
  text(): string;
  lines(): Obj[];
  /** the one-line-per-review entries */
  reviews(): Obj[];
}

export function captureLog(level = 'info'): CapturedLog {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const logger = createLogger(level, stream as unknown as Parameters<typeof createLogger>[1]);
  const text = () => chunks.join('');
  const lines = () =>
    text()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Obj);
  return { logger, text, lines, reviews: () => lines().filter((l) => l.msg === 'review') };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Obj;
}

export interface TestServer extends Running {
  log: CapturedLog;
  /** POST a body (an object is sent as JSON) to /validate or another path */
  post(body: unknown, opts?: { path?: string; headers?: Record<string, string> }): Promise<Answer>;
  get(path: string): Promise<Answer>;
  /** POST a review and return its `response`, failing loudly on anything but 200 */
  review(body: Obj, path?: string): Promise<Obj>;
}

/** An undici agent that trusts the test CA (the servers use pki.server unless told otherwise). */
export async function client(): Promise<Agent> {
  const pki = await sharedPki();
  return new Agent({ connect: { ca: pki.caPem } });
}

export async function call(
  agent: Agent,
  url: string,
  opts: { method?: 'GET' | 'POST'; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const res = await request(url, {
    method: opts.method ?? 'GET',
    headers: opts.headers ?? {},
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    dispatcher: agent,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const text = await res.body.text();
  let json: Obj = {};
  try {
    json = JSON.parse(text) as Obj;
  } catch {
    // not JSON (metrics)
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/**
 * Starts the real server on 127.0.0.1:0 with the test CA's certificate. The base configuration
 * reaches the registries as containerd would be told to (insecure for plain HTTP, the CA for TLS,
 * the nodes' docker config for the basic-auth one); `input` is merged over it.
 */
export async function serve(
  regs: Registries | null,
  input: ConfigInput = {},
  opts: { level?: string; tls?: boolean } = {},
): Promise<TestServer> {
  const pki = await sharedPki();
  const base: ConfigInput = {
    server: {
      host: '127.0.0.1',
      port: 0,
      // /metrics on the webhook's port: parallel test servers cannot all take 9090
      metricsPort: 0,
      ...(opts.tls === false ? {} : { tlsCert: pki.server.certFile, tlsKey: pki.server.keyFile }),
    },
    cluster: { watchNodes: false },
    platforms: ['linux/amd64'],
    ...(regs
      ? {
          registry: { insecure: [regs.plain.host], caFiles: [regs.pki.caFile] },
          credentials: { nodeDockerConfigs: [regs.dockerConfig] },
        }
      : {}),
  };
  const config = validateConfig(mergeLayers(base, input));
  // debug by default: every review's line, the plain allows (written at debug) included.
  const log = captureLog(opts.level ?? 'debug');
  // An empty environment: no KUBECONFIG or in-cluster account of the machine running the tests.
  const running = await startServer(config, {}, log.logger);
  const agent = opts.tls === false ? new Agent({ connect: { rejectUnauthorized: false } }) : await client();
  const post = (body: unknown, o: { path?: string; headers?: Record<string, string> } = {}) =>
    call(agent, `${running.url}${o.path ?? '/validate'}`, {
      method: 'POST',
      body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
      headers: o.headers ?? { 'content-type': 'application/json' },
    });
  const server: TestServer = {
    ...running,
    log,
    post,
    get: (path) => call(agent, `${running.url}${path}`),
    async review(body, path) {
      const res = await post(body, path ? { path } : {});
      if (res.status !== 200) throw new Error(`review answered ${res.status}: ${res.text}`);
      if (res.json.apiVersion !== 'admission.k8s.io/v1' || res.json.kind !== 'AdmissionReview')
        throw new Error(`not an AdmissionReview: ${res.text}`);
      return res.json.response as Obj;
    },
    close: async () => {
      await running.close();
      await agent.close();
    },
  };
  return server;
}

/** What the API server would refuse in a warning: any C0/C1 control character, DEL included. */
export const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** auditAnnotations keys must be qualified names once prefixed with "<webhook>/" (docs/protocol.md, Admission webhooks). */
export const QUALIFIED_NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function runes(text: string): number {
  return [...text].length;
}
