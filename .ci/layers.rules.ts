// The layers of docs/design.md, lowest first, for .ci/layers.ts. A module may import its own layer
// and the layers below. Every folder and file directly under src/ must be listed; folders that are
// not there yet may be (they are placed before they arrive).
import type { Rules } from './layers.ts';

export const rules: Rules = {
  layers: [
    // vocabulary and rules: no knowledge of registries, clusters or HTTP
    [
      'reference',
      'platform',
      'findings.ts',
      'text.ts',
      'errors.ts',
      'system-errors.ts',
      'cache.ts',
      'abort.ts',
      'deadline.ts',
    ],
    // one concern each
    ['registry', 'credentials', 'workload', 'placement', 'config'],
    // the engine and the policy
    ['preflight', 'policy'],
    // the Kubernetes API: every request to the API server
    ['cluster'],
    // the use case: one pod's check (its credentials, its nodes' platforms, the engine, one deadline)
    ['podcheck'],
    // the faces over it: the AdmissionReview, diagnosing running pods, the watch in `serve`
    ['admission', 'diagnose', 'watch'],
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
