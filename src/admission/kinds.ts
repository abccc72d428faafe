// What the webhook registers for: the pod-spec kinds (workload/kinds.ts), the subresources that
// carry a whole Pod, and the webhook's names. manifests/ and the tests read these.

/** Subresources reviewed besides the kinds' main resources: ephemeral containers arrive as a whole Pod. */
export const REVIEWED_SUBRESOURCES = [
  { apiGroup: '', resource: 'pods/ephemeralcontainers', operations: ['UPDATE'] },
] as const;

/**
 * The registered name of the default webhook; the per-mode ones are enforce.<name>, warn.<name>
 * and audit.<name>, selected by MODE_LABEL on the namespace and calling /validate/<mode>.
 */
export const WEBHOOK_NAME = 'images.pullguard.io';
export const MODE_LABEL = 'pullguard.io/mode';
