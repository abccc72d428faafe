// scratch: the peak RSS of listing the lab's nodes with NodeWatcher (not committed)
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { trackConnections } from '../src/cluster/connections.ts';
import { NodeWatcher } from '../src/cluster/nodes.ts';
const kc = new KubeConfig();
kc.loadFromFile(JSON.parse(readFileSync('/tmp/keeplab.json', 'utf8')).kubeconfig);
trackConnections(kc);
const status = () => {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string) => Math.round(Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1]) / 1024);
  return `rss ${kb('VmRSS')} hwm ${kb('VmHWM')}`;
};
await new Promise((r) => setTimeout(r, 300));
console.log('start', status());
const nw = new NodeWatcher(kc, { watch: false });
const t0 = performance.now();
nw.start();
for (let i = 0; i < 2400 && !nw.ready; i++) await new Promise((r) => setTimeout(r, 50));
console.log('listed in', Math.round(performance.now() - t0), 'ms', status(), 'heapUsed', Math.round(process.memoryUsage().heapUsed / 1048576));
process.exit(0);
