// The layers of docs/design.md, lowest first, for .ci/layers.ts. A module may import its own layer
// and the layers below. Every folder and file directly under src/ must be listed; folders that are
// not there yet may be (they are placed before they arrive).
import type { Rules } from './layers.ts';

export const rules: Rules = {
  layers: [
    // vocabulary and rules: no knowledge of registries, clusters or HTTP
    ['reference', 'platform', 'findings.ts', 'errors.ts', 'system-errors.ts', 'cache.ts', 'abort.ts'],
    // one concern each
    ['registry', 'credentials', 'workload', 'config.ts', 'config-layers.ts'],
    // the engine and the policy
    ['preflight', 'policy'],
    // use cases: the Kubernetes API, one pod's check, the AdmissionReview, diagnosing running pods
    ['cluster', 'admission', 'podcheck', 'diagnose', 'watch'],
    // the HTTP server: fastify, TLS, logs, metrics
    ['server'],
    // the composition root: builds everything from the configuration
    ['app'],
    // flags and commands
    ['cli'],
  ],
  // Imports that break the rule today. Each names the issue that removes it; the check fails once an
  // exception matches no import (or is no longer needed), so remove it with the fix.
  exceptions: [],
};
