// A short name on CRI-O nodes is its candidates' verdict, each judged whole by its own name: an
// image a node holds under docker.io's name (what "app" would mean on containerd) does not make a
// CRI-O pull that fails a mere risk (KEP-2535's node copy is looked up by the candidate's name).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadRoutes, registryClientFor } from '../../src/app/build.ts';
import { validateConfig } from '../../src/config/schema.ts';
import type { ImageUse } from '../../src/findings.ts';
import { Preflight } from '../../src/preflight/engine.ts';
import { startRegistry } from '../helpers/registry.ts';

const reg = await startRegistry({ auth: 'none' });
t.teardown(() => reg.stop());
await reg.pushImage('pgdemo/app', '1.0');
const dir = mkdtempSync(join(tmpdir(), 'pg-short-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const conf = join(dir, 'registries.conf');
writeFileSync(
  conf,
  `unqualified-search-registries = ["${reg.host}"]\n\n[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`,
);

const config = validateConfig({ registry: { registriesConf: conf } });
const routes = await loadRoutes(config);
const engine = new Preflight(config, registryClientFor(config, [], routes ? { routes } : {}));
t.teardown(() => engine.close());
const use = (image: string): ImageUse => ({
  object: { kind: 'Pod', namespace: 'shop', name: 'p' },
  container: 'app',
  field: 'spec.containers[0].image',
  image,
  pullPolicy: 'IfNotPresent',
});

t.test("a node's docker.io copy does not soften a CRI-O short name that will not pull", async (t) => {
  const held = ['docker.io/library/nope:1.0', 'docker.io/pgdemo/app:2.0'];
  const [missing] = await engine.check([use('pgdemo/app:2.0')], {
    credentials: { keyrings: [] },
    imageOnAnyNode: (names) => names.some((n) => held.includes(n)),
  });
  t.equal(missing!.verdict, 'fail', missing!.message);
  t.equal(missing!.reason, 'tag-not-found');
  t.match(missing!.message, `on CRI-O nodes "pgdemo/app:2.0" means "${reg.host}/pgdemo/app:2.0"`);
});

t.test('the candidate a node holds is judged by its own name', async (t) => {
  const [held] = await engine.check([use('pgdemo/app:2.0')], {
    credentials: { keyrings: [] },
    imageOnAnyNode: (names) => names.includes(`${reg.host}/pgdemo/app:2.0`),
  });
  t.equal(held!.verdict, 'risk', held!.message);
});
