import t from 'tap';
import { readVectors } from '../helpers/fixtures.ts';
import {
  DockerConfigError,
  UNMARSHAL_ERROR,
  decodeAuthField,
  decodeEntry,
  encodeEntry,
  parseDockerConfigFile,
  parseDockerConfigJSON,
  parseDockercfg,
  type DockerConfigEntry,
} from '../../src/credentials/dockerconfig.ts';

interface Row {
  id: string;
  kind: string;
  input?: string;
  expectError?: boolean;
  expected?: Record<string, unknown>;
  expectedErrorMessage?: string;
  entry?: DockerConfigEntry;
  expectedJSON?: string;
}

const rows = readVectors<Row>('dockerconfig.json');
const toObject = (m: Map<string, DockerConfigEntry>) => Object.fromEntries(m);
const counts: Record<string, number> = {};

for (const row of rows) {
  counts[row.kind] = (counts[row.kind] ?? 0) + 1;
  const input = row.input ?? '';
  switch (row.kind) {
    case 'decodeConfigJSON':
      t.strictSame({ auths: toObject(parseDockerConfigJSON(input)) }, row.expected, row.id);
      break;
    case 'decodeDockercfg':
      t.strictSame(toObject(parseDockercfg(input)), row.expected, row.id);
      break;
    case 'decodeEntry':
      if (row.expectError) {
        // The kubelet discards the whole config on this error, so the partially decoded fields
        // upstream also compares (row.expected) have no counterpart: we throw instead.
        t.throws(() => decodeEntry(JSON.parse(input)), DockerConfigError, row.id);
      } else {
        t.strictSame(decodeEntry(JSON.parse(input)), row.expected, row.id);
      }
      break;
    case 'decodeAuthField':
      if (row.expectError) t.throws(() => decodeAuthField(input), DockerConfigError, row.id);
      else t.strictSame(decodeAuthField(input), row.expected, row.id);
      break;
    case 'encodeEntry':
      t.equal(encodeEntry(row.entry as DockerConfigEntry), row.expectedJSON, row.id);
      break;
    case 'readDockercfgBytes':
    case 'readConfigJSONBytes': {
      const parse = row.kind === 'readDockercfgBytes' ? parseDockercfg : parseDockerConfigJSON;
      if (row.expectError) t.throws(() => parse(input), new DockerConfigError(row.expectedErrorMessage), row.id);
      else t.strictSame(toObject(parse(input)), row.expected, row.id);
      break;
    }
    case 'readConfigFile':
      // Upstream asserts only "no error"; the trailing newline inside the base64 value is kept,
      // as Go keeps it.
      t.strictSame(
        toObject(parseDockerConfigFile(input)),
        { 'http://foo.example.com': { username: 'foo', password: 'bar\n', email: 'foo@example.com' } },
        row.id,
      );
      break;
    default:
      t.fail(`${row.id}: unknown kind ${row.kind}`);
  }
}

t.test('vector file fully used', async (t) => {
  t.equal(rows.length, 22);
  t.strictSame(counts, {
    decodeConfigJSON: 1,
    decodeDockercfg: 1,
    decodeEntry: 5,
    decodeAuthField: 9,
    encodeEntry: 1,
    readDockercfgBytes: 2,
    readConfigJSONBytes: 2,
    readConfigFile: 1,
  });
});

t.test('errors never echo the secret', async (t) => {
  const secret = 'c3VwZXJzZWNyZXQ'; // base64 of "supersecret", no colon
  for (const text of [
    `{"auths":{"r.io":{"auth":"${secret}"}}}`,
    `{"auths":{"r.io":{"auth":"${secret}!"}}}`,
    `{"auths":{"r.io":{"password":"supersecret","auth":"x"}}}`,
    `{"auths":{"r.io":{"password":"supersecret"`,
    `{"r.io":{"password":"supersecret","username":7}}`,
  ]) {
    const err = t.throws(() => parseDockerConfigFile(text)) as Error;
    t.notMatch(err.message, /supersecret|c3VwZXJzZWNyZXQ/);
  }
});

t.test('Go encoding/json details the kubelet inherits', async (t) => {
  t.strictSame(
    toObject(parseDockerConfigJSON('{"Auths":{"r.io":{"UserName":"u","PASSWORD":"p","identitytoken":"x"}}}')),
    { 'r.io': { username: 'u', password: 'p', email: '' } },
    'field names match case-insensitively; unknown fields ignored',
  );
  t.strictSame(
    toObject(parseDockerConfigJSON('{"auths":{"a.io":{"username":"u"}},"auths":{"b.io":{"username":"v"}}}')),
    { 'b.io': { username: 'v', password: '', email: '' } },
    'exact duplicate keys: only the last survives JSON.parse (Go would merge; a documented gap)',
  );
  t.strictSame(
    toObject(
      parseDockerConfigJSON(
        '{"auths":{"a.io":{"username":"u"}},"AUTHS":{"b.io":{"username":"v"},"a.io":{"username":"w"}}}',
      ),
    ),
    { 'a.io': { username: 'w', password: '', email: '' }, 'b.io': { username: 'v', password: '', email: '' } },
    'keys folding to "auths" fill one map, later entries win',
  );
  t.strictSame(toObject(parseDockerConfigJSON('null')), {}, 'null is an empty config');
  t.strictSame(toObject(parseDockerConfigJSON('{"auths":{"r.io":null}}')), {
    'r.io': { username: '', password: '', email: '' },
  });
  t.throws(() => parseDockerConfigJSON('[]'), new DockerConfigError(UNMARSHAL_ERROR));
  t.throws(() => parseDockerConfigJSON('{"auths":{"r.io":{"email":1}}}'), DockerConfigError);
  t.throws(() => parseDockerConfigJSON('{"HttpHeaders":{"a":1}}'), DockerConfigError);
  t.strictSame(decodeAuthField('dTo='), { username: 'u', password: '' });
  t.strictSame(decodeAuthField('Onw='), { username: '', password: '|' });
  t.strictSame(decodeAuthField('dTpwOnE'), { username: 'u', password: 'p:q' }, 'split at the first colon');
  t.throws(() => decodeAuthField('dTpw='), DockerConfigError, 'padding must complete a quantum');
  t.throws(() => decodeAuthField('dTpwO'), DockerConfigError, 'unpadded length 4n+1 is impossible');
  t.equal(
    encodeEntry({ username: 'a<b', password: 'p&q', email: '' }),
    '{"username":"a\\u003cb","password":"p\\u0026q","auth":"YTxiOnAmcQ=="}',
  );
});

t.test('parseDockerConfigFile picks the shape', async (t) => {
  const entry = { username: 'u', password: 'p', email: '' };
  t.strictSame(
    toObject(parseDockerConfigFile('{"auths":{"r.io":{"auth":"dTpw"}}}')),
    { 'r.io': entry },
    'config.json shape',
  );
  t.strictSame(toObject(parseDockerConfigFile('{"r.io":{"auth":"dTpw"}}')), { 'r.io': entry }, 'legacy flat shape');
  t.strictSame(
    toObject(parseDockerConfigFile('{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}')),
    {},
    'config.json with helpers only',
  );
  t.strictSame(toObject(parseDockerConfigFile('{}')), {});
  t.throws(() => parseDockerConfigFile('{'), new DockerConfigError(UNMARSHAL_ERROR));
});
