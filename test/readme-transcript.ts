// The README's transcript of `pullguard check` at 80 and 160 columns, made by running the real
// command against a real registry: `npm run transcript` prints the two blocks to paste.
// registry.endpoints points the manifests' registry names at loopback, so the text is the same
// on every machine (legacy.example.com goes to a closed port: unreachable).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry } from './helpers/registry.ts';
import { repoRoot } from './helpers/fixtures.ts';

const reg = await startRegistry({ auth: 'none' });
const dir = mkdtempSync(join(tmpdir(), 'pullguard-transcript-'));
try {
  await reg.pushIndex('shop/web', '1.4', ['linux/amd64', 'linux/arm64']);
  await reg.pushTags('shop/api', ['1.9', '2.1', '2.2'], { platform: 'linux/amd64' });
  await reg.pushImage('shop/worker', '3.1', { platform: 'linux/amd64' });
  const web = 'registry.example.com/shop/web:1.4';
  writeFileSync(
    join(dir, 'pullguard.yaml'),
    `registry:\n  endpoints:\n    registry.example.com: ${reg.url}\n    legacy.example.com: http://127.0.0.1:1\n`,
  );
  mkdirSync(join(dir, 'deploy'));
  writeFileSync(
    join(dir, 'deploy', 'shop.yaml'),
    [
      `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: ${web}\n`,
      `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n      - name: api\n        image: registry.example.com/shop/api:2.0\n`,
      `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: worker\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n      - name: worker\n        image: registry.example.com/shop/worker:3.1\n`,
    ].join('---\n'),
  );
  writeFileSync(
    join(dir, 'deploy', 'jobs.yaml'),
    `apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: report\n  namespace: shop\nspec:\n  schedule: "0 3 * * *"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers:\n          - name: wait\n            image: ${web}\n          containers:\n          - name: report\n            image: legacy.example.com/tools/report:5\n          restartPolicy: OnFailure\n`,
  );
  const args = ['check', '-f', 'deploy/', '--platform', 'linux/amd64,linux/arm64', '--config', 'pullguard.yaml'];
  for (const columns of ['80', '160']) {
    let out: string;
    let status = 0;
    try {
      out = execFileSync(process.execPath, [join(repoRoot, 'src/cli/main.ts'), ...args], {
        cwd: dir,
        env: { ...process.env, COLUMNS: columns, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'ignore'],
        encoding: 'utf8',
      });
    } catch (err) {
      out = (err as { stdout: string }).stdout;
      status = (err as { status: number }).status;
    }
    process.stdout.write(`$ COLUMNS=${columns} pullguard ${args.join(' ')}\n${out}$ echo $?\n${status}\n\n`);
  }
} finally {
  await reg.stop();
  rmSync(dir, { recursive: true, force: true });
}
