// The Dockerfile, checked statically (there is no container engine here): its stages, the user,
// that what it copies exists and reaches the build context, and that it starts what package.json
// defines, the way the Deployment expects.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { imageNodeFlags } from '../../bench/webhook.ts';
import { baseObjects, only, repoRoot, type Obj } from './lib.ts';

interface Instruction {
  op: string;
  args: string;
  flags: Record<string, string>;
  line: number;
}
interface Stage {
  base: string;
  flags?: Record<string, string>;
  name?: string;
  index: number;
  body: Instruction[];
}

function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, ' ');
      i++;
      if (!/^\s*#/.test(lines[i]!)) line += lines[i]!; // comment lines inside a continuation are dropped
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile line ${start + 1}: cannot parse "${line}"`);
    let rest = m[2]!.trim();
    const flags: Record<string, string> = {};
    for (let f; (f = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)); rest = rest.slice(f[0].length))
      flags[f[1]!] = f[2] ?? 'true';
    instructions.push({ op: m[1]!.toUpperCase(), args: rest, flags, line: start + 1 });
  }
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const [base, as, name] = ins.args.split(/\s+/);
      stages.push({
        base: base!,
        name: as?.toUpperCase() === 'AS' ? name : undefined,
        flags: ins.flags,
        index: stages.length,
        body: [],
      });
    } else if (!stages.length) {
      if (ins.op !== 'ARG') throw new Error(`Dockerfile line ${ins.line}: only ARG may come before FROM`);
      const [k, v] = ins.args.split('=');
      args[k!] = v ?? '';
    } else {
      stages.at(-1)!.body.push(ins);
    }
  }
  return { args, stages };
}

const expand = (s: string, vars: Record<string, string>) =>
  s.replace(/\$\{?([A-Za-z_]+)\}?/g, (_, k: string) => vars[k] ?? '');
const execForm = (ins: Instruction | undefined): string[] | undefined => {
  if (!ins) return undefined;
  const v = JSON.parse(ins.args) as unknown;
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
};

/** Go's filepath.Match as Docker uses it (plus **): unlike shell globs, * also matches dotfiles. */
function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** .dockerignore as Docker applies it: the last matching pattern wins; a match on a folder covers its contents. */
function dockerIgnored(path: string, patterns: string[]): boolean {
  const ancestors = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = globRegExp(posix.normalize(negate ? raw.slice(1) : raw).replace(/\/$/, ''));
    if (ancestors.some((a) => pattern.test(a))) ignored = !negate;
  }
  return ignored;
}

const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const { args: globalArgs, stages } = parseDockerfile(dockerfile);
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Obj;
const ignorePatterns = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const runtime = stages.at(-1)!;
const bodyOf = (stage: Stage, op: string) => stage.body.filter((i) => i.op === op);
const stageByRef = (ref: string) => stages.find((s) => s.name === ref || String(s.index) === ref);

t.test('multi-stage: build with the toolchain, ship on a Node.js 26 base', async (t) => {
  t.ok(stages.length >= 2, `${stages.length} stages`);
  const names = stages.map((s) => s.name);
  t.equal(new Set(names).size, names.length, 'stage names are unique');
  const nodeVersion = pkg.devDependencies.node as string;
  const major = nodeVersion.split('.')[0];
  t.equal(globalArgs.NODE_VERSION, nodeVersion, `NODE_VERSION is the node version package.json pins (${nodeVersion})`);
  for (const s of stages.slice(0, -1)) {
    t.match(
      expand(s.base, globalArgs),
      new RegExp(`^node:${nodeVersion.replace(/\./g, '\\.')}-[a-z]+-slim$`),
      `stage ${s.name}: official node slim image of that version`,
    );
    t.equal(
      s.flags?.platform,
      '$BUILDPLATFORM',
      `stage ${s.name} runs on the build machine's platform (its output is plain JavaScript for every target)`,
    );
  }
  t.match(
    runtime.base,
    new RegExp(`^gcr\\.io/distroless/nodejs${major}-debian\\d+:nonroot(@sha256:[0-9a-f]{64})?$`),
    'runtime: distroless Node.js of the same major, nonroot variant',
  );
  t.same(bodyOf(runtime, 'RUN'), [], 'the runtime stage runs nothing (it has no shell)');
  const build = stages.find((s) => s.body.some((i) => i.op === 'RUN' && /\bnpm run build\b/.test(i.args)));
  t.ok(build && build !== runtime, 'a build stage runs `npm run build`');
  t.equal(pkg.scripts.build, 'node scripts/build.ts', 'which bundles with scripts/build.ts');
  const buildScript = readFileSync(join(repoRoot, 'scripts', 'build.ts'), 'utf8');
  t.match(
    buildScript,
    /entryPoints: \['src\/cli\/main\.ts', 'src\/cluster\/page-worker\.ts'\]/,
    'from src/cli/main.ts (and the page worker)',
  );
  t.match(buildScript, /opts\.outdir \?\? 'dist'/, 'into dist/');
  t.match(buildScript, /bundle: true/, 'with its dependencies');
  t.same(pkg.dependencies ?? {}, {}, 'so the package has no runtime dependencies to install');
  t.notOk(
    bodyOf(runtime, 'COPY').some((c) => /node_modules/.test(c.args)),
    'and the image carries no node_modules',
  );
});

t.test('runs as a non-root user', async (t) => {
  const users = bodyOf(runtime, 'USER');
  t.equal(users.length, 1, 'the runtime stage sets USER');
  const user = users[0]?.args ?? '';
  const [uid, gid] = user.split(':');
  t.match(uid, /^[1-9]\d*$/, 'numeric (the kubelet can only check runAsNonRoot for a numeric user)');
  t.not(uid, '0');
  const pod = only(baseObjects(), 'Deployment').spec.template.spec;
  t.equal(String(pod.securityContext.runAsUser), uid, 'the Deployment runs as the same uid');
  t.equal(String(pod.securityContext.runAsGroup), gid ?? uid, 'and group');
});

t.test('what it copies exists, reaches the build context, and comes from earlier stages', async (t) => {
  for (const s of stages) {
    for (const copy of bodyOf(s, 'COPY').concat(bodyOf(s, 'ADD'))) {
      t.equal(copy.op, 'COPY', `line ${copy.line}: COPY, not ADD`);
      const parts = copy.args.startsWith('[') ? (JSON.parse(copy.args) as string[]) : copy.args.split(/\s+/);
      const sources = parts.slice(0, -1);
      t.ok(sources.length > 0, `line ${copy.line}: has a source`);
      if (copy.flags.from) {
        const from = stageByRef(copy.flags.from);
        t.ok(from && from.index < s.index, `line ${copy.line}: --from=${copy.flags.from} is an earlier stage`);
        continue;
      }
      for (const src of sources) {
        t.ok(existsSync(join(repoRoot, src)), `line ${copy.line}: ${src} exists`);
        t.notOk(dockerIgnored(src, ignorePatterns), `line ${copy.line}: ${src} is not excluded by .dockerignore`);
      }
    }
  }
});

t.test('.dockerignore keeps secrets and local state out of the build context', async (t) => {
  for (const path of [
    'node_modules',
    'dist',
    '.git',
    'certs/out/ca.key',
    'manifests/overlays/plain/tls-secret.yaml',
    'coverage',
    '.tap',
    'test/manifests/yaml.test.ts',
  ]) {
    t.ok(dockerIgnored(path, ignorePatterns), `${path} excluded`);
  }
  for (const path of ['src/cli/main.ts', 'package.json', 'package-lock.json', 'scripts/build.ts', 'bin/pullguard.js']) {
    t.notOk(dockerIgnored(path, ignorePatterns), `${path} included`);
  }
});

t.test("the entrypoint runs the file npm's `pullguard` bin runs; CMD is serve", async (t) => {
  const entry = execForm(bodyOf(runtime, 'ENTRYPOINT').at(-1));
  t.ok(entry, 'ENTRYPOINT in exec form (no shell to run a shell form)');
  const bin = pkg.bin.pullguard as string;
  t.equal(pkg.bin['kubectl-pullguard'], bin, 'the kubectl plugin is the same file');
  t.match(entry?.[0], /\/node$/, 'runs node');
  const script = entry?.find((a) => a.endsWith('.js'));
  t.equal(script, bin, 'the script is package.json bin.pullguard');
  t.equal(entry?.at(-1), script, 'nothing after the script: the arguments are the command line');
  const flags = entry?.slice(1, entry.indexOf(script ?? '')) ?? [];
  t.ok(
    flags.every((a) => a.startsWith('--')),
    'only node flags before the script',
  );
  t.same(imageNodeFlags(), flags, 'the benchmarks run their servers with the same node flags');
  const accepted = spawnSync(process.execPath, [...flags, '-e', 'process.exit(0)'], { encoding: 'utf8' });
  t.equal(accepted.status, 0, `node accepts them ${accepted.stderr}`);
  t.same(execForm(bodyOf(runtime, 'CMD').at(-1)), ['serve'], 'CMD ["serve"]: no arguments runs the webhook');

  // The script and what it loads must be in the image: WORKDIR, bin/ from the context, dist/ from the build.
  const workdir = bodyOf(runtime, 'WORKDIR').at(-1)?.args;
  t.equal(workdir, '/app', 'WORKDIR /app');
  const copies = bodyOf(runtime, 'COPY');
  t.ok(
    copies.some((c) => !c.flags.from && c.args.split(/\s+/)[0] === bin.split('/')[0]),
    `${bin.split('/')[0]}/ is copied from the build context`,
  );
  t.ok(existsSync(join(repoRoot, bin)), `${bin} exists`);
  const binText = readFileSync(join(repoRoot, bin), 'utf8');
  const loaded = /import\('\.\.\/(dist\/[^']+)'\)/.exec(binText)?.[1];
  t.equal(loaded, 'dist/cli/main.js', 'the bin loads the bundle entry dist/cli/main.js');
  const distCopy = copies.find((c) => c.flags.from && /\/dist\s/.test(`${c.args} `));
  t.ok(distCopy, 'dist/ comes from the build stage');
  t.match(distCopy?.args, /\s\.\/dist\/?$|\s\/app\/dist\/?$/, 'into /app/dist');
  t.ok(
    copies.some((c) => !c.flags.from && c.args.split(/\s+/).includes('package.json')),
    'package.json is in the image (it makes the files ESM and holds the version)',
  );
  t.equal(pkg.type, 'module');

  // The Deployment's arguments replace CMD: together `pullguard serve --config …`.
  const container = only(baseObjects(), 'Deployment').spec.template.spec.containers[0];
  t.equal(container.command, undefined, 'the Deployment keeps the entrypoint');
  t.same(
    container.args,
    ['serve', '--config', '/etc/pullguard/config.yaml'],
    'the pods run `pullguard serve --config /etc/pullguard/config.yaml`',
  );
  const exposed = bodyOf(runtime, 'EXPOSE').flatMap((e) => e.args.split(/\s+/));
  t.ok(exposed.includes('8443'), 'EXPOSE 8443 (the webhook)');
  t.ok(exposed.includes('9090'), 'EXPOSE 9090 (metrics)');
});

t.test('OCI labels', async (t) => {
  const labels: Record<string, string> = {};
  for (const l of bodyOf(runtime, 'LABEL')) {
    for (const m of l.args.matchAll(/([\w.-]+)="([^"]*)"/g)) labels[m[1]!] = m[2]!;
  }
  const stageArgs: Record<string, string> = {};
  for (const a of bodyOf(runtime, 'ARG')) {
    const [k, v] = a.args.split('=');
    stageArgs[k!] = v ?? '';
  }
  for (const key of ['title', 'description', 'licenses', 'source', 'version', 'revision', 'created']) {
    t.ok(labels[`org.opencontainers.image.${key}`], `org.opencontainers.image.${key}`);
  }
  t.equal(labels['org.opencontainers.image.licenses'], pkg.license, 'licenses == package.json license');
  t.equal(
    expand(labels['org.opencontainers.image.version'] ?? '', stageArgs),
    pkg.version,
    'version defaults to package.json version',
  );
  const image = only(baseObjects(), 'Deployment').spec.template.spec.containers[0].image;
  const kustomization = readFileSync(join(repoRoot, 'manifests/base/kustomization.yaml'), 'utf8');
  t.equal(image, 'pullguard', 'the Deployment names the image by its kustomize name');
  t.match(
    kustomization,
    new RegExp(`newTag: ${pkg.version.replace(/\./g, '\\.')}\\b`),
    'and the manifests install the package version',
  );
});

t.test('the build installs exactly the lock, with what npm ci needs to read', async (t) => {
  const build = stages.find((s) => s.body.some((i) => i.op === 'RUN' && /\bnpm run build\b/.test(i.args)))!;
  t.ok(
    build.body.some((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args)),
    'npm ci (the lock, nothing resolved anew)',
  );
  // every file: dependency (a folder in this repository) must be copied before npm ci
  const local = Object.values({ ...pkg.dependencies, ...pkg.devDependencies } as Record<string, string>)
    .filter((v) => v.startsWith('file:'))
    .map((v) => `${v.slice('file:'.length)}/package.json`);
  for (const file of local) {
    t.ok(
      build.body.some((i) => i.op === 'COPY' && i.args.split(/\s+/).includes(file)),
      `${file} is copied for npm ci`,
    );
  }
});
