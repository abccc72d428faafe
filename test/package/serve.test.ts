// `serve` from the bundle (what the npm package installs and the container image runs), on its
// defaults: no certificate, so a self-signed one is made. Once as the package's bin runs it, once as
// the image's default command line (the Dockerfile's ENTRYPOINT and CMD, read from the Dockerfile)
// from a folder laid out as the image's runtime stage lays it out, without Docker.
import t from 'tap';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Agent, request } from 'undici';
import { buildCli } from '../../scripts/build.ts';
import { repoRoot } from '../helpers/fixtures.ts';
import { scratch } from '../manifests/lib.ts';

type Obj = Record<string, any>;
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const dir = scratch(t, 'pullguard-bundle-serve-');
// the package's layout: package.json, bin/ and the bundle in dist/
const pkgDir = join(dir, 'package');
mkdirSync(pkgDir);
cpSync(join(repoRoot, 'package.json'), join(pkgDir, 'package.json'));
cpSync(join(repoRoot, 'bin'), join(pkgDir, 'bin'), { recursive: true });
await buildCli({ outdir: join(pkgDir, 'dist') });

/** The runtime stage (the last FROM) of the Dockerfile: its instructions, continuation lines joined. */
function runtimeStage(): { op: string; args: string }[] {
  const text = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const instructions = text
    .split('\n')
    .filter((l) => !/^\s*(#|$)/.test(l))
    .map((l) => /^\s*([A-Za-z]+)\s+(.*)$/.exec(l)!)
    .map((m) => ({ op: m[1]!.toUpperCase(), args: m[2]!.trim() }));
  return instructions.slice(instructions.findLastIndex((i) => i.op === 'FROM') + 1);
}

/**
 * The image's /app as its COPY lines make it: files from the repository, `--from=` the build stage's
 * /app/dist from the bundle built above. Returns the folder, the command line and ENV.
 */
function layOutImage(): { cwd: string; argv: string[]; env: Record<string, string> } {
  const stage = runtimeStage();
  const last = (op: string) => stage.findLast((i) => i.op === op)?.args;
  const workdir = last('WORKDIR') ?? '/';
  const root = join(dir, 'image');
  const inImage = (p: string) => join(root, p.startsWith('/') ? p : join(workdir, p));
  mkdirSync(inImage('.'), { recursive: true });
  for (const copy of stage.filter((i) => i.op === 'COPY')) {
    const from = /^--from=(\S+)\s+/.exec(copy.args);
    const parts = copy.args.replace(/^(--\S+\s+)+/, '').split(/\s+/);
    const to = parts.at(-1)!;
    for (const src of parts.slice(0, -1)) {
      // the build stage's WORKDIR is /app and its `npm run build` writes dist/ there
      const source = from ? join(pkgDir, src.replace(/^\/app\//, '')) : join(repoRoot, src);
      // Docker: a file copied to a folder (DEST/) keeps its name; a folder's contents go into DEST
      const into = /\/$|^\.$/.test(to) && statSync(source).isFile();
      cpSync(source, into ? join(inImage(to), basename(src)) : inImage(to), { recursive: true });
    }
  }
  const env: Record<string, string> = {};
  for (const e of stage.filter((i) => i.op === 'ENV')) {
    for (const m of e.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  const argv = [...(JSON.parse(last('ENTRYPOINT')!) as string[]), ...(JSON.parse(last('CMD') ?? '[]') as string[])];
  return { cwd: inImage('.'), argv, env };
}

/** Starts a command, waits for "listening", asks /healthz over HTTPS, then stops it with SIGTERM. */
async function healthz(t: Tap, cmd: string, args: string[], cwd: string, env: Record<string, string>) {
  const child = spawn(cmd, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines = () =>
    out
      .split('\n')
      .slice(0, -1)
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Obj);
  const listening = await new Promise<Obj>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const line = lines().find((l) => l.msg === 'pullguard webhook listening');
      if (line) resolve(line);
    });
    exit.then((code) => reject(new Error(`exited (${code}) first: ${err}`)));
  });
  t.match(listening.address, /^https:\/\/127\.0\.0\.1:\d+$/, `listening on ${listening.address}`);
  t.ok(
    lines().some((l) => /no certificate configured/.test(l.msg)),
    'with a self-signed certificate, and a warning that says so',
  );
  // the certificate is self-signed: this client trusts it for the one request
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  t.teardown(() => agent.close());
  const res = await request(`${listening.address}/healthz`, { dispatcher: agent });
  t.equal(res.statusCode, 200, 'GET /healthz: 200');
  await res.body.dump();
  child.kill('SIGTERM');
  t.equal(await exit, 0, 'exit 0 after SIGTERM');
  t.equal(err, '', 'nothing on stderr');
}

t.test('the built bin/pullguard.js serve, without a certificate, answers /healthz', async (t) => {
  await healthz(
    t,
    process.execPath,
    [join(pkgDir, 'bin', 'pullguard.js'), 'serve', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0'],
    dir,
    {},
  );
});

t.test("the image's default command line (ENTRYPOINT and CMD) answers /healthz", async (t) => {
  const { cwd, argv, env } = layOutImage();
  t.match(argv[0], /\/node$/, `the entrypoint runs node: ${argv.join(' ')}`);
  t.equal(argv.at(-1), 'serve', 'CMD is serve');
  // This Node.js stands for the image's /nodejs/bin/node (the same version: test/manifests/dockerfile.test.ts).
  // Address and ports as `docker run -e` would set them: loopback, free ports.
  await healthz(t, process.execPath, argv.slice(1), cwd, {
    ...env,
    PULLGUARD_SERVER_HOST: '127.0.0.1',
    PULLGUARD_SERVER_PORT: '0',
    PULLGUARD_SERVER_METRICS_PORT: '0',
  });
});
