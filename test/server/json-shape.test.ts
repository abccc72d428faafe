// JsonShape counts depth and elements of JSON text as it arrives, skipping string content whole.
// Its counts must not depend on where the chunks split (inside a string, after a backslash, between
// an escape and the character it escapes) and must match the parsed value's own shape.
import t from 'tap';
import { JsonShape } from '../../src/server/body.ts';

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
