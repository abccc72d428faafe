// Kubernetes object names, as the API server validates them: a name that is not one never names an
// object, and must not reach a request path (".." or "a/b" would name another API path).

/** DNS-1123 label: namespaces. */
export function isDnsLabel(name: string): boolean {
  return name.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name);
}

/** DNS-1123 subdomain: Secrets, ServiceAccounts. */
export function isDnsSubdomain(name: string): boolean {
  return (
    name.length <= 253 &&
    name.split('.').every((part) => part.length > 0 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(part))
  );
}
