// Nothing crashes the server: captured reviews with arbitrary values put at arbitrary places get an
// answer (200 with the request's uid) or a plain 400, never a 500, and the server keeps serving.
// Image fields are pinned to the loopback registry so that no check leaves this machine.
import t from 'tap';
import fc from 'fast-check';
import { SAMPLES, sample, serve, startRegistries, type Obj, type Registries, type TestServer } from './lib.ts';

let regs: Registries;
let s: TestServer;
t.before(async () => {
  regs = await startRegistries();
  s = await serve(regs, { deadline: 2000 });
});
t.teardown(async () => {
  await s?.close();
  await regs?.stop();
});

/** Every place in a JSON value, as key paths. */
function paths(
  value: unknown,
  prefix: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...prefix, i], out));
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

function setAt(root: Obj, path: (string | number)[], value: unknown): Obj {
  if (!path.length) return value as Obj;
  let node: any = root;
  for (const k of path.slice(0, -1)) node = node[k];
  node[path.at(-1)!] = value;
  return root;
}

/** Images that are strings become the loopback registry's, so the fuzz never reaches the internet. */
function pinImages(value: unknown, safe: string): void {
  if (Array.isArray(value)) value.forEach((v) => pinImages(v, safe));
  else if (value && typeof value === 'object') {
    const o = value as Obj;
    for (const key of Object.keys(o)) {
      if ((key === 'image' || key === 'reference') && typeof o[key] === 'string') o[key] = safe;
      else pinImages(o[key], safe);
    }
  }
}

t.test('arbitrary values anywhere in a captured review: 200 or 400, never 500', async (t) => {
  const bases = SAMPLES.map((name) => sample(name, regs));
  const safe = `${regs.plain.host}/demo/app:1.0`;
  const json = fc.jsonValue({ maxDepth: 3 });
  const weird = fc.oneof(json, fc.constantFrom(null, '', [], {}, -1, 1e308, '\u0000', '\u202e', 'x'.repeat(5000)));
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(
      fc.nat(SAMPLES.length - 1),
      fc.array(fc.tuple(fc.nat(), weird), { minLength: 1, maxLength: 4 }),
      async (which, edits) => {
        let body = structuredClone(bases[which]!);
        for (const [pick, value] of edits) {
          const all = paths(body);
          body = setAt(body, all[pick % all.length]!, structuredClone(value));
        }
        pinImages(body, safe);
        const res = await s.post(JSON.stringify(body));
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 200) {
          const uid = (body as Obj)?.request?.uid;
          return res.json.response?.uid === uid && typeof res.json.response.allowed === 'boolean';
        }
        return res.status === 400 && typeof res.json.error === 'string' && Object.keys(res.json).length === 1;
      },
    ),
    {
      numRuns: Number(process.env.PULLGUARD_FUZZ_RUNS ?? 500),
      seed: Number(process.env.PULLGUARD_FUZZ_SEED ?? 20261122),
    },
  );
  t.pass(`answers: ${[...statuses].map(([k, v]) => `${k}×${v}`).join(', ')}`);
  t.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, 'both kinds of answer were exercised');
  t.equal(statuses.get(500), undefined, 'no 500');
  t.notOk(
    s.log.lines().some((l) => l.level >= 50),
    'nothing logged as an error',
  );
  const after = await s.review(sample('pod-create.json', regs));
  t.equal(after.allowed, false, 'still serving real reviews');
});
