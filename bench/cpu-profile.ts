// Sums a V8 .cpuprofile (node --cpu-prof) per function over a time window:
// self time (samples whose top frame is the function) and total time
// (samples with the function anywhere on the stack), as shares of the busy
// samples (everything but "(idle)").
//
//   npx tsx bench/cpu-profile.ts FILE.cpuprofile [--top=40]
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** `fromUs`/`toUs`: the window on the monotonic clock (process.hrtime in µs), as the profile's timestamps. */
export function summarizeProfile(file: string, options: { fromUs?: number; toUs?: number; top?: number } = {}): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) => {
    const { functionName, url, lineNumber } = n.callFrame;
    const where = url ? ` ${basename(url.split('?')[0] ?? url)}:${lineNumber + 1}` : '';
    return `${functionName || '(anonymous)'}${where}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let t = profile.startTime;
  let busy = 0;
  let idle = 0;
  const from = options.fromUs ?? Number.NEGATIVE_INFINITY;
  const to = options.toUs ?? Number.POSITIVE_INFINITY;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (t < from || t > to) continue;
    const node = byId.get(profile.samples[i] ?? -1);
    if (!node) continue;
    // Weighted by the time to the next sample, as DevTools does.
    const weight = profile.timeDeltas[i + 1] ?? delta;
    if (node.callFrame.functionName === '(idle)') {
      idle += weight;
      continue;
    }
    busy += weight;
    self.set(label(node), (self.get(label(node)) ?? 0) + weight);
    const onStack = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id);
      if (n) onStack.add(label(n));
    }
    for (const l of onStack) total.set(l, (total.get(l) ?? 0) + weight);
  }
  const top = options.top ?? 40;
  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([l, us]) => `${((us / busy) * 100).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms  ${l}`)
      .join('\n');
  return [
    `${basename(file)}: busy ${(busy / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms in the window`,
    '-- self --',
    rows(self),
    '-- total (on the stack) --',
    rows(total),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: cpu-profile.ts FILE.cpuprofile [--top=N]');
  const top = Number(/--top=(\d+)/.exec(process.argv.join(' '))?.[1] ?? 40);
  console.log(summarizeProfile(file, { top }));
}
