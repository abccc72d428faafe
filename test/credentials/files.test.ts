// Docker config files read from disk: the node's files as one keyring (keyringFromFiles) and the
// CLI's credential stores (readStoreFiles). Both read the same files, so they agree on what a file
// holds and say the same thing, word for word, about one they cannot use.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialFileError, keyringFromFiles } from '../../src/credentials/files.ts';
import { readStoreFiles } from '../../src/credentials/stores.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullguard-files-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const b64 = (s: string) => Buffer.from(s).toString('base64');
function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const auths = file('auths.json', { auths: { 'r.example': { auth: b64('ann:pw-a') } } });
const legacy = file('legacy.json', { 'r.example': { auth: b64('bob:pw-b') } });
const helpers = file('helpers.json', {
  auths: { 'q.example': { auth: b64('cat:pw-c') } },
  credsStore: 'desktop',
  credHelpers: { 'gcr.io': 'gcloud', 'empty.example': '', 'number.example': 7 },
});
const invalid = file('invalid.json', '{"auths": ');
const badEntry = file('bad-entry.json', { auths: { 'r.example': { auth: 'not base64!' } } });
const onlyNull = file('null.json', 'null');
const missing = join(dir, 'missing.json');
const underFile = join(auths, 'config.json');
mkdirSync(join(dir, 'folder.json'));
const folder = join(dir, 'folder.json');

const users = (creds: { username: string; source: string }[]) => creds.map((c) => `${c.username} ${c.source}`);

t.test('keyringFromFiles: every file in order, either shape, into one keyring', async (t) => {
  const keyring = keyringFromFiles([auths, legacy, helpers]);
  t.same(users(keyring.lookup('r.example/app')), [`ann file ${auths}`, `bob file ${legacy}`]);
  t.same(users(keyring.lookup('q.example/app')), [`cat file ${helpers}`]);
  t.same(keyringFromFiles([onlyNull]).lookup('r.example/app'), [], 'a file holding only null is an empty config');
});

t.test('keyringFromFiles: a file it cannot read or parse is an error that names it and the setting', async (t) => {
  const cases: [string, string][] = [
    [
      missing,
      `cannot read docker config ${missing}: no such file (check --docker-config or credentials.nodeDockerConfigs)`,
    ],
    [
      folder,
      `cannot read docker config ${folder}: it is a folder, not a file (check --docker-config or credentials.nodeDockerConfigs)`,
    ],
    [invalid, `docker config ${invalid} is not valid JSON in the config.json or .dockercfg format`],
    [badEntry, `docker config ${badEntry} is not valid JSON in the config.json or .dockercfg format`],
  ];
  for (const [path, message] of cases) {
    const err = t.throws(() => keyringFromFiles([auths, path])) as Error;
    t.ok(err instanceof CredentialFileError, path);
    t.equal(err.message, message);
  }
});

t.test('readStoreFiles: one store per file, with its keyring and its helpers', async (t) => {
  const { stores, skipped } = readStoreFiles([auths, helpers, legacy], true);
  t.same(skipped, []);
  t.same(
    stores.map((s) => s.file),
    [auths, helpers, legacy],
  );
  t.same(users(stores[0]!.keyring.lookup('r.example/app')), [`ann file ${auths}`]);
  t.same(stores[0]!.keyring.lookup('q.example/app'), [], 'each store has only its own file');
  t.same(users(stores[1]!.keyring.lookup('q.example/app')), [`cat file ${helpers}`]);
  t.same(stores[1]!.credHelpers, { 'gcr.io': 'gcloud' }, 'empty and non-string helper names are ignored');
  t.equal(stores[1]!.credsStore, 'desktop');
  t.same(stores[0]!.credHelpers, {});
  t.notOk('credsStore' in stores[0]!, 'no credsStore unless the file names one');
  t.same(users(stores[2]!.keyring.lookup('r.example/app')), [`bob file ${legacy}`]);

  // docker's decoder, as the kubelet's, reads a file holding only `null` as an empty config
  const [none] = readStoreFiles([onlyNull], true).stores;
  t.same([none!.file, none!.credHelpers, 'credsStore' in none!], [onlyNull, {}, false], 'null: an empty store');
  t.same(none!.keyring.lookup('r.example/app'), []);

  const empty = file('empty-store.json', { credsStore: '', credHelpers: 'gcloud' });
  const [s] = readStoreFiles([empty], true).stores;
  t.same([s!.credHelpers, 'credsStore' in s!], [{}, false], 'an empty credsStore and a non-object credHelpers: none');
});

t.test('readStoreFiles, explicit files: a file it cannot use is an error that names it and the flag', async (t) => {
  const cases: [string, string][] = [
    [missing, `cannot read docker config ${missing}: no such file (check --docker-config)`],
    [
      underFile,
      `cannot read docker config ${underFile}: a part of the path is a file, not a folder (check --docker-config)`,
    ],
    [folder, `cannot read docker config ${folder}: it is a folder, not a file (check --docker-config)`],
    [invalid, `docker config ${invalid} is not valid JSON in the config.json or .dockercfg format`],
    [badEntry, `docker config ${badEntry} is not valid JSON in the config.json or .dockercfg format`],
  ];
  for (const [path, message] of cases) {
    const err = t.throws(() => readStoreFiles([auths, path], true)) as Error;
    t.ok(err instanceof CredentialFileError, path);
    t.equal(err.message, message);
  }
});

t.test('readStoreFiles, default files: missing ones are passed over, unusable ones reported', async (t) => {
  const { stores, skipped } = readStoreFiles([missing, underFile, folder, invalid, badEntry, onlyNull, auths], false);
  t.same(
    stores.map((s) => s.file),
    [onlyNull, auths],
  );
  t.same(skipped, [
    `${folder}: cannot read it: it is a folder, not a file`,
    `docker config ${invalid} is not valid JSON in the config.json or .dockercfg format`,
    `docker config ${badEntry} is not valid JSON in the config.json or .dockercfg format`,
  ]);
});
