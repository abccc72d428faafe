// Unicode bidirectional controls ("Trojan Source": U+202E turns "exe.gpj" into "jpg.exe" on screen)
// never reach a message, the diagnose output or an Event raw: they are escaped like C0/C1 controls.
import t from 'tap';
import { diagnoseContainer, diagnosesToJson, diagnosesToText } from '../../src/diagnose/diagnose.ts';
import { containerEvidence, podEventOf } from '../../src/diagnose/evidence.ts';
import { describe } from '../../src/findings.ts';
import { escapeJson, escapeUnsafe, logText, oneLine, quote } from '../../src/text.ts';

const BIDI = [
  '\u061c',
  '\u200e',
  '\u200f',
  '\u202a',
  '\u202b',
  '\u202c',
  '\u202d',
  '\u202e',
  '\u2066',
  '\u2067',
  '\u2068',
  '\u2069',
];
const RAW = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const hex = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

t.test('quote, oneLine, logText and escapeUnsafe escape every bidi control', async (t) => {
  for (const c of BIDI) {
    const text = `invoice${c}fdp.exe`;
    for (const [name, out] of [
      ['quote', quote(text)],
      ['oneLine', oneLine(text)],
      ['logText', logText(text)],
      ['escapeUnsafe', escapeUnsafe(text)],
      ['describe', describe({ container: `web${c}`, message: text, hint: text })],
    ] as const) {
      t.notMatch(out, RAW, `${name}: no raw ${hex(c)}`);
      t.match(out, `invoice${hex(c)}fdp.exe`, `${name}: shown as ${hex(c)}`);
    }
  }
  t.equal(oneLine('a\n\u0007b'), 'a b', 'C0 controls still become one space');
  t.equal(quote('a\u0085b'), '"a\\u0085b"', 'C1 still escaped');
  t.equal(oneLine('שלום עולם'), 'שלום עולם', 'right-to-left letters themselves are left alone');
});

t.test('escapeJson: the same values, no raw bidi or C1 in the text', async (t) => {
  const value = { s: `a${BIDI.join('')}\u0085\u2028b`, n: ['x\n'] };
  const json = escapeJson(JSON.stringify(value, null, 2));
  t.notMatch(json, RAW);
  t.notMatch(json, /[\u0080-\u009f\u2028\u2029]/);
  t.same(JSON.parse(json), value, 'reads back to the same value');
});

t.test("diagnose: an image and the kubelet's texts with bidi controls", async (t) => {
  const image = `registry.example/app${BIDI.join('')}:1.0`;
  const runtime = `Failed to apply default image tag "${image}": couldn't parse image reference "${image}": invalid reference format`;
  const pod = {
    metadata: { name: 'web-1', namespace: 'shop' },
    spec: { nodeName: 'n1', containers: [{ name: 'web', image }] },
    status: {
      containerStatuses: [{ name: 'web', image, state: { waiting: { reason: 'InvalidImageName', message: runtime } } }],
    },
  };
  const events = ['InspectFailed', 'Failed'].map((reason) =>
    podEventOf({
      reason,
      message: reason === 'Failed' ? 'Error: InvalidImageName' : runtime,
      count: 2,
      involvedObject: { kind: 'Pod', name: 'web-1', fieldPath: 'spec.containers{web}' },
      source: { component: 'kubelet' },
    }),
  );
  const forged = podEventOf({
    reason: 'Failed',
    message: `Failed to pull image "${image}": not found`,
    involvedObject: { kind: 'Pod', name: 'web-1', fieldPath: 'spec.containers{web}' },
    source: { component: `evil${BIDI.join('')}` },
  });
  const [ev] = containerEvidence(pod, [...events, forged]);
  const d = diagnoseContainer({ namespace: 'shop', name: 'web-1', node: 'n1' }, ev!, undefined, new Date());
  const text = diagnosesToText([d]);
  const json = diagnosesToJson([d]);
  t.notMatch(text, RAW, 'text: none raw');
  t.notMatch(json, RAW, 'JSON: none raw');
  t.match(text, `app${BIDI.map(hex).join('')}`, 'text: shown escaped');
  t.match(text, 'untrusted:', 'the forged event is there, marked');
  t.equal(JSON.parse(json).diagnoses[0].image, image, 'JSON keeps the value, escaped in the text');
});
