// reference.json rows for kubelet's ParseImageName, and parseImage, the pullguard entry point.

import t from 'tap';
import { readVectors } from '../helpers/fixtures.ts';
import { parseImage, parseImageName } from '../../src/reference/index.ts';
import { type ReferenceRow, attempt, isError, show } from './rows.ts';

const rows = readVectors<ReferenceRow>('reference.json');

t.test('ParseImageName (kubelet pkg/util/parsers)', async (t) => {
  const list = rows.filter((r) => r.source.function.startsWith('ParseImageName'));
  t.equal(list.length, 13, 'all ParseImageName rows present');
  for (const row of list) {
    const got = attempt(() => parseImageName(row.input));
    if (row.valid) {
      const want = row.parseImageName;
      // Go returns "" for an absent tag or digest; the vectors write that as null
      t.same(
        got,
        { repo: want?.repo, tag: want?.tag ?? '', digest: want?.digest ?? '' },
        `${row.id}: ${show(row.input)}`,
      );
    } else {
      t.match(
        isError(got) ? got.message : got,
        row.errorMessageContains,
        `${row.id}: ${show(row.input)} fails with "${row.errorMessageContains}"`,
      );
    }
  }
});

t.test('parseImage', async (t) => {
  const digest = `sha256:${'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'}`;

  const both = parseImage(`nginx:1.27@${digest}`);
  t.ok(both.ok, 'name:tag@digest parses');
  if (both.ok) {
    t.equal(both.ref.pullRef, `docker.io/library/nginx@${digest}`, 'the digest is pulled, the tag ignored');
    t.equal(both.ref.normalized, `docker.io/library/nginx:1.27@${digest}`, 'normalized keeps both for display');
    t.equal(both.ref.tag, '1.27');
    t.equal(both.ref.digest, digest);
    t.match(both.ref.warnings, [/tag "1.27" is ignored/], 'notes the ignored tag');
  }

  const bare = parseImage('nginx');
  t.ok(bare.ok, 'a bare name parses');
  if (bare.ok) {
    t.same(
      { ...bare.ref },
      {
        input: 'nginx',
        domain: 'docker.io',
        path: 'library/nginx',
        name: 'docker.io/library/nginx',
        tag: null,
        digest: null,
        pullRef: 'docker.io/library/nginx:latest',
        normalized: 'docker.io/library/nginx',
        warnings: [],
      },
      'a bare name is pulled as :latest',
    );
  }

  const private_ = parseImage('registry.example.com:5000/team/app:v2');
  t.ok(
    private_.ok && private_.ref.pullRef === 'registry.example.com:5000/team/app:v2',
    'a private registry keeps its host and port',
  );

  t.same(
    parseImage('Nginx:1.27'),
    {
      ok: false,
      kind: 'ErrNameContainsUppercase',
      error:
        'couldn\'t parse image name "Nginx:1.27": invalid reference format: repository name (library/Nginx) must be lowercase',
    },
    "an uppercase repository is the kubelet's InvalidImageName",
  );

  for (const input of [' nginx', 'nginx ', '\tnginx:1.27']) {
    const r = parseImage(input);
    t.same(
      r.ok ? r : { ok: r.ok, kind: r.kind },
      { ok: false, kind: 'ErrReferenceInvalidFormat' },
      `whitespace ${JSON.stringify(input)} is an error`,
    );
  }

  const withNewline = parseImage('nginx\n:latest\u0007');
  t.notOk(withNewline.ok, 'an input with control characters fails');
  if (!withNewline.ok) {
    // eslint-disable-next-line no-control-regex
    t.notMatch(withNewline.error, /[\u0000-\u001f\u007f-\u009f]/, 'the message holds no control characters');
    t.equal(
      withNewline.error,
      'couldn\'t parse image name "nginx\\n:latest\\a": invalid reference format',
      "the input is quoted as Go's %q does",
    );
    t.notOk(withNewline.error.includes('\n'), 'one line');
  }

  const upperNewline = parseImage('Evil\nName/x');
  t.notOk(upperNewline.ok);
  if (!upperNewline.ok) {
    t.notMatch(upperNewline.error, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/, 'echoed repository text is escaped too');
  }
  const upperRemote = parseImage('foo/Bar\u2028');
  t.ok(
    !upperRemote.ok && upperRemote.error.endsWith('repository name (foo/Bar\\u2028) must be lowercase'),
    'line separators are escaped',
  );

  // as upstream: a bare digest reads as image "sha256" with the hex as its tag
  t.match(
    parseImage(`sha256:${'a'.repeat(64)}`),
    { ok: true, ref: { name: 'docker.io/library/sha256', tag: 'a'.repeat(64) } },
    'a bare digest is image sha256',
  );
  t.match(parseImage('a'.repeat(64).replace(/a/g, 'f')), {
    ok: false,
    kind: 'ErrNameIsIdentifier',
    error: /cannot specify 64-byte hexadecimal strings/,
  });
  t.match(
    parseImage(`nginx@blake3:${'a'.repeat(64)}`),
    { ok: false, kind: 'ErrDigestUnsupported' },
    'an algorithm the kubelet does not link',
  );
  t.match(parseImage(`nginx@sha256:${'a'.repeat(63)}`), {
    ok: false,
    kind: 'ErrDigestInvalidLength',
    error: /invalid checksum digest length$/,
  });
  t.match(parseImage(`nginx@sha512:${'a'.repeat(128)}`), { ok: true }, 'sha512 digests are accepted');

  // the path limit is 255; the domain does not count, but a long full name earns a warning
  const longName = parseImage(`registry.example.com/${'a'.repeat(255)}:v1`);
  t.ok(longName.ok, 'a 255-character path with a domain parses');
  if (longName.ok) t.match(longName.ref.warnings, [/full name 276 characters long exceeds 255/]);
  t.match(parseImage(`registry.example.com/${'a'.repeat(256)}`), { ok: false, kind: 'ErrNameTooLong' });
});
