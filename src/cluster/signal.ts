import type { ObservableMiddleware } from '@kubernetes/client-node';
import { clientNode } from './k8s.ts';

// Per-call client options that put an AbortSignal on the request; the kubeconfig's own middleware
// stays in place ('append'). client-node has no other per-request timeout for the generated APIs.
// The object-param APIs hand options straight to the Observable layer, hence Observable middleware.
export function withSignal(signal: AbortSignal): {
  middleware: ObservableMiddleware[];
  middlewareMergeStrategy: 'append';
} {
  return {
    middleware: [
      {
        pre: (ctx) => {
          ctx.setSignal(signal);
          return new (clientNode().Observable)(Promise.resolve(ctx));
        },
        post: (res) => new (clientNode().Observable)(Promise.resolve(res)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}
