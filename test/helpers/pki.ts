// Throwaway PKI for tests, made with the openssl CLI (node:crypto cannot issue certificates).
// Everything lives in one temp dir; nothing touches the system trust store.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

export interface CertFiles {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  /** SANs: IPs and DNS names. Default 127.0.0.1, ::1, localhost plus the PKI's extra names. */
  names?: string[];
  /** Which CA signs: the trusted test CA (default) or the unrelated "other" CA. */
  ca?: 'test' | 'other';
  /** Issue an already expired certificate (valid January 2020 only). */
  expired?: boolean;
  /** A self-signed server certificate (signed by its own key, no CA): `ca` is ignored. */
  selfSigned?: boolean;
  /** 'ec' (P-256, fast) for TLS servers; 'rsa' when RS256 signing is needed. */
  keyType?: 'ec' | 'rsa';
  /** serverAuth (default) or a signing-only leaf (token signer). */
  usage?: 'server' | 'signing';
  commonName?: string;
}

export interface TestPki {
  dir: string;
  /** The test CA that clients are told to trust. */
  caFile: string;
  caPem: string;
  /** Server cert for 127.0.0.1, ::1, localhost (+ extra names), signed by the test CA. */
  server: CertFiles;
  /** A second CA nobody trusts, and a server cert it signed: "wrong certificate" tests. */
  otherCaFile: string;
  otherCaPem: string;
  wrongServer: CertFiles;
  /** Signed by the test CA for the right names, but expired in 2020. */
  expiredServer: CertFiles;
  /** RSA leaf signed by the test CA, used to sign registry tokens (RS256, x5c chain). */
  tokenSigner: CertFiles & { certDerBase64: string };
  issue(name: string, opts?: IssueOptions): Promise<CertFiles>;
  cleanup(): void;
}

function run(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd }, (err, stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

// A minimal config so the host's openssl.cnf cannot add or alter extensions.
const REQ_CNF = '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = pullguard\n';

const CA_CNF = `[ca]
default_ca = tca
[tca]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = supplied
`;

function keyArgs(type: 'ec' | 'rsa'): string[] {
  return type === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048'];
}

function sanList(names: string[]): string {
  return names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
}

function certDerBase64(pem: string): string {
  return new X509Certificate(pem).raw.toString('base64');
}

async function makeCa(dir: string, base: string, cn: string): Promise<void> {
  await run(
    [
      'req',
      '-x509',
      '-config',
      'req.cnf',
      ...keyArgs('ec'),
      '-nodes',
      '-keyout',
      `${base}.key`,
      '-out',
      `${base}.crt`,
      '-days',
      '3650',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
}

/** Create a fresh test PKI (two CAs and the usual leaves) in a new temp dir. */
export async function createPki(opts: { extraNames?: string[] } = {}): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-pki-'));
  writeFileSync(join(dir, 'req.cnf'), REQ_CNF);
  writeFileSync(join(dir, 'ca.cnf'), CA_CNF);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), `${randomBytes(8).toString('hex')}\n`);
  mkdirSync(join(dir, 'newcerts'));
  const defaultNames = ['127.0.0.1', '::1', 'localhost', ...(opts.extraNames ?? [])];

  await Promise.all([makeCa(dir, 'ca', 'pullguard test CA'), makeCa(dir, 'other-ca', 'pullguard untrusted CA')]);

  // `openssl ca` updates serial/index files, so expired issues are serialised through this chain.
  let caQueue: Promise<unknown> = Promise.resolve();

  async function issue(name: string, o: IssueOptions = {}): Promise<CertFiles> {
    const names = o.names ?? defaultNames;
    const caBase = o.ca === 'other' ? 'other-ca' : 'ca';
    const keyFile = join(dir, `${name}.key`);
    const certFile = join(dir, `${name}.crt`);
    const ext =
      o.usage === 'signing'
        ? 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n'
        : `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n` +
          `extendedKeyUsage=serverAuth\nsubjectAltName=${sanList(names)}\n`;
    writeFileSync(join(dir, `${name}.ext`), ext);
    // a new key and its request: self-signed (-x509) at once, or a CSR for the CA below
    const request = ['-config', 'req.cnf', ...keyArgs(o.keyType ?? 'ec'), '-nodes', '-keyout', `${name}.key`];
    const subject = ['-subj', `/CN=${o.commonName ?? names[0] ?? name}`];
    if (o.selfSigned) {
      await run(
        [
          'req',
          '-x509',
          ...request,
          '-out',
          `${name}.crt`,
          '-days',
          '825',
          ...subject,
          ...ext
            .trim()
            .split('\n')
            .flatMap((line) => ['-addext', line]),
        ],
        dir,
      );
      return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
    }
    await run(['req', '-new', ...request, '-out', `${name}.csr`, ...subject], dir);
    if (o.expired) {
      // x509 -req cannot back-date notBefore; `openssl ca` can.
      const step = caQueue.then(() =>
        run(
          [
            'ca',
            '-config',
            'ca.cnf',
            '-batch',
            '-notext',
            '-cert',
            `${caBase}.crt`,
            '-keyfile',
            `${caBase}.key`,
            '-in',
            `${name}.csr`,
            '-out',
            `${name}.crt`,
            '-startdate',
            '20200101000000Z',
            '-enddate',
            '20200201000000Z',
            '-extfile',
            `${name}.ext`,
          ],
          dir,
        ),
      );
      caQueue = step.catch(() => undefined);
      await step;
    } else {
      await run(
        [
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          `${caBase}.crt`,
          '-CAkey',
          `${caBase}.key`,
          '-set_serial',
          `0x${randomBytes(8).toString('hex')}`,
          '-days',
          '825',
          '-sha256',
          '-extfile',
          `${name}.ext`,
          '-out',
          `${name}.crt`,
        ],
        dir,
      );
    }
    return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
  }

  const [server, wrongServer, expiredServer, signer] = await Promise.all([
    issue('server'),
    issue('wrong-server', { ca: 'other' }),
    issue('expired-server', { expired: true }),
    issue('token-signer', { keyType: 'rsa', usage: 'signing', commonName: 'pullguard token signer' }),
  ]);

  const caFile = join(dir, 'ca.crt');
  const otherCaFile = join(dir, 'other-ca.crt');
  return {
    dir,
    caFile,
    caPem: readFileSync(caFile, 'utf8'),
    server,
    otherCaFile,
    otherCaPem: readFileSync(otherCaFile, 'utf8'),
    wrongServer,
    expiredServer,
    tokenSigner: { ...signer, certDerBase64: certDerBase64(signer.certPem) },
    issue,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

let shared: Promise<TestPki> | undefined;

/** One PKI per test process, shared by every registry it starts; removed at exit. */
export function sharedPki(): Promise<TestPki> {
  if (!shared) {
    shared = createPki();
    shared.then(
      (p) => process.once('exit', () => p.cleanup()),
      () => undefined,
    );
  }
  return shared;
}
