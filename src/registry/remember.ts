// Bounded per-host memory (challenges, rate limits): pod authors name any host, so a map keyed by
// host must not grow with them. Shared by the client and its sender so the bound is one number.

/** Per-host memory (challenges, rate limits): past this the oldest entry goes. */
export const MAX_REMEMBERED_HOSTS = 1024;

/** Sets key to value as the newest entry; drops the oldest past MAX_REMEMBERED_HOSTS. */
export function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_REMEMBERED_HOSTS) map.delete(map.keys().next().value as string);
}
