// containerd's hosts directory: upstream's own table (hosts_test.go), the lookup order of the
// directories, and bad files stopping start-up with the file, line and key.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { HostsDir, parseHostsToml, type RegistryEndpoint } from '../../src/registry/hosts-dir.ts';
import { readVectors } from '../helpers/fixtures.ts';
import { sharedPki } from '../helpers/pki.ts';

interface Expected {
  scheme: string;
  host: string;
  path: string;
  capabilities: string[];
  caFiles?: string[];
  clientPairs?: [string, string][];
  skipVerify?: boolean;
  header?: Record<string, string[]>;
}
interface Row {
  id: string;
  toml?: string;
  baseDir?: string;
  host?: string;
  expected: Expected[];
}

function shape(e: RegistryEndpoint, upstream: Expected): Expected {
  const out: Expected = {
    scheme: e.scheme,
    host: e.host,
    path: e.path,
    // pullguard only reads pull and resolve: push and referrers are compared as upstream has them
    capabilities: upstream.capabilities.filter((c) => (c === 'pull' ? e.pull : c === 'resolve' ? e.resolve : true)),
  };
  if (e.caFiles.length) out.caFiles = e.caFiles;
  if (e.clientPairs.length) out.clientPairs = e.clientPairs;
  if (e.skipVerify !== undefined) out.skipVerify = e.skipVerify;
  if (Object.keys(e.header).length) out.header = e.header;
  return out;
}

function strip(x: Expected & { dialTimeout?: string }): Expected {
  const { dialTimeout: _ignored, ...rest } = x;
  return rest;
}

for (const row of readVectors<Row>('containerd-hosts.json')) {
  t.test(row.id, async (t) => {
    if (row.toml !== undefined) {
      const warnings: string[] = [];
      const got = parseHostsToml('hosts.toml', row.toml, row.baseDir ?? '', warnings);
      t.equal(got.length, row.expected.length, 'as many hosts');
      got.forEach((e, i) => {
        const want = strip(row.expected[i]!);
        t.same(shape(e, want), want, `host ${i}: ${want.host}`);
        // what pullguard reads: only hosts with pull and resolve
        t.equal(e.pull, want.capabilities.includes('pull'));
        t.equal(e.resolve, want.capabilities.includes('resolve'));
      });
      t.same(warnings, [], 'no warnings for keys containerd reads');
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'pg-hosts-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      const got = new HostsDir(dir).endpointsFor(row.host!);
      t.same(
        got.map((e, i) => shape(e, row.expected[i]!)),
        row.expected.map(strip),
      );
    }
  });
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

function dirWith(t: Tap, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pg-hosts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

t.test('directories are looked up as containerd does: host_port_, host:port, then _default', async (t) => {
  const dir = dirWith(t, {
    'up.pgbar.test_5000_/hosts.toml': 'server = "http://127.0.0.1:1"\n[host."http://127.0.0.1:2"]\n',
    'up.pgbar.test:5000/hosts.toml': 'server = "http://127.0.0.1:3"\n[host."http://127.0.0.1:4"]\n',
    'other.test/hosts.toml': '[host."http://127.0.0.1:5"]\n  capabilities = ["pull"]\n',
    '_default/hosts.toml': '[host."http://127.0.0.1:6"]\n',
  });
  const d = new HostsDir(dir);
  t.same(
    d.endpointsFor('up.pgbar.test:5000').map((e) => e.host),
    ['127.0.0.1:2', '127.0.0.1:1'],
  );
  t.same(
    d.endpointsFor('other.test').map((e) => [e.host, e.upstream, e.resolve]),
    [
      ['127.0.0.1:5', false, false],
      ['other.test', true, true],
    ],
    'no server: the domain itself is the upstream',
  );
  t.same(
    d.endpointsFor('docker.io').map((e) => e.host),
    ['127.0.0.1:6', 'registry-1.docker.io'],
    '_default for the rest; docker.io upstream is registry-1.docker.io',
  );
});

t.test('a hosts.toml that does not parse stops start-up with file, line and key', async (t) => {
  const dir = dirWith(t, {
    'bad.test/hosts.toml': 'server = "https://bad.test"\n\n[host."http://127.0.0.1:1"]\n  capabilities = ["pull"\n',
  });
  t.throws(() => new HostsDir(dir), {
    code: 'setup',
    message: /bad\.test\/hosts\.toml:5: .*\(key capabilities, line 4\)/,
  });
  const mid = dirWith(t, { 'mid.test/hosts.toml': '[host."http://127.0.0.1:1"]\n  skip_verify = yes\n' });
  t.throws(() => new HostsDir(mid), {
    code: 'setup',
    message: /mid\.test\/hosts\.toml:2: .*\(key skip_verify, line 2\)/,
  });
});

t.test('a value of the wrong type or an unknown capability names the file, line and key', async (t) => {
  const typed = dirWith(t, {
    'a.test/hosts.toml': 'server = "https://a.test"\n[host."http://127.0.0.1:1"]\n  skip_verify = "yes"\n',
  });
  t.throws(() => new HostsDir(typed), {
    code: 'setup',
    message: /a\.test\/hosts\.toml:3: key host\."http:\/\/127\.0\.0\.1:1"\.skip_verify: must be true or false/,
  });
  const cap = dirWith(t, { 'a.test/hosts.toml': '[host."http://127.0.0.1:1"]\n  capabilities = ["pul"]\n' });
  t.throws(() => new HostsDir(cap), { message: /hosts\.toml:2: key .*capabilities.*unknown capability "pul"/ });
});

t.test(
  'unknown keys are warnings with file and line; missing CA files and unreadable directories are errors',
  async (t) => {
    const dir = dirWith(t, {
      'a.test/hosts.toml': 'server = "https://a.test"\n[host."http://127.0.0.1:1"]\n  capabilites = ["pull"]\n',
    });
    const d = new HostsDir(dir);
    t.match(d.warnings, [/a\.test\/hosts\.toml:3: key host\."http:\/\/127\.0\.0\.1:1"\.capabilites: not a containerd/]);
    const ca = dirWith(t, { 'a.test/hosts.toml': '[host."https://127.0.0.1:1"]\n  ca = "missing.pem"\n' });
    t.throws(() => new HostsDir(ca), { code: 'setup', message: /hosts\.toml: key ca: .*missing\.pem: / });
    t.throws(() => new HostsDir(join(ca, 'nope')), { code: 'setup', message: /hosts directory .*nope: .*--hosts-dir/ });
    if (process.getuid?.() === 0) return; // root reads anything
    const locked = dirWith(t, { 'x/hosts.toml': '' });
    chmodSync(locked, 0);
    t.teardown(() => chmodSync(locked, 0o700));
    t.throws(() => new HostsDir(locked), { code: 'setup' });
  },
);

t.test('a server without a [host] table: a warning that containerd 1.6 ignores the file', async (t) => {
  const dir = dirWith(t, { 'a.test/hosts.toml': 'server = "http://127.0.0.1:1"\n' });
  const d = new HostsDir(dir);
  t.same(
    d.endpointsFor('a.test').map((e) => e.host),
    ['127.0.0.1:1'],
  );
  t.match(d.warnings, [/containerd 1\.6 ignores such a file/]);
});

t.test('a ca file without a certificate and a client pair that does not load stop start-up', async (t) => {
  const dir = dirWith(t, {
    'a.test/hosts.toml': '[host."https://127.0.0.1:1"]\n  ca = "ca.pem"\n',
    'a.test/ca.pem': 'not a certificate\n',
  });
  t.throws(() => new HostsDir(dir), { code: 'setup', message: /hosts\.toml: key ca: .*ca\.pem: no PEM certificate/ });
  const pair = dirWith(t, {
    'b.test/hosts.toml': '[host."https://127.0.0.1:1"]\n  client = [["c.pem", "k.pem"]]\n',
    'b.test/c.pem': 'x\n',
    'b.test/k.pem': 'y\n',
  });
  t.throws(() => new HostsDir(pair), {
    code: 'setup',
    message: /key client: .*c\.pem and .*k\.pem: not a certificate and private key/,
  });
});

t.test('a client certificate pair and a CA that load are kept for the host', async (t) => {
  const pki = await sharedPki();
  const client = await pki.issue('mirror-client');
  const dir = dirWith(t, {
    'c.test/hosts.toml': `[host."https://127.0.0.1:1"]\n  ca = "${pki.caFile}"\n  client = [["${client.certFile}", "${client.keyFile}"]]\n`,
  });
  const [mirror] = new HostsDir(dir).endpointsFor('c.test');
  t.equal(mirror?.caPems.length, 1);
  t.same(mirror?.clients, [{ cert: client.certPem, key: client.keyPem }]);
});
