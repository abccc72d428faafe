// One error vocabulary: every error a person acts on has a stable code and an exit status, and the
// CLI turns it into one line (plus where the usage is, for bad flags) in one place.
import t from 'tap';
import { BadReview } from '../src/admission/review.ts';
import { exitStatusFor } from '../src/cli/errors.ts';
import { InputError } from '../src/cli/manifests.ts';
import { KubeApiError } from '../src/cluster/api-errors.ts';
import { KubeConfigError } from '../src/cluster/kubeconfig.ts';
import { ConfigError } from '../src/config/schema.ts';
import { DockerConfigError } from '../src/credentials/dockerconfig.ts';
import { CredentialFileError } from '../src/credentials/files.ts';
import { PullguardError, SetupError, UsageError } from '../src/errors.ts';
import { PlatformError } from '../src/platform/platform.ts';
import { ImageReferenceError } from '../src/reference/errors.ts';
import { ChallengeParseError } from '../src/registry/challenge.ts';
import { TransportError } from '../src/registry/transport.ts';
import { BodyRefused } from '../src/server/body.ts';

const all: PullguardError[] = [
  new UsageError('u'),
  new SetupError('s'),
  new ConfigError('file.yaml', ['mode: bad']),
  new InputError('i'),
  new KubeConfigError('k'),
  new CredentialFileError('c'),
  new DockerConfigError('d'),
  new PlatformError('linux/x', 'p'),
  new ImageReferenceError('ErrReferenceInvalidFormat', 'r'),
  new ChallengeParseError('ch'),
  new TransportError('dns', 't'),
  new BadReview('b'),
  new BodyRefused('bad-request', 'br'),
  new BodyRefused('busy', 'bb'),
  new KubeApiError('ka', 409),
];

t.test('every error has its own stable code, its class name, and exit status 2', async (t) => {
  const codes = all.map((e) => e.code);
  t.equal(new Set(codes).size, codes.length, `distinct codes: ${codes.join(', ')}`);
  for (const e of all) {
    t.ok(e instanceof PullguardError && e instanceof Error, e.code);
    t.match(e.code, /^[a-z][a-z-]*$/);
    t.equal(e.name, e.constructor.name);
    t.equal(e.exitStatus, 2);
  }
});

t.test('the CLI prints one line for an error of the vocabulary, and the usage hint for bad flags', async (t) => {
  let err = '';
  const io = { stderr: (s: string) => (err += s) };
  t.equal(exitStatusFor('serve', new SetupError('cannot listen on 0.0.0.0:1: EACCES'), io), 2);
  t.equal(err, 'pullguard serve: cannot listen on 0.0.0.0:1: EACCES\n');
  err = '';
  t.equal(exitStatusFor('check', new UsageError('--output must be text or json, not "xml"'), io), 2);
  t.equal(err, 'pullguard check: --output must be text or json, not "xml"\nRun "pullguard check --help" for usage.\n');
  err = '';
  const read = new KubeApiError('cannot list pods in all namespaces: 403 Forbidden: pods is forbidden', 403);
  t.equal(exitStatusFor('diagnose', read, io), 2, 'diagnose too: its errors are mapped here, not by itself');
  t.equal(err, 'pullguard diagnose: cannot list pods in all namespaces: 403 Forbidden: pods is forbidden\n');
});

t.test('anything else is a bug: it goes up unchanged', async (t) => {
  const bug = new TypeError('x is undefined');
  t.throws(() => exitStatusFor('check', bug, { stderr: () => undefined }), bug);
});
