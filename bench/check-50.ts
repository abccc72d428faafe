// check-50: `pullguard check` of a manifest holding 50 copies of one new image (10 Deployments of
// 5 containers): registry requests (goal: two manifest requests, the tag and its digest, for all 50) and the time of a warm check against
// a cold one. The CLI makes a new engine per run, so "warm" is the same engine checking again.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { runCheck } from '../src/cli/check.ts';
import type { CliIO } from '../src/cli/flags.ts';
import { validateConfig } from '../src/config/schema.ts';
import type { ImageUse } from '../src/findings.ts';
import { keyringFromFiles } from '../src/credentials/files.ts';
import { Keyring } from '../src/credentials/keyring.ts';
import { Preflight } from '../src/preflight/engine.ts';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.ts';
import { figure, noClusterEnv, percentile, QUICK, repoRoot, round, runProcess, since, type Recorder } from './lib.ts';
import { checkFlags, writeRegistryFiles } from './registry-files.ts';
import { registryClientFor } from '../src/app/build.ts';

function manifest(image: string): string {
  const docs: string[] = [];
  for (let d = 0; d < 10; d++) {
    const containers = Array.from({ length: 5 }, (_, c) => `        - name: c${c}\n          image: ${image}`).join(
      '\n',
    );
    docs.push(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-${d}
  namespace: bench
spec:
  selector:
    matchLabels: { app: app-${d} }
  template:
    metadata:
      labels: { app: app-${d} }
    spec:
      containers:
${containers}
`);
  }
  return docs.join('---\n');
}

/** The JSON on stdout is read; notices on stderr (no cluster, say) are not. */
function io(): CliIO & { out: string[] } {
  const out: string[] = [];
  return {
    out,
    stdout: (s) => void out.push(s),
    stderr: () => undefined,
    stdin: () => '',
    env: {},
    isTTY: false,
  };
}

interface Counted {
  ms: number;
  manifestRequests: number;
  registryRequests: number;
  tokenRequests: number;
  exit?: number;
  findings?: number;
}

function counted(reg: TestRegistry, ms: number, extra: Partial<Counted> = {}): Counted {
  return {
    ms,
    manifestRequests: reg.proxy!.count({ path: /\/manifests\// }),
    registryRequests: reg.proxy!.count(),
    tokenRequests: reg.tokenServer?.counts.total ?? 0,
    ...extra,
  };
}

async function cliRun(reg: TestRegistry, argv: string[]): Promise<Counted> {
  reg.resetCounters();
  const cli = io();
  const t0 = performance.now();
  const exit = await runCheck(argv, cli);
  const ms = since(t0);
  const json = JSON.parse(cli.out.join('')) as { findings: { verdict: string }[] };
  return counted(reg, ms, { exit, findings: json.findings.filter((f) => f.verdict === 'ok').length });
}

/** The 50 uses the manifest holds, as the CLI finds them (one object per Deployment). */
function usesOf(image: string): ImageUse[] {
  return Array.from({ length: 50 }, (_, i) => ({
    object: { kind: 'Deployment', namespace: 'bench', name: `app-${Math.floor(i / 5)}` },
    container: `c${i % 5}`,
    field: `spec.template.spec.containers[${i % 5}].image`,
    image,
  }));
}

/** Engine level: the same engine cold, then warm; `repeat` warm checks for a steadier figure. */
async function engineRuns(
  reg: TestRegistry,
  image: string,
  config: ReturnType<typeof validateConfig>,
  keyring: Keyring,
  caPems: string[],
  repeat: number,
): Promise<{ cold: Counted; warm: Counted; warmTimes: number[] }> {
  const uses = usesOf(image);
  const engine = new Preflight(config, registryClientFor(config, caPems));
  const ctx = { credentials: { keyrings: [keyring] } };
  try {
    reg.resetCounters();
    let t0 = performance.now();
    await engine.check(uses, ctx);
    const cold = counted(reg, since(t0));
    reg.resetCounters();
    const warmTimes: number[] = [];
    for (let i = 0; i < repeat; i++) {
      t0 = performance.now();
      await engine.check(uses, ctx);
      warmTimes.push(since(t0));
    }
    return { cold, warm: counted(reg, percentile(warmTimes, 50)), warmTimes };
  } finally {
    await engine.close();
  }
}

export async function check50(rec: Recorder): Promise<void> {
  const repeat = QUICK ? 20 : 200;
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-bench-check50-'));
  const anon = await startRegistry({ auth: 'none', proxy: true });
  const user = { username: 'bench', password: randomBytes(12).toString('hex') };
  const tok = await startRegistry({ auth: 'token', tls: true, proxy: true, users: [user] });
  rec.settings = {
    manifest: '10 Deployments × 5 containers, all the same image (50 copies), multi-document YAML',
    anonymous: 'docker-registry on loopback, anonymous HTTP (--insecure-registry), behind the counting proxy',
    token: 'docker-registry on loopback, TLS + token auth, private repository, --docker-config and --registry-ca',
    warmRepeats: repeat,
  };
  try {
    // Anonymous registry: each CLI run is a new engine, so each sees a new image.
    const files: Record<string, string> = {};
    for (const [name, reg, tag] of [
      ['anon', anon, 'v1'],
      ['anon2', anon, 'v2'],
      ['anon3', anon, 'v3'],
      ['token', tok, 'v1'],
      ['token2', tok, 'v2'],
    ] as const) {
      await reg.pushImage('bench/check50', tag);
      files[name] = join(dir, `${name}.yaml`);
      writeFileSync(files[name]!, manifest(`${reg.host}/bench/check50:${tag}`));
    }
    const anonArgs = (file: string) => ['-f', file, '--insecure-registry', anon.host, '-o', 'json'];
    const first = await cliRun(anon, anonArgs(files.anon!));
    const again = await cliRun(anon, anonArgs(files.anon!));

    // The real CLI process, as a CI job runs it (a new image, so the registry is asked).
    anon.resetCounters();
    const t0 = performance.now();
    const proc = await runProcess(
      process.execPath,
      [join(repoRoot, 'src/cli/main.ts'), 'check', ...anonArgs(files.anon2!)],
      noClusterEnv(),
      60_000,
    );
    const processRun = counted(anon, since(t0), { exit: proc.code });

    const anonEngine = await engineRuns(
      anon,
      `${anon.host}/bench/check50:v3`,
      validateConfig({ registry: { insecure: [anon.host] } }),
      new Keyring(),
      [],
      repeat,
    );

    // Token registry: the first request meets the challenge; then the token, then the HEAD again.
    const tokFiles = writeRegistryFiles(dir, tok, user);
    const tokArgs = (file: string) => ['-f', file, ...checkFlags(tokFiles)];
    const tokenCli = await cliRun(tok, tokArgs(files.token!));
    const tokEngine = await engineRuns(
      tok,
      `${tok.host}/bench/check50:v2`,
      validateConfig({}),
      keyringFromFiles([tokFiles.dockerConfig]),
      [tok.caPem!],
      repeat,
    );

    const b = (name: string, value: number, unit: string) => ({ name, value, unit });
    rec.add(
      figure('anonymous: manifest requests, 1 check of 50', first.manifestRequests, '', b('image copies', 50, ''), {
        text: '2 (the tag, then its digest)',
        met: (f) => f.value === 2,
      }),
      figure('anonymous: all registry requests', first.registryRequests, '', b('image copies', 50, '')),
      figure('anonymous: findings ok (exit 0)', first.findings ?? null, '', b('image copies', 50, ''), {
        text: 'all, exit 0',
        met: (f) => f.value === 50 && first.exit === 0,
      }),
      figure('runCheck, first run', first.ms, 'ms', b('runCheck, second run (new engine)', again.ms, 'ms')),
      figure(
        'engine: warm check of 50 (p50)',
        anonEngine.warm.ms,
        'ms',
        b('same engine, cold', anonEngine.cold.ms, 'ms'),
      ),
      figure(
        'engine: warm registry requests',
        anonEngine.warm.registryRequests,
        '',
        b('cold', anonEngine.cold.registryRequests, ''),
        { text: '0 warm', met: (f) => f.value === 0 },
      ),
      figure(
        'CLI process (node src/cli/main.ts check)',
        processRun.ms,
        'ms',
        b('runCheck in-process, first run', first.ms, 'ms'),
      ),
      figure('CLI process: manifest requests', processRun.manifestRequests, '', b('image copies', 50, ''), {
        text: '2 (the tag, then its digest)',
        met: (f) => f.value === 2,
      }),
      figure('token: manifest requests, 1 check of 50', tokenCli.manifestRequests, '', b('image copies', 50, '')),
      figure(
        'token: all requests (registry + token)',
        tokenCli.registryRequests + tokenCli.tokenRequests,
        '',
        b('image copies', 50, ''),
        { text: '≤ 3', met: (f) => (f.value ?? Infinity) <= 3 },
      ),
      figure(
        'token: engine warm check of 50 (p50)',
        tokEngine.warm.ms,
        'ms',
        b('same engine, cold', tokEngine.cold.ms, 'ms'),
      ),
      figure(
        'token: engine warm requests',
        tokEngine.warm.registryRequests + tokEngine.warm.tokenRequests,
        '',
        b('cold', tokEngine.cold.registryRequests + tokEngine.cold.tokenRequests, ''),
        { text: '0 warm', met: (f) => f.value === 0 },
      ),
    );
    const r = (c: Counted) => ({ ...c, ms: round(c.ms, 2) });
    rec.details = {
      anonymous: {
        first: r(first),
        again: r(again),
        process: r(processRun),
        engineCold: r(anonEngine.cold),
        engineWarmP50: r(anonEngine.warm),
        engineWarmP99Ms: round(percentile(anonEngine.warmTimes, 99), 3),
      },
      token: { cli: r(tokenCli), engineCold: r(tokEngine.cold), engineWarmP50: r(tokEngine.warm) },
    };
    rec.note(
      'runCheck builds a new engine per run, as every `pullguard check` process does: its second run is cold again; "warm" is the same engine checking the same 50 uses again',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await anon.stop();
    await tok.stop();
  }
}
