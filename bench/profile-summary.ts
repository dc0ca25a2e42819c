// Summarises a V8 .cpuprofile: self time by package (or Parley file) and the hottest functions.
// node --import tsx bench/profile-summary.ts <file.cpuprofile>
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const profile = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const self = new Map<number, number>();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byNode = new Map(profile.nodes.map((n) => [n.id, n]));

const where = (url: string) => {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.includes('/src/')) return `parley ${url.slice(url.indexOf('/src/') + 1)}`;
  if (url.startsWith('node:')) return url;
  return url ? 'other' : '(native / idle / gc)';
};
const groups = new Map<string, number>();
const functions = new Map<string, number>();
for (const [id, time] of self) {
  const frame = byNode.get(id)!.callFrame;
  const group = where(frame.url);
  groups.set(group, (groups.get(group) ?? 0) + time);
  const fn = `${frame.functionName || '(anonymous)'} ${group}:${frame.lineNumber + 1}`;
  functions.set(fn, (functions.get(fn) ?? 0) + time);
}
const show = (map: Map<string, number>, n: number) =>
  [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, time]) => `${((time / total) * 100).toFixed(1).padStart(5)}%  ${name}`)
    .join('\n');
console.log(`self time by package (${(total / 1e6).toFixed(1)} s sampled)\n${show(groups, 15)}\n\nhottest functions\n${show(functions, 20)}`);
