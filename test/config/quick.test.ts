// `pullguard check` validates the defaults and its own flags without zod (src/config/quick.ts), to
// start faster: its answer must be configSchema's for every input it takes, anything else must go
// to configSchema, and what check's flags and variables really give must be taken.
import t from 'tap';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { defaultConfig, loadCheckConfig, quickConfig } from '../../src/config/quick.ts';
import { registryOverrides } from '../../src/cli/flags.ts';
import { ConfigError, configSchema, loadConfig, validateConfig } from '../../src/config/schema.ts';

t.test("the defaults are configSchema's", async (t) => {
  t.strictSame(defaultConfig(), validateConfig({}));
  t.strictSame(quickConfig({}), validateConfig({}));
  t.not(defaultConfig().registry.insecure, defaultConfig().registry.insecure, 'a fresh object every time');
});

const anyValue = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }),
  fc.array(fc.anything(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }),
);
/** Mostly a value of the kind the key takes (valid or just wrong), sometimes anything at all. */
const mostly = <T>(good: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: good, weight: 6 }, { arbitrary: anyValue, weight: 1 });
/** A key quickConfig leaves to configSchema, now and then (null: not there). */
const rarely = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: fc.constant(null), weight: 7 }, { arbitrary: arb, weight: 1 });
const hostish = fc.oneof(
  { arbitrary: fc.constantFrom('a.example', 'b.example:5000', '[::1]:5000', '127.0.0.1:1'), weight: 8 },
  { arbitrary: fc.constantFrom('bad host!', '', 'ünï', 'x/y'), weight: 1 },
  { arbitrary: fc.string({ maxLength: 8 }), weight: 1 },
);
const durationish = fc.oneof(
  fc.integer({ min: -10, max: 400_000 }),
  fc.constantFrom(99, 100, 300_000, 300_001, 150.5, Number.NaN, Number.POSITIVE_INFINITY, -0),
  fc.constantFrom('8s', '500ms', '99', '100', '5m', '6m', '1h', '5 s', ' 8s', '08s', '300000', '300001', '8s\n', ''),
);
const strings = fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 });
const someOf = <T>(rec: { [K in keyof T]: fc.Arbitrary<T[K]> }) => fc.record(rec, { requiredKeys: [] });
/** Inputs around the ones quickConfig takes: its keys with good and bad values, and some it never takes. */
const input = fc
  .tuple(
    someOf({
      deadline: mostly(durationish),
      platforms: mostly(strings),
      registry: mostly(
        fc
          .tuple(
            someOf({
              insecure: mostly(fc.array(hostish, { maxLength: 3 })),
              caFiles: mostly(strings),
              verifyLayers: mostly(fc.boolean()),
            }),
            rarely(fc.integer({ min: -1, max: 20 })),
          )
          .map(([r, concurrency]) => (concurrency === null ? r : { ...r, concurrency })),
      ),
      credentials: mostly(
        someOf({
          providerConfig: mostly(fc.constantFrom('', '/etc/kubelet/providers.yaml')),
          providerBinDir: mostly(fc.constantFrom('', '/usr/libexec/kubelet')),
        }),
      ),
      cluster: mostly(
        fc
          .tuple(someOf({ kubeconfig: mostly(fc.string()) }), rarely(fc.boolean()))
          .map(([c, watchNodes]) => (watchNodes === null ? c : { ...c, watchNodes })),
      ),
    }),
    rarely(fc.constantFrom('enforce', 'warn', 'nope')),
  )
  .map(([i, mode]) => (mode === null ? i : { ...i, mode }));

t.test('whatever it answers is what configSchema answers', async (t) => {
  let taken = 0;
  fc.assert(
    fc.property(input, (i) => {
      const quick = quickConfig(i);
      if (quick === undefined) return true;
      taken++;
      const parsed = configSchema.safeParse(i);
      return parsed.success && isDeepStrictEqual(quick, parsed.data);
    }),
    { numRuns: 3000 },
  );
  t.ok(taken > 100, `it took ${taken} of 3000 inputs (the property is not vacuous)`);
});

t.test("check's flags and variables, when valid, are taken — and come out as configSchema's", async (t) => {
  const flags = someOf({
    'insecure-registry': fc.array(fc.constantFrom('a.example', 'b.example:5000', '127.0.0.1:5000', '[::1]:443'), {
      minLength: 1,
      maxLength: 3,
    }),
    'registry-ca': fc.array(fc.constantFrom('ca.pem', '/etc/ssl/extra.pem'), { minLength: 1, maxLength: 2 }),
    timeout: fc.constantFrom('100ms', '8s', '5m', '30000'),
    platform: fc.array(fc.constantFrom('linux/amd64', 'linux/arm64/v8,windows/amd64', 'linux/s390x'), {
      minLength: 1,
      maxLength: 2,
    }),
    'image-credential-provider-config': fc.constant('/etc/kubelet/providers.yaml'),
    'image-credential-provider-bin-dir': fc.constant('/usr/libexec/kubelet'),
  });
  const env = someOf({
    PULLGUARD_DEADLINE: fc.constantFrom('500ms', '8s', '30000'),
    PULLGUARD_CLUSTER_KUBECONFIG: fc.constant('/home/me/.kube/config'),
  });
  await fc.assert(
    fc.asyncProperty(flags, env, async (f, e) => {
      // the kubelet needs both provider flags: with one alone configSchema words the error
      fc.pre(!f['image-credential-provider-config'] || Boolean(f['image-credential-provider-bin-dir']));
      const overrides = registryOverrides(f);
      const fromSchema = loadConfig({ env: e, flags: overrides });
      const { mergeLayers, environmentOverrides } = await import('../../src/config/layers.ts');
      const quick = quickConfig(mergeLayers(environmentOverrides(e), overrides));
      return (
        quick !== undefined &&
        isDeepStrictEqual(quick, fromSchema) &&
        isDeepStrictEqual(await loadCheckConfig({ env: e, flags: overrides }), fromSchema)
      );
    }),
    { numRuns: 300 },
  );
});

t.test('a file, or input it does not take, goes to configSchema with its errors', async (t) => {
  await t.rejects(loadCheckConfig({ flags: { registry: { insecure: ['bad host!'] } } }), ConfigError);
  await t.rejects(loadCheckConfig({ flags: { deadline: 50 } }), { message: /deadline: at least 100ms/ });
  await t.rejects(loadCheckConfig({ env: { PULLGUARD_MODE: 'strict' } }), { message: /mode:/ });
  t.equal((await loadCheckConfig({ env: { PULLGUARD_MODE: 'warn' } })).mode, 'warn', 'a key it leaves to configSchema');
  await t.rejects(loadCheckConfig({ file: '/nonexistent/pullguard.yaml' }), { message: /cannot read/ });
});
