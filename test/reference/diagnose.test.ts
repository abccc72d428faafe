// Invalid references: what is wrong and where, beside the upstream error the kubelet reports.
import t from 'tap';
import { diagnoseReference } from '../../src/reference/diagnose.ts';
import { parseImage } from '../../src/reference/index.ts';
import { explain } from '../../src/preflight/messages.ts';

t.test('each fault named with its position', async (t) => {
  const cases: [string, string][] = [
    ['nginx:', 'the tag after ":" at position 6 is empty'],
    ['nginx@sha256:abc', 'digest "sha256:abc" has 3 hex characters, sha256 needs 64'],
    ['nginx:v1.0.0+build', 'tag "v1.0.0+build" has "+" at position 13'],
    ['docker.io/Library/nginx:1', 'repository name must be lowercase: "L" at position 11'],
    ['nginx :1.25', 'whitespace at position 6'],
    ['nginx:-rc1', 'tag "-rc1" starts with "-" at position 7'],
    ['nginx@sha1:0123', 'digest algorithm "sha1" at position 7 is not supported'],
    [`nginx@sha256:${'A'.repeat(64)}`, 'digest has "A" at position 14: only lowercase hex'],
    ['nginx@', 'nothing after "@" at position 6'],
    ['shop//web', 'empty repository name component at position 6'],
    ['shop/web!:1', '"!" at position 9 is not allowed in a repository name'],
    ['shop/web-:1', 'repository name component "web-" at position 6: separators'],
    ['registry:port/app:1', 'registry port "port" at position 10 is not a number'],
    ['', 'the image is empty'],
  ];
  for (const [image, want] of cases) {
    t.notOk(parseImage(image).ok, `${JSON.stringify(image)} does not parse`);
    t.match(diagnoseReference(image), want, JSON.stringify(image));
  }
});

t.test('valid references have nothing to diagnose', async (t) => {
  for (const image of [
    'nginx',
    'nginx:1.25',
    'ghcr.io/acme/app:V1_RC',
    `localhost:5000/a/b@sha256:${'a'.repeat(64)}`,
  ]) {
    t.ok(parseImage(image).ok, image);
    t.equal(diagnoseReference(image), undefined, image);
  }
});

t.test('the message keeps the kubelet error and adds the diagnosis', async (t) => {
  const parsed = parseImage('nginx:');
  t.notOk(parsed.ok);
  const { message } = explain({ reason: 'invalid-reference', image: 'nginx:', error: parsed.ok ? '' : parsed.error });
  t.match(message, 'invalid reference format');
  t.match(message, 'the tag after ":" at position 6 is empty');
});
