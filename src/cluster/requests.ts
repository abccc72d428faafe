// Requests to the API server, counted by verb and resource: the load pullguard puts on its control
// plane (pullguard_api_requests_total). Every request, client-node's generated APIs and
// list-watch.ts's own GETs alike, asks the KubeConfig to authenticate it once, so that is where it is
// counted: one wrapper per loaded KubeConfig (kubeconfig.ts installs it), no call site to forget.
import type { KubeConfig, RequestContext } from '@kubernetes/client-node';

/** count per `verb\u0000resource` */
export type ApiRequestCounts = ReadonlyMap<string, number>;

const counted = new WeakMap<KubeConfig, Map<string, number>>();

/** Counts every request the KubeConfig authenticates from now on. */
export function countRequests(kc: KubeConfig): void {
  if (counted.has(kc)) return;
  const counts = new Map<string, number>();
  counted.set(kc, counts);
  const apply = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = (ctx: RequestContext) => {
    const { verb, resource } = requestLabels(ctx.getHttpMethod(), ctx.getUrl());
    const key = `${verb}\u0000${resource}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    return apply(ctx);
  };
}

/** The counts so far (empty for a KubeConfig not counted). */
export function requestCounts(kc: KubeConfig): ApiRequestCounts {
  return counted.get(kc) ?? new Map();
}

const VERBS: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };

/**
 * The API server's own words for a request (as its apiserver_request_total has them): verb
 * get/list/watch/create/update/patch/delete, and the resource with its subresource (`pods/status`).
 * Paths: /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]] and /apis/GROUP/VERSION/… the same way.
 */
export function requestLabels(method: string, url: string): { verb: string; resource: string } {
  let path: string[];
  let query: URLSearchParams;
  try {
    const u = new URL(url);
    path = u.pathname.split('/').filter(Boolean);
    query = u.searchParams;
  } catch {
    return { verb: method.toLowerCase(), resource: 'other' };
  }
  const rest = path[0] === 'api' ? path.slice(2) : path[0] === 'apis' ? path.slice(3) : undefined;
  if (!rest || rest.length === 0) return { verb: method.toLowerCase(), resource: 'other' };
  // `namespaces/NS/…` names a namespaced resource; `namespaces` or `namespaces/NS` alone is the namespace itself
  const parts = rest[0] === 'namespaces' && rest.length > 2 ? rest.slice(2) : rest;
  const [resource = 'other', name, sub] = parts;
  const m = method.toUpperCase();
  const verb =
    m === 'GET'
      ? query.get('watch') === 'true' || query.get('watch') === '1'
        ? 'watch'
        : name === undefined
          ? 'list'
          : 'get'
      : (VERBS[m] ?? m.toLowerCase());
  return { verb, resource: sub ? `${resource}/${sub}` : resource };
}
