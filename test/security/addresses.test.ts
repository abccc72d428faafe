// Link-local and metadata addresses in every spelling: IPv4-mapped IPv6 (dotted and hex), IPv4-
// compatible, NAT64, 6to4, and whatever a name resolves to, as image hosts, realm hosts and redirect
// targets. Literal hosts run inside `unshare -n`; names and redirects use the resolver seam.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import type { LookupAddress } from 'node:dns';
import { fileURLToPath } from 'node:url';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import { validateConfig } from '../../src/config/schema.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import { isForbiddenAddress } from '../../src/registry/hosts.ts';
import type { LookupFunction } from '../../src/registry/transport.ts';
import { checkImage } from '../preflight/lib.ts';
import { registryClientFor } from '../../src/app/build.ts';

const METADATA_FORMS = [
  '169.254.169.254',
  '::ffff:169.254.169.254',
  '::ffff:a9fe:a9fe',
  '0:0:0:0:0:ffff:a9fe:a9fe',
  '::169.254.169.254',
  '::a9fe:a9fe',
  '64:ff9b::a9fe:a9fe',
  '64:ff9b::169.254.169.254',
  '2002:a9fe:a9fe::1',
  'fe80::1',
  'fe80::1%eth0',
  'FD00:EC2::254',
  '[::ffff:a9fe:a9fe]',
];
const ORDINARY = ['127.0.0.1', '::1', '::', '10.0.0.1', '::ffff:10.0.0.1', '64:ff9b::a00:1', '2001:db8::1', 'fec0::1'];

t.test('every spelling of a link-local or metadata address is forbidden, ordinary ones are not', async (t) => {
  for (const a of METADATA_FORMS) t.ok(isForbiddenAddress(a), `${a} is forbidden`);
  for (const a of ORDINARY) t.notOk(isForbiddenAddress(a), `${a} is not`);
});

t.test('literal image hosts in IPv6 spellings of the metadata address are refused (inside unshare -n)', async (t) => {
  const images = ['[::ffff:a9fe:a9fe]/x/y:1', '[::a9fe:a9fe]/x/y:1', '[64:ff9b::a9fe:a9fe]/x/y:1'];
  const script = fileURLToPath(new URL('./fixtures/check-hosts.ts', import.meta.url));
  const out = execFileSync('unshare', ['-n', process.execPath, script, ...images], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const findings = JSON.parse(out) as { image: string; reason: string; message: string }[];
  t.equal(findings.length, images.length);
  for (const f of findings) {
    t.equal(f.reason, 'registry-unreachable', f.image);
    t.match(f.message, 'link-local or metadata', `${f.image}: refused before any connection`);
  }
});

/** Names resolve here: each to one spelling of the metadata address. */
const seam: LookupFunction = (hostname, _options, callback) => {
  const answers: Record<string, string> = {
    'mapped.test': '::ffff:169.254.169.254',
    'mapped-hex.test': '::ffff:a9fe:a9fe',
    'nat64.test': '64:ff9b::a9fe:a9fe',
    'compat.test': '::a9fe:a9fe',
  };
  const address = answers[hostname];
  if (address) return callback(null, [{ address, family: 6 } as LookupAddress]);
  const err: NodeJS.ErrnoException = new Error(`tests resolve no other names (${hostname})`);
  err.code = 'EAI_FAIL';
  callback(err, []);
};

t.test('names that resolve to a mapped or translated metadata address are refused (resolver seam)', async (t) => {
  const engine = new Preflight(
    validateConfig({ deadline: 2000 }),
    registryClientFor(validateConfig({ deadline: 2000 }), [], { lookup: seam }),
  );
  t.teardown(() => engine.close());
  for (const host of ['mapped.test', 'mapped-hex.test', 'nat64.test', 'compat.test']) {
    const v = await checkImage(engine, `${host}/x/y:1`);
    t.equal(v.reason, 'registry-unreachable', host);
    t.match(v.message, 'link-local or metadata', host);
  }
});

t.test('a redirect or a token realm pointing at a mapped metadata address is not followed', async (t) => {
  const registry = await startFaultProxy({ upstream: 'http://127.0.0.1:1' });
  t.teardown(() => registry.stop());
  const config = validateConfig({ deadline: 2000, registry: { insecure: [registry.host] } });
  const engine = new Preflight(config, registryClientFor(config, [], { lookup: seam }));
  t.teardown(() => engine.close());
  registry.fault(
    { kind: 'redirect', location: 'http://mapped.test/v2/x/y/manifests/1', status: 307 },
    { path: /\/x\/y\// },
  );
  const redirected = await checkImage(engine, `${registry.host}/x/y:1`);
  t.match(redirected.message, 'link-local or metadata', 'redirect target');
  registry.fault(
    {
      kind: 'status',
      status: 401,
      headers: { 'www-authenticate': 'Bearer realm="http://nat64.test/token",service="s"' },
      body: '',
    },
    { path: /\/z\/w\// },
  );
  const realm = await checkImage(engine, `${registry.host}/z/w:1`);
  t.match(realm.message, 'link-local or metadata', 'token realm');
});
