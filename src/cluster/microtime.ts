/**
 * A MicroTime (Lease renewTime, events.k8s.io eventTime) as the API server parses it: six fraction
 * digits. client-node would send a Date with three, which the API server refuses with a 400.
 */
export function microTime(d: Date): Date {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}
