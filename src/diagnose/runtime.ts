// What the kubelet and the container runtime (containerd, CRI-O) wrote about a failed pull, turned
// into pullguard's reasons: the cause is known even when the registry cannot be asked now.
// The texts are the runtimes' own (containerd's remotes/docker resolver, CRI-O's containers/image).

import type { Reason } from '../findings.ts';

/**
 * Causes only the node knows, which a registry check cannot see: the node's signature policy refused
 * the image, the kubelet's own pull rate limit refused the pull, the runtime could not inspect the
 * node's images.
 */
export type NodeCause = 'signature-refused' | 'pull-throttled' | 'inspect-failed';
export const NODE_CAUSES: readonly NodeCause[] = ['signature-refused', 'pull-throttled', 'inspect-failed'];

export interface RuntimeCause {
  /** the reason the text shows; `not-found` when the runtime does not say whether tag or repository */
  reason: Reason | 'not-found' | 'never-pull' | NodeCause;
  /** the phrase that decided it, quoted from the text */
  evidence: string;
  /** a host the text names as unreachable, when it names one */
  host?: string;
}

interface Rule {
  reason: RuntimeCause['reason'];
  pattern: RegExp;
}

// Order matters: the most specific texts first ("no match for platform in manifest: not found" is a
// platform problem although it ends in "not found").
const RULES: Rule[] = [
  // kubelet pkg/kubelet/images/image_manager.go evalCRIPullErr: "image pull failed for <image> because
  // the signature validation failed: <cause>" (cri-api ErrSignatureValidationFailed); CRI-O
  // internal/storage/image.go WrapSignatureCRIErrorIfNeeded ("SignatureValidationFailed: …"), whose
  // causes come from containers/image signature/policy_eval.go ("Source image rejected: …")
  {
    reason: 'signature-refused',
    pattern: /because the signature validation failed|SignatureValidationFailed|Source image rejected/i,
  },
  // kubelet pkg/kubelet/images/throttled_puller.go throttledImageService.PullImage: the node's own
  // registryPullQPS/registryBurst, not the registry: "pull QPS exceeded"
  { reason: 'pull-throttled', pattern: /pull QPS exceeded/i },
  // kubelet evalCRIPullErr: "image pull failed for <image> because the registry is unavailable: <cause>"
  // (cri-api ErrRegistryUnavailable); CRI-O server/image_pull.go wraps ECONNREFUSED in it
  { reason: 'registry-unreachable', pattern: /because the registry is unavailable|^RegistryUnavailable\b/i },
  { reason: 'invalid-reference', pattern: /invalid reference format|couldn't parse image (?:reference|name)/i },
  { reason: 'invalid-reference', pattern: /Failed to apply default image tag/i },
  { reason: 'never-pull', pattern: /is not present with pull policy of Never/i },
  // containerd: "no match for platform in manifest: not found"; CRI-O (containers/image):
  // "no image found in manifest list for architecture arm64, variant "v8", OS linux"
  { reason: 'platform-not-found', pattern: /no match for platform in manifest/i },
  { reason: 'platform-not-found', pattern: /no image found in (?:manifest list|image index) for architecture/i },
  // Docker Hub and others: "429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit"
  { reason: 'rate-limited', pattern: /toomanyrequests|429 Too Many Requests|pull rate limit/i },
  // containerd: "pull access denied, repository does not exist or may require authorization";
  // "failed to authorize: failed to fetch (anonymous|oauth) token: unexpected status: 401 Unauthorized"
  {
    reason: 'access-denied',
    pattern: /pull access denied|failed to authorize|failed to fetch (?:anonymous|oauth) token/i,
  },
  // CRI-O: "requested access to the resource is denied", "unauthorized: authentication required"
  {
    reason: 'access-denied',
    pattern:
      /requested access to the resource is denied|unauthorized: authentication required|unauthorized: access to the requested resource|denied: /i,
  },
  { reason: 'access-denied', pattern: /\b40[13] (?:Unauthorized|Forbidden)\b/i },
  // CRI-O: "name unknown: repository name not known to registry"
  { reason: 'repository-not-found', pattern: /name unknown|repository name not known|NAME_UNKNOWN/i },
  // containerd: "failed to resolve reference "…": …: not found"; CRI-O: "manifest unknown"
  { reason: 'not-found', pattern: /manifest unknown|MANIFEST_UNKNOWN|: not found\b|404 Not Found/i },
  {
    reason: 'registry-unreachable',
    pattern:
      /no such host|connection refused|i\/o timeout|no route to host|network is unreachable|connection reset by peer|TLS handshake timeout|x509: |tls: failed to verify|server gave HTTP response to HTTPS client|context deadline exceeded|Client\.Timeout exceeded/i,
  },
  { reason: 'registry-error', pattern: /\b50[0-4] [A-Z][A-Za-z ]+|unexpected status(?: code)?\b/i },
];

/** The cause a kubelet or runtime message shows, or undefined when it shows none ("Back-off pulling image …"). */
export function classifyRuntimeMessage(text: string): RuntimeCause | undefined {
  for (const rule of RULES) {
    const m = rule.pattern.exec(text);
    if (!m) continue;
    const cause: RuntimeCause = { reason: rule.reason, evidence: m[0] };
    if (rule.reason === 'registry-unreachable') {
      // "dial tcp: lookup registry.example.com on 10.96.0.10:53: no such host", "dial tcp 10.0.0.5:443: connect: …"
      const host =
        /lookup ([^\s:]+)(?: on [^\s]+)?: no such host/.exec(text)?.[1] ?? /dial tcp ([^\s:]+:\d+)/.exec(text)?.[1];
      if (host) cause.host = host;
    }
    return cause;
  }
  return undefined;
}

/** Whether pullguard's reason and the runtime's agree (a runtime `not-found` fits any not-found reason). */
export function agrees(runtime: RuntimeCause['reason'], reason: Reason): boolean {
  if (runtime === reason) return true;
  if (runtime === 'not-found')
    return (
      reason === 'tag-not-found' ||
      reason === 'repository-not-found' ||
      reason === 'digest-not-found' ||
      reason === 'manifest-missing' ||
      reason === 'blob-missing'
    );
  // Docker Hub and many registries answer 401 for a repository that does not exist
  if (runtime === 'access-denied') return reason === 'repository-not-found';
  if (runtime === 'repository-not-found') return reason === 'access-denied';
  if (runtime === 'never-pull') return reason === 'unverifiable';
  // The node refused or could not look: the registry's answer says nothing against it.
  if ((NODE_CAUSES as readonly string[]).includes(runtime)) return true;
  return false;
}

/** Words for a runtime cause in a sentence. */
export function describeRuntimeCause(reason: RuntimeCause['reason']): string {
  switch (reason) {
    case 'not-found':
      return 'the image (repository, tag or digest) was not found';
    case 'never-pull':
      return 'the image is not on the node and imagePullPolicy is Never';
    case 'signature-refused':
      return "the node's signature policy refused the image (signature validation failed)";
    case 'pull-throttled':
      return "the kubelet's own pull rate limit (registryPullQPS) refused the pull";
    case 'inspect-failed':
      return 'the container runtime could not inspect the image on the node';
    case 'invalid-reference':
      return 'the image reference does not parse';
    case 'repository-not-found':
      return 'the repository does not exist';
    case 'tag-not-found':
      return 'the tag does not exist';
    case 'digest-not-found':
      return 'the digest does not exist';
    case 'access-denied':
      return 'the registry refused the credentials (or the repository does not exist)';
    case 'platform-not-found':
      return "the image has no build for the node's platform";
    case 'manifest-missing':
      return 'a manifest the tag points to is no longer served';
    case 'blob-missing':
      return 'a config or layer blob of the image is missing';
    case 'blocked':
      return "the node's runtime configuration refuses the image (registries.conf)";
    case 'rate-limited':
      return "the registry's pull rate limit was reached";
    case 'registry-unreachable':
      return 'the registry could not be reached';
    case 'registry-error':
      return 'the registry answered with an error';
    case 'timeout':
      return 'the pull timed out';
    case 'unverifiable':
    case 'not-checked':
      return 'the pull failed for a reason pullguard cannot check';
    case 'available':
      return 'the image is available';
  }
}
