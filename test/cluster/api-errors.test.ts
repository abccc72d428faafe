// A failed Kubernetes API call is one line for people: the verb and the object, the HTTP status, the
// API server's own Status message and, where pullguard knows it, the setting to change; never
// client-node's dump ("HTTP-Code: 404\nMessage: Unknown API Status Code!\nBody: …\nHeaders: …"),
// and never a token. The answers are a real kube-apiserver's (the lab) and the fixture API server's.
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import t from 'tap';
import { main } from '../../src/cli/main.ts';
import { apiErrorText, errorLine, KubeApiError, kubeApiError } from '../../src/cluster/api-errors.ts';
import { PodReader } from '../../src/cluster/pods.ts';
import { EventApi } from '../../src/cluster/events.ts';
import { LeaseLock } from '../../src/cluster/lease.ts';
import { NodeWatcher } from '../../src/cluster/nodes.ts';
import { WorkloadLists } from '../../src/cluster/workloads.ts';
import { PullguardError } from '../../src/errors.ts';
import { EventPoster } from '../../src/watch/events.ts';
import { LeaderLease } from '../../src/watch/lease.ts';
import pino from 'pino';
import { runInProcess } from '../helpers/cli.ts';
import { KubeApiServer } from '../helpers/kube-api.ts';
import { startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { freePort } from '../helpers/registry.ts';

let lab: KubeLab;
t.before(async () => {
  lab = await startKubeLab({ users: [{ name: 'nobody' }] });
});
t.teardown(async () => {
  await lab?.stop();
});

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

/** A logger whose lines the test reads: `line(msg)` resolves with the first line of that message. */
function logs() {
  const lines: Record<string, unknown>[] = [];
  const waiting: { msg: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(text: string) {
        const l = JSON.parse(text) as Record<string, unknown>;
        lines.push(l);
        for (const w of waiting.filter((w) => w.msg === l.msg)) {
          waiting.splice(waiting.indexOf(w), 1);
          w.resolve(l);
        }
      },
    },
  );
  const line = (msg: string) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const seen = lines.find((l) => l.msg === msg);
      if (seen) resolve(seen);
      else waiting.push({ msg, resolve });
    });
  return { logger, line };
}

const nobody = () => {
  const kc = new KubeConfig();
  kc.loadFromFile(lab.kubeconfigFor('nobody'));
  return kc;
};

/** The one line: no dump, no newline, no token. */
function oneLineFor(t: Tap, text: string, tokens: string[] = []): void {
  t.notMatch(text, /HTTP-Code|Message: Unknown|Body:|Headers:/, "not client-node's dump");
  t.notMatch(text, /[\r\n]/, 'one line');
  for (const token of [lab.adminToken, ...Object.values(lab.tokens), ...tokens])
    t.notOk(text.includes(token), 'no token');
}

/** The error a promise fails with. */
async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('the call succeeded');
}

const leaseBody = (name: string, namespace: string) => ({
  namespace,
  body: { metadata: { name, namespace }, spec: { holderIdentity: 'replica-1', leaseDurationSeconds: 15 } },
});
const leaseCall = (verb: string, name: string, namespace: string) => ({
  verb,
  what: `Lease "${name}" in namespace "${namespace}"`,
  namespace,
  namespaceSetting: 'watch.leaseNamespace',
  nameSetting: 'watch.leaseName',
});

t.test('404: a namespace that does not exist names the setting that chose it', async (t) => {
  const leases = lab.kc().makeApiClient(CoordinationV1Api);
  const err = await failure(leases.createNamespacedLease(leaseBody('pullguard-watch', 'nope')));
  const text = apiErrorText(err, leaseCall('create', 'pullguard-watch', 'nope'));
  t.equal(
    text,
    'cannot create Lease "pullguard-watch" in namespace "nope": 404 Not Found: namespaces "nope" not found; ' +
      'the namespace "nope" does not exist: change watch.leaseNamespace',
  );
  oneLineFor(t, text);
  const wrapped = kubeApiError(err, leaseCall('create', 'pullguard-watch', 'nope'));
  t.ok(wrapped instanceof PullguardError, 'a PullguardError');
  t.equal(wrapped.code, 'kube-api');
  t.equal(wrapped.status, 404, 'the status stays for the caller to branch on');
  t.equal(wrapped.message, text);
  t.equal(kubeApiError(wrapped, leaseCall('get', 'x', 'y')), wrapped, 'wrapped once, where it happened');
});

t.test('409: the Status message says what exists', async (t) => {
  const leases = lab.kc().makeApiClient(CoordinationV1Api);
  await leases.createNamespacedLease(leaseBody('taken', 'default'));
  const err = await failure(leases.createNamespacedLease(leaseBody('taken', 'default')));
  const text = apiErrorText(err, leaseCall('create', 'taken', 'default'));
  t.equal(
    text,
    'cannot create Lease "taken" in namespace "default": 409 Conflict: leases.coordination.k8s.io "taken" already exists',
  );
  oneLineFor(t, text);
});

t.test('422: an invalid name names the setting that chose it', async (t) => {
  const leases = lab.kc().makeApiClient(CoordinationV1Api);
  const err = await failure(leases.createNamespacedLease(leaseBody('Not_A_Name', 'default')));
  const text = apiErrorText(err, leaseCall('create', 'Not_A_Name', 'default'));
  t.match(
    text,
    /^cannot create Lease "Not_A_Name" in namespace "default": 422 Unprocessable Entity: Lease\.coordination\.k8s\.io "Not_A_Name" is invalid: metadata\.name: Invalid value: "Not_A_Name": .*; change watch\.leaseName$/,
  );
  oneLineFor(t, text);
});

t.test('403: who may not do what, as the API server says it', async (t) => {
  const kc = new KubeConfig();
  kc.loadFromFile(lab.kubeconfigFor('nobody'));
  const err = await failure(new PodReader(kc, 30_000).pages(undefined).next());
  t.ok(err instanceof KubeApiError && err instanceof PullguardError, 'a PullguardError');
  t.equal((err as KubeApiError).code, 'kube-api');
  t.equal((err as KubeApiError).status, 403);
  t.equal(
    (err as Error).message,
    'cannot list pods in all namespaces: 403 Forbidden: pods is forbidden: User "nobody" cannot list resource "pods" in API group "" at the cluster scope',
  );
  oneLineFor(t, (err as Error).message);
});

t.test('404 of a named pod; 401 of a token the API server does not know', async (t) => {
  const err = await failure(new PodReader(lab.kc(), 30_000).pod('default', 'no-such-pod'));
  t.equal(
    (err as Error).message,
    'cannot get pod "no-such-pod" in namespace "default": 404 Not Found: pods "no-such-pod" not found',
  );
  const wrongToken = 'wrong-token-0123456789abcdef';
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'lab', server: lab.url, caFile: lab.caFile }],
    users: [{ name: 'someone', token: wrongToken }],
    contexts: [{ name: 'lab', cluster: 'lab', user: 'someone' }],
    currentContext: 'lab',
  });
  const denied = await failure(new PodReader(kc, 30_000).pod('default', 'web'));
  t.equal(
    (denied as Error).message,
    'cannot get pod "web" in namespace "default": 401 Unauthorized; ' +
      "the API server refused the credentials (the kubeconfig user's, or the service account token)",
  );
  oneLineFor(t, (denied as Error).message, [wrongToken]);
});

t.test('no answer: a refused connection and a timeout in words', async (t) => {
  const port = await freePort();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'refused-token-0123456789' }],
    contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
    currentContext: 'c',
  });
  const refused = await failure(new PodReader(kc, 30_000).pages('default').next());
  t.equal(
    (refused as Error).message,
    'cannot list pods in namespace "default": cannot reach the API server: the connection was refused (nothing listens there)',
  );
  oneLineFor(t, (refused as Error).message, ['refused-token-0123456789']);

  // The fixture API server holds its answer until the test lets it go: the reader's timeout comes first.
  const api = await KubeApiServer.start({
    rbac: [{ apiGroup: '', resource: 'pods', verbs: ['list'], namespaced: true }],
  });
  t.teardown(() => api.close());
  const release = api.holdAnswers(t);
  const held = new KubeConfig();
  held.loadFromFile(await api.writeKubeconfig(lab.dir, { file: 'kubeconfig-fixture' }));
  const timedOut = await failure(new PodReader(held, 500).pages('default').next());
  release();
  t.equal(
    (timedOut as Error).message,
    'cannot list pods in namespace "default": the API server did not answer within 500ms',
  );
  oneLineFor(t, (timedOut as Error).message, [api.token]);
});

t.test('a log line of any error is one line; a raw ApiException is not dumped', async (t) => {
  const leases = lab.kc().makeApiClient(CoordinationV1Api);
  const raw = await failure(leases.readNamespacedLease({ name: 'none', namespace: 'default' }));
  t.match((raw as Error).message, /^HTTP-Code: 404\nMessage: /, "client-node's own message, for the record");
  const line = errorLine(raw);
  t.match(line, /404 Not Found: leases\.coordination\.k8s\.io "none" not found$/);
  oneLineFor(t, line);
  t.equal(errorLine(new KubeApiError('cannot get x: 404 Not Found', 404)), 'cannot get x: 404 Not Found');
  t.equal(errorLine(new Error('two\nlines')), 'two lines');
});

t.test('pullguard diagnose: a forbidden read is one line and exit 2', async (t) => {
  const r = await runInProcess(main, ['diagnose', '-A', '--kubeconfig', lab.kubeconfigFor('nobody')], {
    env: {},
  });
  t.equal(r.code, 2);
  t.equal(
    r.stderr,
    'pullguard diagnose: cannot list pods in all namespaces: 403 Forbidden: pods is forbidden: User "nobody" cannot list resource "pods" in API group "" at the cluster scope\n',
  );
});

t.test('the watch: a Lease in a namespace that does not exist is one log line naming the setting', async (t) => {
  const { logger, line } = logs();
  const lease = new LeaderLease(new LeaseLock(lab.kc(), { namespace: 'nope', name: 'pullguard-watch' }), {
    identity: 'replica-1',
    durationMs: 60_000,
    logger,
  });
  t.teardown(() => lease.stop());
  lease.start();
  const l = await line('lease not renewed');
  t.equal(
    l.err,
    'cannot create Lease "pullguard-watch" in namespace "nope": 404 Not Found: namespaces "nope" not found; ' +
      'the namespace "nope" does not exist: change watch.leaseNamespace',
  );
  oneLineFor(t, String(l.err));
});

t.test("the watch: an Event it may not create is one log line with the API server's words", async (t) => {
  const { logger, line } = logs();
  const poster = new EventPoster(new EventApi(nobody()), { identity: 'replica-1', minIntervalMs: 60_000, logger });
  const target = { apiVersion: 'v1', kind: 'Pod', namespace: 'default', name: 'web' };
  t.equal(await poster.post({ target, subject: 'web', reason: 'ImagePullFails', message: 'm' }), 'failed');
  const l = await line('event not posted');
  t.match(
    l.err,
    /^cannot create Event "web\.pullguard\.[0-9a-f]{12}" in namespace "default": 403 Forbidden: events is forbidden: User "nobody" cannot create resource "events" in API group "" in the namespace "default"$/,
  );
  oneLineFor(t, String(l.err));
});

t.test('the watch: a workload kind it may not list is one line', async (t) => {
  const lists = await new WorkloadLists(nobody()).list();
  const deployments = lists.find((l) => l.kind === 'Deployment');
  t.ok(deployments && 'error' in deployments);
  const err = (deployments as { error: Error }).error;
  t.ok(err instanceof KubeApiError);
  t.equal(
    err.message,
    'cannot list Deployments in all namespaces: 403 Forbidden: deployments.apps is forbidden: User "nobody" cannot list resource "deployments" in API group "apps" at the cluster scope',
  );
});

t.test('the node watch: a list it may not make is one log line', async (t) => {
  const api = await KubeApiServer.start();
  t.teardown(() => api.close());
  api.forbid({ resource: 'nodes' });
  const kc = new KubeConfig();
  kc.loadFromFile(await api.writeKubeconfig(lab.dir, { file: 'kubeconfig-nodes' }));
  const { logger, line } = logs();
  const w = new NodeWatcher(kc, { logger, backoffInitialMs: 1_000, backoffMaxMs: 1_000 });
  t.teardown(() => w.stop());
  w.start();
  const l = await line('listing nodes failed; retrying');
  t.equal(
    l.err,
    'cannot list nodes: 403 Forbidden: nodes is forbidden: User "system:serviceaccount:pullguard:pullguard" cannot list resource "nodes" in API group "" at the cluster scope',
  );
  oneLineFor(t, String(l.err), [api.token]);
});
