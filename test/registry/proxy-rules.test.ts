// HTTP_PROXY/HTTPS_PROXY/NO_PROXY read as Go's httpproxy does, against upstream's own test tables
// (test/fixtures/httpproxy.json, copied from golang.org/x/net/http/httpproxy/proxy_test.go).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProxyRules, proxySettings, proxySettingsFromEnv } from '../../src/registry/proxy.ts';
import { repoRoot } from '../helpers/fixtures.ts';

interface Fixture {
  proxyForURL: { httpProxy: string; httpsProxy: string; noProxy: string; req: string; want: string | null }[];
  useProxy: { noProxy: string; port: string; cases: { host: string; useProxy: boolean }[] };
  invalidNoProxy: { noProxy: string; host: string; port: string; useProxy: boolean };
  allNoProxy: { noProxy: string; useProxy: boolean };
}
const fixture = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/httpproxy.json'), 'utf8')) as Fixture;

/** The request URL's scheme and host[:port], without WHATWG URL (it rejects upstream's zone case). */
function splitReq(req: string): { scheme: string; host: string } {
  const m = /^([a-z]+):\/\/([^/]*)/.exec(req)!;
  const host = m[2]!.replace(/%25/g, '%');
  // Hostnames are converted to ASCII by the URL parser of either language.
  const ascii = host.startsWith('[') ? host : new URL(`http://${host}`).host;
  return { scheme: m[1]!, host: ascii };
}

t.test('ProxyForURL: every upstream row', async (t) => {
  t.ok(fixture.proxyForURL.length >= 20);
  for (const row of fixture.proxyForURL) {
    const rules = new ProxyRules({ httpProxy: row.httpProxy, httpsProxy: row.httpsProxy, noProxy: row.noProxy });
    const { scheme, host } = splitReq(row.req);
    const got = rules.proxyFor(scheme, host);
    t.equal(got ? `${got.protocol}//${got.host}` : null, row.want, JSON.stringify(row));
  }
});

t.test('useProxy: every upstream host, with their NO_PROXY, with "*" and with a malformed entry', async (t) => {
  const rules = new ProxyRules({ httpProxy: 'proxy', httpsProxy: '', noProxy: fixture.useProxy.noProxy });
  const all = new ProxyRules({ httpProxy: 'proxy', httpsProxy: '', noProxy: fixture.allNoProxy.noProxy });
  for (const c of fixture.useProxy.cases) {
    const host = `${c.host}:${fixture.useProxy.port}`;
    t.equal(Boolean(rules.proxyFor('http', host)), c.useProxy, c.host);
    t.equal(Boolean(all.proxyFor('http', host)), fixture.allNoProxy.useProxy, `${c.host} with NO_PROXY=*`);
  }
  const bad = new ProxyRules({ httpProxy: 'proxy', httpsProxy: '', noProxy: fixture.invalidNoProxy.noProxy });
  t.equal(
    Boolean(bad.proxyFor('http', `${fixture.invalidNoProxy.host}:${fixture.invalidNoProxy.port}`)),
    fixture.invalidNoProxy.useProxy,
  );
});

t.test('the environment in both cases, upper case first; the configuration wins over it', async (t) => {
  t.same(proxySettingsFromEnv({ https_proxy: 'http://a:1', HTTPS_PROXY: 'http://b:2', no_proxy: 'x' }), {
    httpProxy: '',
    httpsProxy: 'http://b:2',
    noProxy: 'x',
  });
  t.same(proxySettingsFromEnv({ http_proxy: 'http://a:1', no_proxy: '.corp' }), {
    httpProxy: 'http://a:1',
    httpsProxy: '',
    noProxy: '.corp',
  });
  const env = { HTTPS_PROXY: 'http://env:1', NO_PROXY: 'internal' };
  t.same(proxySettings({ url: 'http://cfg:3128', noProxy: '.svc' }, env), {
    httpProxy: 'http://cfg:3128',
    httpsProxy: 'http://cfg:3128',
    noProxy: '.svc',
  });
  t.same(proxySettings({ url: '' }, env), { httpProxy: '', httpsProxy: '', noProxy: '' }, 'url "" turns proxies off');
  t.same(proxySettings(undefined, env), { httpProxy: '', httpsProxy: 'http://env:1', noProxy: 'internal' });
});

t.test('registry hosts: ports, registries on loopback never proxied', async (t) => {
  const rules = new ProxyRules({ httpProxy: 'http://p:1', httpsProxy: 'http://p:1', noProxy: 'mirror.corp:5000' });
  t.ok(rules.proxyFor('https', 'ghcr.io'));
  t.notOk(rules.proxyFor('https', 'mirror.corp:5000'));
  t.ok(rules.proxyFor('https', 'mirror.corp:5001'));
  t.notOk(rules.proxyFor('https', '127.0.0.1:5000'));
  t.notOk(rules.proxyFor('https', '[::1]:5000'));
  t.notOk(rules.proxyFor('https', 'localhost:5000'));
});

t.test('a proxy pullguard cannot speak to is bad usage, named without its credentials', async (t) => {
  const { runCheck } = await import('../../src/cli/check.ts');
  const { validateConfig } = await import('../../src/config/schema.ts');
  let stderr = '';
  const code = await runCheck(['nginx:1.25'], {
    stdout: () => undefined,
    stderr: (s) => (stderr += s),
    stdin: () => '',
    env: { HTTPS_PROXY: 'socks5://user:SockSecret@127.0.0.1:1080' },
    isTTY: false,
  });
  t.equal(code, 2);
  t.match(stderr, 'proxy socks5://127.0.0.1:1080: only http:// and https:// proxies are supported');
  t.notMatch(stderr, 'SockSecret');
  t.throws(() => validateConfig({ registry: { proxy: { url: 'socks5://p:1' } } }), /registry\.proxy\.url/);
  t.equal(validateConfig({ registry: { proxy: { url: '' } } }).registry.proxy?.url, '');
});
