import { Observable, type ObservableMiddleware } from '@kubernetes/client-node';

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
          return new Observable(Promise.resolve(ctx));
        },
        post: (res) => new Observable(Promise.resolve(res)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}
