// JsonShape counts depth and elements of JSON text as it arrives, skipping string content whole.
// Its counts must not depend on where the chunks split (inside a string, after a backslash, between
// an escape and the character it escapes) and must match the parsed value's own shape.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { JsonShape, textWithout } from '../../src/server/body.ts';

/** Containers plus commas, and the deepest nesting, from the parsed value. */
function reference(v: unknown, depth = 0): { elements: number; maxDepth: number } {
  if (v === null || typeof v !== 'object') return { elements: 0, maxDepth: depth };
  const items = Array.isArray(v) ? v : Object.values(v);
  let elements = 1 + Math.max(0, items.length - 1);
  let maxDepth = depth + 1;
  for (const item of items) {
    const r = reference(item, depth + 1);
    elements += r.elements;
    maxDepth = Math.max(maxDepth, r.maxDepth);
  }
  return { elements, maxDepth };
}

const texts = [
  '{"a":"b"}',
  '{"s":"a \\" quoted [ { , ] } inside","t":["x\\\\","y\\\\\\"z"]}',
  '[{"k":"\\u005b\\u007b"},{"k":"\\\\"},[],{},[[["deep"]]]]',
  '{"env":[{"name":"A","value":"1,2,3"},{"name":"B","value":"{not: [json]}"}],"e":"","u":"é✓"}',
  JSON.stringify({
    request: { object: { spec: { containers: [{ name: 'web', image: 'r/a:1', args: ['-c', 'echo "[x]"'] }] } } },
  }),
];

t.test('counts match the parsed value however the text is split', async (t) => {
  for (const text of texts) {
    const bytes = Buffer.from(text);
    const want = reference(JSON.parse(text));
    const whole = new JsonShape();
    t.equal(whole.feed(bytes), undefined, text);
    t.same({ elements: whole.elements, maxDepth: whole.maxDepth, depth: whole.depth }, { ...want, depth: 0 }, text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const split = new JsonShape();
      split.feed(bytes.subarray(0, cut));
      split.feed(bytes.subarray(cut));
      if (split.elements !== want.elements || split.maxDepth !== want.maxDepth || split.depth !== 0)
        t.fail(`split at ${cut} of ${text}: ${split.elements} elements, depth ${split.maxDepth}`);
    }
    const byByte = new JsonShape();
    for (let i = 0; i < bytes.length; i++) byByte.feed(bytes.subarray(i, i + 1));
    t.same({ elements: byByte.elements, maxDepth: byByte.maxDepth }, want, `byte by byte: ${text}`);
  }
});

t.test(
  'a string that never ends keeps everything after it uncounted, as JSON.parse would refuse it anyway',
  async (t) => {
    const shape = new JsonShape();
    t.equal(shape.feed(Buffer.from('["open, [ {')), undefined);
    t.same({ elements: shape.elements, depth: shape.depth }, { elements: 1, depth: 1 });
  },
);

t.test('a string that opens with "__proto__" or "constructor" is noted, however the text is split', async (t) => {
  const noted = [
    '{"__proto__":{"x":1}}',
    '{"a":{"constructor":{"prototype":{}}}}',
    '["__proto__"]',
    '{"constructor" :1}',
    // a string that opens with an escape could be either, spelled otherwise
    '{"\\u005f_proto__":1}',
  ];
  const clean = [
    texts[0]!,
    texts[3]!,
    texts[4]!,
    '{"containers":[],"constructors":1,"__protocol":2,"_proto__":3}',
    '{"a":"x\\"__proto__\\" y"}',
  ];
  for (const [text, want] of [...noted.map((x) => [x, true] as const), ...clean.map((x) => [x, false] as const)]) {
    const bytes = Buffer.from(text);
    const whole = new JsonShape();
    whole.feed(bytes);
    t.equal(whole.prototypeKey, want, text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const split = new JsonShape();
      split.feed(bytes.subarray(0, cut));
      split.feed(bytes.subarray(cut));
      // A chunk that ends inside such a word is noted too (the whole text is searched then): never missed.
      if (want && !split.prototypeKey) t.fail(`split at ${cut} of ${text}: not noted`);
    }
  }
});

/** The text's JSON with its (old)object's metadata.managedFields emptied where `keep` says not to keep it. */
function emptied(text: string, keep: { object: boolean; oldObject: boolean }) {
  const v = JSON.parse(text) as { request: Record<string, { metadata: { managedFields?: unknown } } | null> };
  for (const side of ['object', 'oldObject'] as const) {
    const meta = v.request[side]?.metadata;
    if (meta?.managedFields && !keep[side]) meta.managedFields = [];
  }
  return v;
}

t.test("an object's managedFields is left out of the parsed text, however the text is split", async (t) => {
  // A real server-side apply UPDATE: managedFields in object and in oldObject.
  const text = readFileSync(
    new URL('../fixtures/admission/pod-update-server-side-apply.json', import.meta.url),
    'utf8',
  );
  const bytes = Buffer.from(JSON.stringify(JSON.parse(text)));
  const whole = new JsonShape();
  whole.feed(bytes);
  t.equal(whole.cuts.length, 4, 'two arrays');
  t.same(JSON.parse(textWithout(bytes, whole.cuts)), emptied(bytes.toString(), { object: false, oldObject: false }));
  t.same(
    { elements: whole.elements, maxDepth: whole.maxDepth },
    reference(JSON.parse(bytes.toString())),
    'their content is counted for the limits all the same',
  );
  const allowed = [
    emptied(bytes.toString(), { object: false, oldObject: false }),
    emptied(bytes.toString(), { object: true, oldObject: false }),
    emptied(bytes.toString(), { object: false, oldObject: true }),
    emptied(bytes.toString(), { object: true, oldObject: true }),
  ];
  for (let cut = 1; cut < bytes.length; cut++) {
    const split = new JsonShape();
    split.feed(bytes.subarray(0, cut));
    split.feed(bytes.subarray(cut));
    // A chunk that ends inside `"managedFields":[`, or inside a key on the path to it (`"request":{`,
    // `"object":{`, `"metadata":{`), leaves that array in: parsed as it is, never wrong.
    const parsed = JSON.parse(textWithout(bytes, split.cuts)) as unknown;
    if (!allowed.some((a) => JSON.stringify(a) === JSON.stringify(parsed)))
      t.fail(`split at ${cut}: ${JSON.stringify(split.cuts)}`);
  }
});

t.test('only an array value of a managedFields key in request.(old)object.metadata is left out', async (t) => {
  const wrap = (inner: string) => `{"request":{"object":{"metadata":${inner}}}}`;
  const kept = [
    // another depth: the object itself, the pod template's metadata
    '{"request":{"object":{"managedFields":[1],"metadata":{}}}}',
    wrap('{"a":{"managedFields":[1]}}'),
    // not an array, not that key, not written as the API server writes it
    wrap('{"managedFields":null}'),
    wrap('{"managedFields":{"a":[1]}}'),
    wrap('{"managedFieldsX":[1]}'),
    wrap('{"managedFields" :[1]}'),
    wrap('{"x":"managedFields\\":[1]"}'),
    // at the metadata's depth but not an object's metadata: the user's extra, the spec, any other path
    '{"request":{"userInfo":{"username":"u","extra":{"managedFields":["a","b"]}},"object":{"metadata":{}}}}',
    '{"request":{"object":{"metadata":{},"spec":{"managedFields":[{"x":1}]}}}}',
    '{"request":{"options":{"metadata":{"managedFields":[1]}}}}',
    '{"review":{"object":{"metadata":{"managedFields":[1]}}}}',
    '{"request":{"object":{"metadata":{"annotations":{"managedFields":"[1]"},"labels":{"x":"y"}}}}}',
    '[{"object":{"metadata":{"managedFields":[1]}}}]',
  ];
  for (const text of kept) {
    const shape = new JsonShape();
    shape.feed(Buffer.from(text));
    t.same(shape.cuts, [], text);
    t.same(JSON.parse(textWithout(Buffer.from(text), shape.cuts)), JSON.parse(text), text);
  }
  // Closed by a brace the text is not JSON: nothing is left out, and JSON.parse refuses it as before.
  const broken = Buffer.from(wrap('{"managedFields":[1}}'));
  const shape = new JsonShape();
  shape.feed(broken);
  t.same(shape.cuts, []);
  t.throws(() => JSON.parse(textWithout(broken, shape.cuts)));
  // Two metadata objects (object and oldObject), multi-byte text around them.
  const two = Buffer.from(
    '{"request":{"object":{"metadata":{"name":"é✓","managedFields":[{"f:x":"[é]"}]}},"oldObject":{"metadata":{"managedFields":[[],{}],"z":"✓"}}}}',
  );
  const both = new JsonShape();
  both.feed(two);
  t.same(JSON.parse(textWithout(two, both.cuts)), {
    request: {
      object: { metadata: { name: 'é✓', managedFields: [] } },
      oldObject: { metadata: { managedFields: [], z: '✓' } },
    },
  });
});

t.test('at most four arrays are left out: a body made of many gets no more pieces', async (t) => {
  // JSON allows a key twice (the last one wins): a forged body may repeat the metadata paths.
  const many = Buffer.from(
    `{"request":{${Array.from({ length: 10 }, () => '"object":{"metadata":{"managedFields":[1]}}').join(',')}}}`,
  );
  const shape = new JsonShape();
  shape.feed(many);
  t.equal(shape.cuts.length, 8);
  const text = textWithout(many, shape.cuts);
  t.same(
    [...text.matchAll(/"managedFields":\[(1?)\]/g)].map((m) => m[1]!.length),
    [0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
  );
});
