// A client that hangs up aborts its review's work: the server gives each review the request's
// signal, and the registry request made for it is aborted (the registry sees it given up), long
// before the review's deadline would have ended it.
import t from 'tap';
import { request } from 'node:https';
import { sharedPki } from '../helpers/pki.ts';
import { waitFor } from '../helpers/wait.ts';
import { podReview, serve, startRegistries } from './lib.ts';

// Far beyond the net below: only the hang-up can end the registry request in time.
const DEADLINE = 300_000;
const NET = 60_000;

t.test('a client that closes its connection aborts the registry request of its review', async (t) => {
  const regs = await startRegistries();
  t.teardown(() => regs.stop());
  const s = await serve(regs, { deadline: DEADLINE });
  t.teardown(() => s.close());
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  t.teardown(release);
  const manifests = { path: /\/demo\/app\/manifests\/held$/ };
  regs.plain.proxy!.fault({ kind: 'hold', until: held }, manifests);

  const body = JSON.stringify(podReview(regs, [{ name: 'app', image: `${regs.plain.host}/demo/app:held` }]));
  const pki = await sharedPki();
  const req = request(`${s.url}/validate`, {
    method: 'POST',
    ca: pki.caPem,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  req.on('error', () => {});
  req.end(body);
  await waitFor(() => regs.plain.proxy!.open(manifests) === 1, {
    what: 'the review asking the registry',
    timeoutMs: NET,
  });
  req.destroy();
  await waitFor(() => regs.plain.proxy!.open(manifests) === 0, {
    what: 'the registry request to be aborted after the client hung up',
    timeoutMs: NET,
  });
  t.pass('the client hung up: the registry request was aborted');
  t.equal(regs.plain.proxy!.count(manifests), 1, 'and not asked again');
});
