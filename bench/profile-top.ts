// `node bench/profile-top.ts FILE.cpuprofile [N]`: where a CPU profile's time went, as self time per
// function and per area (a package under node_modules, node's internals, pullguard's src, GC, idle),
// in µs per review when the review count is given (REVIEWS=N), else in ms of the whole profile.

import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time (µs) of every profile node, from the sample stream. */
export function selfTimes(profile: Profile): Map<number, number> {
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; the time after it is the next delta.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  return self;
}

export function areaOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : `(native) ${name}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const src = /\/(src|bench|test)\/(.*)$/.exec(url);
  if (src) return `${src[1]}/${src[2]!.split('/')[0]}`;
  return url;
}

export interface Entry {
  name: string;
  us: number;
  share: number;
}

export function summarise(profile: Profile): { totalUs: number; functions: Entry[]; areas: Entry[] } {
  const self = selfTimes(profile);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const short = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench|test)\//, '$1/');
    const key = url ? `${functionName || '(anonymous)'} ${short}:${lineNumber + 1}` : functionName;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const a = areaOf(url, functionName);
    area.set(a, (area.get(a) ?? 0) + us);
    total += us;
  }
  const sorted = (m: Map<string, number>) =>
    [...m].map(([name, us]) => ({ name, us, share: us / total })).sort((a, b) => b.us - a.us);
  return { totalUs: total, functions: sorted(fn), areas: sorted(area) };
}

if (import.meta.main) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node bench/profile-top.ts FILE.cpuprofile [N]\n');
    process.exit(2);
  }
  const reviews = Number(process.env.REVIEWS ?? 0);
  const top = Number(n ?? 25);
  const { totalUs, functions, areas } = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  const unit = reviews ? 'µs/review' : 'ms';
  const value = (us: number) => (reviews ? (us / reviews).toFixed(2) : (us / 1000).toFixed(1));
  const print = (title: string, list: Entry[]) => {
    process.stdout.write(`${title}\n`);
    for (const e of list.slice(0, top))
      process.stdout.write(
        `  ${value(e.us).padStart(9)} ${unit}  ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.name}\n`,
      );
  };
  process.stdout.write(`${file}: ${value(totalUs)} ${unit} sampled\n`);
  print('by area (self time)', areas);
  print('by function (self time)', functions);
}
