// The runtimes' own texts, as the kubelet passes them on in container status and Failed events.
import t from 'tap';
import { agrees, classifyRuntimeMessage } from '../../src/diagnose/runtime.ts';

const CONTAINERD = 'rpc error: code = Unknown desc = failed to pull and unpack image';
const rows: Array<[string, string, string | undefined, string?]> = [
  [
    'containerd: missing tag',
    `rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/nginx:1.99": failed to resolve reference "docker.io/library/nginx:1.99": docker.io/library/nginx:1.99: not found`,
    'not-found',
  ],
  [
    'containerd: Docker Hub denial',
    `${CONTAINERD} "docker.io/library/ngiinx:latest": failed to resolve reference "docker.io/library/ngiinx:latest": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed`,
    'access-denied',
  ],
  [
    'containerd: rate limit',
    `${CONTAINERD} "docker.io/library/nginx:latest": failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/library/nginx/manifests/sha256:0d17: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit.`,
    'rate-limited',
  ],
  [
    'containerd: platform',
    `rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/x:1": no match for platform in manifest: not found`,
    'platform-not-found',
  ],
  [
    'containerd: unknown host',
    `${CONTAINERD} "registry.example.invalid/app:1.0": failed to resolve reference "registry.example.invalid/app:1.0": failed to do request: Head "https://registry.example.invalid/v2/app/manifests/1.0": dial tcp: lookup registry.example.invalid on 10.96.0.10:53: no such host`,
    'registry-unreachable',
    'registry.example.invalid',
  ],
  [
    'containerd: refused token',
    `${CONTAINERD} "private.example.com/app:1": failed to resolve reference "private.example.com/app:1": failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized`,
    'access-denied',
  ],
  [
    'containerd: untrusted certificate',
    `${CONTAINERD} "r.example:5000/a:1": failed to resolve reference "r.example:5000/a:1": failed to do request: Head "https://r.example:5000/v2/a/manifests/1": x509: certificate signed by unknown authority`,
    'registry-unreachable',
  ],
  [
    'containerd: registry down',
    `${CONTAINERD} "r.example/a:1": failed to resolve reference "r.example/a:1": unexpected status from HEAD request to https://r.example/v2/a/manifests/1: 503 Service Unavailable`,
    'registry-error',
  ],
  [
    'kubelet: InvalidImageName',
    `Failed to apply default image tag "Nginx:1.25": couldn't parse image reference "Nginx:1.25": invalid reference format: repository name must be lowercase`,
    'invalid-reference',
  ],
  ['kubelet: ErrImageNeverPull', 'Container image "app:local" is not present with pull policy of Never', 'never-pull'],
  ['kubelet: back-off says nothing', 'Back-off pulling image "nginx:1.99"', undefined],
  [
    'CRI-O: manifest unknown',
    'initializing source docker://quay.io/foo/bar:v9: reading manifest v9 in quay.io/foo/bar: manifest unknown: manifest unknown',
    'not-found',
  ],
  [
    'CRI-O: unauthorized',
    'initializing source docker://quay.io/foo/nope:1: reading manifest 1 in quay.io/foo/nope: unauthorized: access to the requested resource is not authorized',
    'access-denied',
  ],
  [
    'CRI-O: denied',
    'initializing source docker://x:1: reading manifest 1 in docker.io/library/x: requested access to the resource is denied',
    'access-denied',
  ],
  [
    'CRI-O: platform',
    'choosing image instance: no image found in manifest list for architecture arm64, variant "v8", OS linux',
    'platform-not-found',
  ],
  [
    'CRI-O: unknown host',
    'pinging container registry reg.invalid: Get "https://reg.invalid/v2/": dial tcp: lookup reg.invalid: no such host',
    'registry-unreachable',
    'reg.invalid',
  ],
  [
    'CRI-O: rate limit',
    'reading manifest 1 in docker.io/library/x: toomanyrequests: You have reached your pull rate limit.',
    'rate-limited',
  ],
  [
    'CRI-O: name unknown',
    'reading manifest latest in r.example/x: name unknown: repository name not known to registry',
    'repository-not-found',
  ],
  // Today's kubelet and CRI-O (each names its upstream source)
  [
    // kubernetes pkg/kubelet/images/image_manager.go evalCRIPullErr; CRI-O server/image_pull.go (ECONNREFUSED)
    'kubelet+CRI-O: RegistryUnavailable',
    'image pull failed for quay.io/team/app:1.0 because the registry is unavailable: pinging container registry quay.io: Get "https://quay.io/v2/": dial tcp 10.0.0.7:443: connect: connection refused',
    'registry-unreachable',
    '10.0.0.7:443',
  ],
  [
    // evalCRIPullErr; CRI-O internal/storage/image.go WrapSignatureCRIErrorIfNeeded; containers/image
    // signature/policy_eval_signedby.go ("A signature was required, but no signature exists")
    'kubelet+CRI-O: SignatureValidationFailed',
    'image pull failed for quay.io/team/app:1.0 because the signature validation failed: verifying signatures: SignatureValidationFailed: Source image rejected: A signature was required, but no signature exists',
    'signature-refused',
  ],
  // kubernetes pkg/kubelet/images/throttled_puller.go: the kubelet's registryPullQPS
  ['kubelet: pull QPS exceeded', 'pull QPS exceeded', 'pull-throttled'],
];

for (const [name, text, reason, host] of rows) {
  t.test(name, async (t) => {
    const cause = classifyRuntimeMessage(text);
    t.equal(cause?.reason, reason);
    if (reason) t.ok(text.includes(cause!.evidence), 'the evidence is quoted from the text');
    if (host) t.equal(cause?.host, host);
  });
}

t.test('agreement between the runtime and pullguard', async (t) => {
  t.ok(agrees('not-found', 'tag-not-found'));
  t.ok(agrees('not-found', 'repository-not-found'));
  t.ok(agrees('access-denied', 'repository-not-found'), 'Docker Hub answers 401 for a missing repository');
  t.notOk(agrees('not-found', 'access-denied'));
  t.notOk(agrees('rate-limited', 'tag-not-found'));
});
