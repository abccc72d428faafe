// server.metricsPort: /metrics over plain HTTP on a port of its own (what the manifests, the chart's
// NetworkPolicy and its ServiceMonitor address), or on the webhook's port when it is 0.
import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { request } from 'undici';
import { parseServeArgs } from '../../src/cli/serve.ts';
import { SetupError, UsageError } from '../../src/errors.ts';
import { loadConfig } from '../../src/config/schema.ts';
import { serve } from './lib.ts';

/** A port nothing listens on right now (taken and released), for a server that must bind a fixed one. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

const plainGet = async (url: string) => {
  const res = await request(url, { headersTimeout: 30_000, bodyTimeout: 30_000 });
  return { status: res.statusCode, type: String(res.headers['content-type']), text: await res.body.text() };
};

t.test('the default is a separate port, 9090; 0 keeps /metrics on the webhook port', async (t) => {
  t.equal(loadConfig({ env: {} }).server.metricsPort, 9090);
  t.equal(loadConfig({ env: { PULLGUARD_SERVER_METRICS_PORT: '9100' } }).server.metricsPort, 9100, 'environment');
  const flags = parseServeArgs(['--metrics-port', '0'], { PULLGUARD_SERVER_METRICS_PORT: '9100' });
  t.equal(flags !== 'help' && flags.server.metricsPort, 0, 'the flag wins over the environment');
  let caught: unknown;
  try {
    parseServeArgs(['--metrics-port', 'x'], {});
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof UsageError, 'a non-number is a usage error');
  t.match((caught as Error).message, '--metrics-port must be a number, not "x"');
});

t.test('metrics on their own plain-HTTP port; the webhook port no longer serves them', async (t) => {
  const port = await freePort();
  const s = await serve(null, { server: { metricsPort: port } });
  t.teardown(() => s.close());
  t.equal(s.metricsUrl, `http://127.0.0.1:${port}`, 'listening on the configured port');
  const metrics = await plainGet(`http://127.0.0.1:${port}/metrics`);
  t.equal(metrics.status, 200, 'plain HTTP, no TLS');
  t.match(metrics.type, /^text\/plain/);
  t.match(metrics.text, /# TYPE pullguard_reviews_total counter/);
  t.match(metrics.text, /# TYPE pullguard_registry_ratelimit_remaining gauge/);
  t.equal((await plainGet(`http://127.0.0.1:${port}/validate`)).status, 404, 'no reviews on the metrics port');
  t.equal((await plainGet(`http://127.0.0.1:${port}/healthz`)).status, 404, 'nor probes');
  t.equal((await s.get('/metrics')).status, 404, 'the webhook port has no /metrics');
  t.equal((await s.get('/healthz')).status, 200, 'and still answers its probes');
  const listening = s.log.lines().find((l) => l.msg === 'pullguard webhook listening');
  t.equal(listening?.metrics, `http://127.0.0.1:${port}`, 'the listening line says where the metrics are');
});

t.test('closing the server frees the metrics port', async (t) => {
  const port = await freePort();
  const s = await serve(null, { server: { metricsPort: port } });
  await s.close();
  const again = await serve(null, { server: { metricsPort: port } });
  t.teardown(() => again.close());
  t.equal((await plainGet(`http://127.0.0.1:${port}/metrics`)).status, 200, 'a new server takes the same port');
});

t.test('a metrics port in use: one plain error naming server.metricsPort, nothing left listening', async (t) => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const port = (taken.address() as AddressInfo).port;
  const err = await serve(null, { server: { metricsPort: port } }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof SetupError, 'a setup error (exit 2 from the CLI)');
  t.match(
    (err as Error).message,
    `cannot listen on 127.0.0.1:${port} (server.metricsPort): the address is already in use`,
  );
});
