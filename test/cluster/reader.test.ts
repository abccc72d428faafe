// ClusterReader against the fixture API server, through a generated kubeconfig and the real
// @kubernetes/client-node: secrets, service accounts, caching, de-duplication, timeouts, access.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { KubeConfig } from '@kubernetes/client-node';
import { ClusterReader, type ClusterReaderOptions, type PullSecretRead } from '../../src/cluster/reader.ts';
import { REQUIRED_ACCESS } from '../../src/cluster/access.ts';
import { KubeApiServer, dockerConfigJson, dockercfg } from '../helpers/kube-api.ts';

// Every credential value used below; none may ever show up in a detail or a log line.
const SECRETS = {
  user: 'robot$shop+puller',
  pass: 'p4ss-W0RD-never-logged-7731',
  cfgPass: 'legacy-dockercfg-pw-9912',
  brokenPass: 'BROKEN-json-pw-5521',
  badAuthPass: 'bad-auth-field-pw-3310',
};
const secretNeedles = (): string[] => {
  const out: string[] = [];
  for (const v of Object.values(SECRETS)) {
    out.push(v, Buffer.from(v).toString('base64'));
  }
  out.push(Buffer.from(`${SECRETS.user}:${SECRETS.pass}`).toString('base64'));
  out.push(Buffer.from(`${SECRETS.user}:${SECRETS.cfgPass}`).toString('base64'));
  return out;
};

const api = await KubeApiServer.start();
const dir = await mkdtemp(join(tmpdir(), 'pullguard-kube-'));
const kubeconfig = await api.writeKubeconfig(dir);
const logLines: string[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  }),
);
const details: string[] = [];

t.teardown(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

function kc(file = kubeconfig): KubeConfig {
  const k = new KubeConfig();
  k.loadFromFile(file);
  return k;
}

function reader(opts: Partial<ClusterReaderOptions> = {}): ClusterReader {
  return new ClusterReader(kc(), { cacheTtlMs: 60_000, logger, ...opts });
}

function keep<T extends { detail?: string }>(r: T): T {
  if (r.detail !== undefined) details.push(r.detail);
  return r;
}

async function read(r: ClusterReader, ns: string, names: string[]): Promise<PullSecretRead[]> {
  const out = await r.readPullSecrets(ns, names);
  out.forEach(keep);
  return out;
}

const entriesOf = (r: PullSecretRead | undefined) => Object.fromEntries(r?.entries ?? new Map());

// ---- fixtures ----------------------------------------------------------------------------------

api.putSecret({
  namespace: 'shop',
  name: 'regcred',
  type: 'kubernetes.io/dockerconfigjson',
  stringData: dockerConfigJson({ 'registry.example.com': { username: SECRETS.user, password: SECRETS.pass } }),
});
api.putSecret({
  namespace: 'shop',
  name: 'legacy',
  type: 'kubernetes.io/dockercfg',
  stringData: dockercfg({
    'https://index.docker.io/v1/': { username: SECRETS.user, password: SECRETS.cfgPass, email: 'ops@example.com' },
  }),
});
api.putSecret({
  namespace: 'shop',
  name: 'opaque',
  type: 'Opaque',
  stringData: dockerConfigJson({ 'registry.example.com': { username: SECRETS.user, password: SECRETS.pass } }),
});
api.putSecret({
  namespace: 'shop',
  name: 'tls',
  type: 'kubernetes.io/tls',
  stringData: { 'tls.crt': 'x', 'tls.key': 'y' },
});
api.putSecret({
  namespace: 'shop',
  name: 'broken',
  type: 'kubernetes.io/dockerconfigjson',
  stringData: { '.dockerconfigjson': `{"auths":{"registry.example.com":{"password":"${SECRETS.brokenPass}"` },
});
api.putSecret({
  namespace: 'shop',
  name: 'bad-auth',
  type: 'kubernetes.io/dockerconfigjson',
  stringData: {
    '.dockerconfigjson': JSON.stringify({ auths: { 'registry.example.com': { auth: `${SECRETS.badAuthPass} !` } } }),
  },
});
api.putSecret({
  namespace: 'shop',
  name: 'no-key',
  type: 'kubernetes.io/dockercfg',
  data: {},
});
api.putSecret({
  namespace: 'locked',
  name: 'regcred',
  type: 'kubernetes.io/dockerconfigjson',
  stringData: dockerConfigJson({ 'registry.example.com': { username: SECRETS.user, password: SECRETS.pass } }),
});
api.forbid({ resource: 'secrets', namespace: 'locked' });
api.forbid({ resource: 'serviceaccounts', namespace: 'locked' });
api.putServiceAccount('shop', 'default');
api.putServiceAccount('shop', 'builder', ['regcred', '', 'legacy']);
api.putServiceAccount('locked', 'default', ['regcred']);

// ---- secrets -----------------------------------------------------------------------------------

t.test('a kubernetes.io/dockerconfigjson secret decodes to its auths', async (t) => {
  const [r] = await read(reader(), 'shop', ['regcred']);
  t.equal(r?.status, 'ok');
  t.equal(r?.type, 'kubernetes.io/dockerconfigjson');
  t.same(entriesOf(r), { 'registry.example.com': { username: SECRETS.user, password: SECRETS.pass, email: '' } });
  t.equal(r?.detail, undefined);
});

t.test('a legacy kubernetes.io/dockercfg secret decodes its flat map', async (t) => {
  const [r] = await read(reader(), 'shop', ['legacy']);
  t.equal(r?.status, 'ok');
  t.equal(r?.type, 'kubernetes.io/dockercfg');
  t.same(entriesOf(r), {
    'https://index.docker.io/v1/': { username: SECRETS.user, password: SECRETS.cfgPass, email: 'ops@example.com' },
  });
});

t.test('a missing secret is reported, not thrown', async (t) => {
  const [r] = await read(reader(), 'shop', ['nope']);
  t.equal(r?.status, 'missing');
  t.match(r?.detail, /secret "nope" in namespace "shop" not found/);
});

t.test('other secret types are wrong-type, as the kubelet ignores them', async (t) => {
  const [opaque, tls] = await read(reader(), 'shop', ['opaque', 'tls']);
  t.equal(opaque?.status, 'wrong-type');
  t.equal(opaque?.type, 'Opaque');
  t.equal(opaque?.entries, undefined);
  t.match(
    opaque?.detail,
    /type Opaque; the kubelet only uses kubernetes\.io\/dockerconfigjson and kubernetes\.io\/dockercfg/,
  );
  t.equal(tls?.status, 'wrong-type');
  t.equal(tls?.type, 'kubernetes.io/tls');
});

t.test('a secret that does not parse is unparseable, without quoting it', async (t) => {
  const [broken, badAuth, noKey] = await read(reader(), 'shop', ['broken', 'bad-auth', 'no-key']);
  t.equal(broken?.status, 'unparseable');
  t.match(broken?.detail, /\.dockerconfigjson is not a valid docker config/);
  t.equal(badAuth?.status, 'unparseable');
  t.match(badAuth?.detail, /"auth" is not valid base64/);
  t.equal(noKey?.status, 'unparseable');
  t.match(noKey?.detail, /has no \.dockercfg key/);
});

t.test('a secret pullguard may not read is forbidden, with the API server reason', async (t) => {
  const [r] = await read(reader(), 'locked', ['regcred']);
  t.equal(r?.status, 'forbidden');
  t.match(r?.detail, /may not get secret "regcred" in namespace "locked"/);
  t.match(r?.detail, /cannot get resource "secrets"/);
});

t.test('empty names are skipped, duplicates read once, order kept', async (t) => {
  const before = api.requests.length;
  const out = await read(reader(), 'shop', ['legacy', '', 'regcred', 'legacy', 'nope']);
  t.same(
    out.map((r) => [r.name, r.status]),
    [
      ['legacy', 'ok'],
      ['regcred', 'ok'],
      ['nope', 'missing'],
    ],
  );
  t.equal(api.requests.length - before, 3);
  t.same(await reader().readPullSecrets('shop', []), []);
});

// ---- service accounts --------------------------------------------------------------------------

t.test('service account imagePullSecrets', async (t) => {
  const r = reader();
  const builder = keep(await r.serviceAccountPullSecrets('shop', 'builder'));
  t.match(builder, { status: 'ok', names: ['regcred', 'legacy'], uid: String }, 'its uid too (credential providers)');
  t.same(builder.names, ['regcred', 'legacy']);
  t.same(keep(await r.serviceAccountPullSecrets('shop', 'default')).names, []);
  // Annotations for credential providers with tokenAttributes; never kubectl's copy of the object.
  const annotated = api.putServiceAccount('shop', 'annotated');
  annotated.metadata.annotations = {
    'registry.test/role': 'puller',
    'kubectl.kubernetes.io/last-applied-configuration': '{"big":"copy"}',
  };
  t.same(keep(await r.serviceAccountPullSecrets('shop', 'annotated')).annotations, { 'registry.test/role': 'puller' });
  const missing = keep(await r.serviceAccountPullSecrets('shop', 'ghost'));
  t.equal(missing.status, 'missing');
  t.same(missing.names, []);
  t.match(missing.detail, /service account "ghost" in namespace "shop" not found/);
  const locked = keep(await r.serviceAccountPullSecrets('locked', 'default'));
  t.equal(locked.status, 'forbidden');
  t.same(locked.names, []);
});

// ---- caching and de-duplication ----------------------------------------------------------------

t.test('a second read within the TTL makes no request; after it, one', async (t) => {
  const ttl = 1000;
  const r = reader({ cacheTtlMs: ttl });
  const count = () => api.countRequests({ resource: 'secrets', namespace: 'shop', name: 'regcred' });
  const saCount = () => api.countRequests({ resource: 'serviceaccounts', namespace: 'shop', name: 'builder' });
  const c0 = count();
  const s0 = saCount();
  // Each object is read again right after its first read, with no I/O in between, so the second read
  // falls inside the TTL however busy the machine.
  await read(r, 'shop', ['regcred']);
  t.equal(count() - c0, 1);
  const [again] = await read(r, 'shop', ['regcred']);
  await r.serviceAccountPullSecrets('shop', 'builder');
  await r.serviceAccountPullSecrets('shop', 'builder');
  t.equal(again?.status, 'ok');
  t.equal(count() - c0, 1, 'cached secret');
  t.equal(saCount() - s0, 1, 'cached service account');
  await sleep(ttl + 100);
  await read(r, 'shop', ['regcred']);
  await r.serviceAccountPullSecrets('shop', 'builder');
  t.equal(count() - c0, 2, 'expired: read again');
  t.equal(saCount() - s0, 2);
});

t.test('reads answered from the cache come at once, as the reads before them answered', async (t) => {
  const r = reader({ cacheTtlMs: 60_000 });
  const names = ['legacy', '', 'regcred', 'legacy', 'nope'];
  const first = r.readPullSecrets('shop', names);
  t.ok(first instanceof Promise, 'nothing read yet: a promise');
  const read1 = await first;
  const sa = await r.serviceAccountPullSecrets('shop', 'builder');
  const locked = await r.serviceAccountPullSecrets('locked', 'default');
  const before = api.requests.length;
  const now = r.readPullSecrets('shop', names);
  t.notOk(now instanceof Promise, 'read before: the answers themselves');
  t.same(now, read1, 'the same answers in the same order, the missing one too');
  t.same(r.readPullSecrets('shop', []), []);
  t.same(r.serviceAccountPullSecrets('shop', 'builder'), sa);
  t.same(r.serviceAccountPullSecrets('locked', 'default'), locked, 'a forbidden answer is kept as well');
  // Names that are never asked for are answered at once.
  t.same(r.readPullSecrets('shop', ['a/b', 'regcred']), [
    { name: 'a/b', status: 'error', detail: 'not a valid Secret name' },
    read1.find((s) => s.name === 'regcred'),
  ]);
  t.notOk(r.readPullSecrets('..', ['regcred']) instanceof Promise);
  t.notOk(r.serviceAccountPullSecrets('shop', 'Bad_Name') instanceof Promise);
  t.equal(api.requests.length, before, 'no request');
  const partly = r.readPullSecrets('shop', ['regcred', 'opaque']);
  t.ok(partly instanceof Promise, 'one name not read: waited for');
  await partly;
  t.ok(r.serviceAccountPullSecrets('shop', 'default') instanceof Promise);
});

t.test('cached reads end with the TTL, and an error is never one', async (t) => {
  const ttl = 300;
  // The read's own timeout is ample: only the TTL is under test here. The check right after the
  // read has no I/O in between, so it falls inside the TTL however busy the machine.
  const r = reader({ cacheTtlMs: ttl, requestTimeoutMs: 60_000 });
  await read(r, 'shop', ['regcred']);
  t.notOk(r.readPullSecrets('shop', ['regcred']) instanceof Promise, 'cached');
  await sleep(ttl + 100);
  const again = r.readPullSecrets('shop', ['regcred']);
  t.ok(again instanceof Promise, 'expired');
  await again;
  // A reader whose requests time out soon: the API server holds its answer past that.
  const impatient = reader({ cacheTtlMs: 60_000, requestTimeoutMs: 100 });
  api.holdAnswers(t);
  const [slow] = await read(impatient, 'shop', ['legacy']);
  t.equal(slow?.status, 'error');
  t.ok(
    impatient.readPullSecrets('shop', ['legacy']) instanceof Promise,
    'the error is asked again, not answered from the cache',
  );
});

t.test('negative answers are cached too, for their own TTL', async (t) => {
  const negativeTtl = 1000;
  const r = reader({ cacheTtlMs: 60_000, negativeTtlMs: negativeTtl });
  const count = () => api.countRequests({ resource: 'secrets', namespace: 'shop', name: 'late' });
  const c0 = count();
  t.equal((await read(r, 'shop', ['late']))[0]?.status, 'missing');
  api.putSecret({
    namespace: 'shop',
    name: 'late',
    type: 'kubernetes.io/dockerconfigjson',
    stringData: dockerConfigJson({ 'registry.example.com': { username: SECRETS.user, password: SECRETS.pass } }),
  });
  t.equal((await read(r, 'shop', ['late']))[0]?.status, 'missing', 'still the cached answer');
  t.equal(count() - c0, 1);
  await sleep(negativeTtl + 100);
  t.equal((await read(r, 'shop', ['late']))[0]?.status, 'ok', 'seen after the negative TTL');
  t.equal(count() - c0, 2);
  api.deleteSecret('shop', 'late');
});

t.test('concurrent reads of the same object share one request', async (t) => {
  api.latencyMs = 100;
  t.teardown(() => {
    api.latencyMs = 0;
  });
  const r = reader();
  const count = (name: string) => api.countRequests({ resource: 'secrets', namespace: 'shop', name });
  const saCount = () => api.countRequests({ resource: 'serviceaccounts', namespace: 'shop', name: 'builder' });
  const [c1, c2, s0] = [count('regcred'), count('legacy'), saCount()];
  const results = await Promise.all([
    ...Array.from({ length: 10 }, () => r.readPullSecrets('shop', ['regcred'])),
    r.readPullSecrets('shop', ['legacy', 'regcred']),
    r.readPullSecrets('shop', ['regcred', 'legacy']),
    ...Array.from({ length: 5 }, () => r.serviceAccountPullSecrets('shop', 'builder')),
  ]);
  t.equal(count('regcred') - c1, 1);
  t.equal(count('legacy') - c2, 1);
  t.equal(saCount() - s0, 1);
  for (const res of results) {
    if (Array.isArray(res)) for (const s of res) t.equal(s.status, 'ok');
    else t.same(res.names, ['regcred', 'legacy']);
  }
});

// ---- deadlines and failures --------------------------------------------------------------------

t.test('a slow API server gives an error within the request timeout, not cached', async (t) => {
  // The server answers only when the test lets it, after the reads have given up.
  const answer = api.holdAnswers(t);
  const r = reader({ requestTimeoutMs: 100 });
  const [slow] = await read(r, 'shop', ['regcred']);
  const sa = keep(await r.serviceAccountPullSecrets('shop', 'builder'));
  t.equal(slow?.status, 'error', 'answered while the server still held its answer');
  t.match(slow?.detail, /did not answer within 100ms/);
  t.equal(sa.status, 'error');
  answer();
  const [later] = await read(r, 'shop', ['regcred']);
  t.equal(later?.status, 'ok', 'the error was not cached');
});

t.test("a caller's signal ends its wait only; the shared read goes on for the others", async (t) => {
  // The server answers only when the test lets it: after the impatient caller has been answered.
  const answer = api.holdAnswers(t);
  const r = reader();
  const count = () => api.countRequests({ resource: 'secrets', namespace: 'shop', name: 'legacy' });
  const c0 = count();
  const ac = new AbortController();
  const impatient = r.readPullSecrets('shop', ['legacy'], { signal: ac.signal });
  const patient = r.readPullSecrets('shop', ['legacy']);
  ac.abort();
  const [gaveUp] = await impatient;
  t.equal(gaveUp?.status, 'error', 'the aborted caller is answered while the read is still under way');
  t.match(keep(gaveUp!).detail, /deadline/);
  answer();
  t.equal((await patient)[0]?.status, 'ok');
  t.equal(count() - c0, 1);
  await r.serviceAccountPullSecrets('shop', 'default');
  const pre = new AbortController();
  pre.abort();
  t.equal(
    (await r.serviceAccountPullSecrets('shop', 'default', { signal: pre.signal })).status,
    'ok',
    'cached answers need no wait',
  );
  t.equal((await r.serviceAccountPullSecrets('shop', 'other', { signal: pre.signal })).status, 'error');
});

t.test('a rejected token is an error naming the 401', async (t) => {
  const file = await api.writeKubeconfig(dir, { token: 'wrong-token', file: 'bad-token' });
  const r = new ClusterReader(kc(file), { cacheTtlMs: 60_000, logger });
  const [s] = await read(r, 'shop', ['regcred']);
  t.equal(s?.status, 'error');
  t.match(
    s?.detail,
    /^cannot get secret "regcred" in namespace "shop": 401 Unauthorized; the API server refused the credentials/,
  );
});

t.test('an unreachable API server is an error naming the cause', async (t) => {
  const gone = await KubeApiServer.start();
  const file = await gone.writeKubeconfig(dir, { file: 'gone' });
  await gone.close();
  const r = new ClusterReader(kc(file), { cacheTtlMs: 60_000, requestTimeoutMs: 60_000, logger });
  const [s] = await read(r, 'shop', ['regcred']);
  t.equal(s?.status, 'error');
  t.match(s?.detail, /cannot reach the API server.*: the connection was refused/);
  const sa = keep(await r.serviceAccountPullSecrets('shop', 'default'));
  t.equal(sa.status, 'error');
});

// ---- access and secrecy (after everything above) -----------------------------------------------

t.test('every request stayed inside REQUIRED_ACCESS', async (t) => {
  t.ok(api.requests.length > 20);
  t.same(api.requestsOutside(REQUIRED_ACCESS), []);
  t.same(new Set(api.requests.map((r) => `${r.verb} ${r.resource}`)), new Set(['get secrets', 'get serviceaccounts']));
  t.ok(api.requests.filter((r) => r.authenticated).length > 0);
});

t.test('no secret value appears in any detail or log line', async (t) => {
  t.ok(details.length >= 15, `collected ${details.length} details`);
  t.ok(logLines.length > 0, 'the logger was used');
  const haystack = [...details, ...logLines].join('\n');
  for (const needle of secretNeedles()) t.notOk(haystack.includes(needle), `no ${needle.slice(0, 6)}…`);
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
