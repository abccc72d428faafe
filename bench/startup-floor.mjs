// The startup benchmark's floor: the least a Node.js process does for what `pullguard check IMAGE`
// asks of the token registry — HEAD the manifest (401 and a challenge), a token from the realm with
// the docker config's Basic credentials, HEAD the manifest with it — with node:https and nothing
// else (no checks, no messages). Plain JavaScript, so that nothing is compiled or stripped first.
// node bench/startup-floor.mjs IMAGE CA_FILE DOCKER_CONFIG
import { readFileSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';

const [image, caFile, dockerConfig] = process.argv.slice(2);
const slash = image.indexOf('/');
const host = image.slice(0, slash);
const [repo, tag] = image.slice(slash + 1).split(':');
const auth = JSON.parse(readFileSync(dockerConfig, 'utf8')).auths[host].auth;
// the CA added to Node's default trust, as pullguard does
const secureContext = tls.createSecureContext();
secureContext.context.addCACert(readFileSync(caFile, 'utf8'));
const agent = new https.Agent({ secureContext, keepAlive: true });

function request(url, method, headers) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const manifest = `https://${host}/v2/${repo}/manifests/${tag}`;
const accept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
const challenge = await request(manifest, 'HEAD', { accept });
const params = Object.fromEntries(
  [...String(challenge.headers['www-authenticate']).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
);
const realm = new URL(params.realm);
realm.searchParams.set('service', params.service);
realm.searchParams.set('scope', params.scope);
const answer = await request(realm, 'GET', { authorization: `Basic ${auth}` });
const { token, access_token } = JSON.parse(answer.body.toString());
const found = await request(manifest, 'HEAD', { accept, authorization: `Bearer ${token ?? access_token}` });
agent.destroy();
if (found.status !== 200) throw new Error(`HEAD ${manifest}: ${found.status}`);
process.stdout.write(`${found.headers['docker-content-digest']}\n`);
