// startup: what a person waits for when they run the installed command, one process at a time.
// Each command is timed as a whole process (spawn to exit, wall clock), several runs interleaved
// round-robin so a burst of load hits every command alike, and compared by its median with
// baselines measured in the same run: `node -e 0` for start-up alone, `skopeo inspect` for one
// image checked against a registry (docker-registry with TLS and token auth on loopback). skopeo
// and pullguard get the same image, credentials and CA, both start without a token, and both make
// three round trips (skopeo: GET /v2/, a token, GET the manifest, on three TLS connections;
// pullguard: HEAD the manifest, a token, HEAD it again, on two).
// Two more rows explain the figure: the floor (startup-floor.mjs, the same three round trips with
// node:https and nothing else: what any Node.js program pays) and a traced pullguard run
// (startup-trace.mjs) that splits its time into phases.
// The command is the package's bin (bin/pullguard.js over the bundle `npm run build` makes), as
// `npm install -g` and the container image run it; the first run of each fills Node's compile
// cache and is not counted.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { startRegistry } from '../test/helpers/registry.ts';
import { figure, noClusterEnv, percentile, QUICK, repoRoot, type Recorder, round, since, versions } from './lib.ts';
import { checkFlags, skopeoInspectArgs, writeRegistryFiles } from './registry-files.ts';

interface Command {
  name: string;
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

function timed(c: Command): Promise<{ ms: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile(c.cmd, c.args, { env: c.env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const ms = since(t0);
      // --help exits 0, a check of an image that exists exits 0: anything else is a broken run
      if (err)
        reject(new Error(`${c.name} failed: ${err.message} ${String(stderr).trim()} ${String(stdout).slice(0, 300)}`));
      else resolve({ ms, stderr: String(stderr) });
    });
  });
}

/** The phases of one traced check, in ms, from startup-trace.mjs's marks and the process's wall time. */
interface Marks {
  main: number;
  firstRequest: number;
  lastResponse: number;
  output: number;
  exit: number;
}
const PHASES = {
  'node start': (m: Marks) => m.main,
  'loading and set-up (bin, bundle, configuration, credentials, engine, TLS context)': (m: Marks) =>
    m.firstRequest - m.main,
  'registry (3 round trips, 2 TLS handshakes)': (m: Marks) => m.lastResponse - m.firstRequest,
  'verdict and output': (m: Marks) => m.output - m.lastResponse,
  'to the exit event': (m: Marks) => m.exit - m.output,
} as const;

export async function startup(rec: Recorder): Promise<void> {
  const runs = QUICK ? 3 : 15;
  const haveSkopeo = !versions().skopeo.startsWith('unavailable');
  if (!haveSkopeo) throw new Error('skopeo is not installed (apt package skopeo, .ci/apt-packages.txt)');

  // The bundle, fresh from the sources.
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [join(repoRoot, 'scripts', 'build.ts')], (err, _o, stderr) =>
      err ? reject(new Error(`npm run build failed: ${stderr}`)) : resolve(),
    ),
  );

  const user = { username: 'bench', password: randomBytes(12).toString('hex') };
  const reg = await startRegistry({ auth: 'token', tls: true, users: [user] });
  const dir = mkdtempSync(join(tmpdir(), 'pullguard-bench-startup-'));
  try {
    await reg.pushImage('private/app', '1.0', { seed: 'startup' });
    const image = `${reg.host}/private/app:1.0`;
    const files = writeRegistryFiles(dir, reg, user);

    const node = process.execPath;
    const bin = join(repoRoot, 'bin', 'pullguard.js');
    // the user's environment: no cluster, no npm variables, the compile cache in a folder of this run
    const env = { ...noClusterEnv(), NODE_COMPILE_CACHE: join(dir, 'compile-cache') };
    const commands: Command[] = [
      { name: 'node -e 0', cmd: node, args: ['-e', '0'], env },
      { name: 'pullguard --help', cmd: node, args: [bin, '--help'], env },
      {
        name: 'pullguard check IMAGE --offline',
        cmd: node,
        args: [bin, 'check', 'nginx:1.25', '--offline', '--allow-unverified'],
        env,
      },
      {
        name: 'skopeo inspect',
        cmd: 'skopeo',
        args: skopeoInspectArgs(files, user, image),
        env: { ...env, REGISTRY_AUTH_FILE: join(dir, 'no-auth.json') },
      },
      {
        name: 'pullguard check IMAGE',
        cmd: node,
        args: [bin, 'check', ...checkFlags(files), image],
        env,
      },
      {
        name: 'node floor',
        cmd: node,
        args: [join(repoRoot, 'bench', 'startup-floor.mjs'), image, files.caPem, files.dockerConfig],
        env,
      },
      {
        name: 'pullguard check IMAGE, traced',
        cmd: node,
        args: [
          '--import',
          pathToFileURL(join(repoRoot, 'bench', 'startup-trace.mjs')).href,
          bin,
          'check',
          ...checkFlags(files),
          image,
        ],
        env,
      },
    ];
    rec.settings = {
      runs,
      order: 'round-robin over the commands; one warm-up round first (fills the compile cache), not counted',
      statistic: 'median wall time per process (spawn to exit)',
      commands: Object.fromEntries(
        commands.map((c) => [c.name, [c.cmd === node ? 'node' : c.cmd, ...c.args].join(' ')]),
      ),
      registry: 'docker-registry on loopback, TLS (test CA), token auth (in-process token server), private repository',
    };

    const times = new Map<string, number[]>(commands.map((c) => [c.name, []]));
    const traces: (Marks & { wall: number })[] = [];
    for (let round = 0; round <= runs; round++) {
      for (const c of commands) {
        const { ms, stderr } = await timed(c);
        if (round === 0) continue;
        times.get(c.name)!.push(ms);
        const marks = /^PULLGUARD_BENCH_MARKS (.*)$/m.exec(stderr)?.[1];
        if (marks) traces.push({ ...(JSON.parse(marks) as Marks), wall: ms });
      }
    }
    const median = (name: string) => percentile(times.get(name)!, 50);
    const b = (name: string) => ({ name: `${name} p50`, value: median(name), unit: 'ms' });
    const within = (limit: number) => ({
      text: `ratio ≤ ${limit}`,
      met: (f: { ratio: number | null }) => (f.ratio ?? Infinity) <= limit,
    });
    rec.add(
      figure('pullguard --help p50', median('pullguard --help'), 'ms', b('node -e 0'), within(3)),
      figure(
        'pullguard check IMAGE --offline p50',
        median('pullguard check IMAGE --offline'),
        'ms',
        b('node -e 0'),
        within(4),
      ),
      figure(
        'pullguard check IMAGE (token registry) p50',
        median('pullguard check IMAGE'),
        'ms',
        b('skopeo inspect'),
        within(1),
      ),
      figure('node floor p50', median('node floor'), 'ms', b('skopeo inspect')),
      figure('pullguard check IMAGE p50, against the floor', median('pullguard check IMAGE'), 'ms', b('node floor')),
    );
    // Medians of each phase over the traced runs; the rest of the wall time is spawning and tearing
    // the process down (node -e 0 has it too).
    const phases = Object.fromEntries(
      Object.entries(PHASES).map(([name, of]) => [name, round(percentile(traces.map(of), 50), 1)]),
    );
    phases['spawn and teardown'] = round(
      percentile(
        traces.map((m) => m.wall - m.exit),
        50,
      ),
      1,
    );
    const traced = median('pullguard check IMAGE, traced');
    rec.note(
      `pullguard check IMAGE, traced (p50 ${traced.toFixed(1)} ms; node -e 0 ${median('node -e 0').toFixed(1)}, skopeo ${median('skopeo inspect').toFixed(1)}, floor ${median('node floor').toFixed(1)}): ${Object.entries(
        phases,
      )
        .map(([name, ms]) => `${name} ${ms} ms`)
        .join('; ')}`,
    );
    rec.details = { ms: Object.fromEntries(times), phasesMs: phases, traces };
  } finally {
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
