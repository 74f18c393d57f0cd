// CPU time and resident memory of a set of processes, from /proc. A forking
// server (socat) is measured with all its children.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

export interface Usage {
  /** user + system CPU seconds consumed so far. */
  cpuSeconds: number;
  rssBytes: number;
  /** Proportional set size: shared pages split among the processes sharing them (what a forking server really costs). */
  pssBytes: number;
  processes: number;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Processes whose executable (their first argument) lies in `dir`, e.g. the test rig's etcd and kube-apiserver. */
export function processesRunFrom(dir: string): number[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv0 = read(`/proc/${entry}/cmdline`)?.split('\0')[0];
    if (argv0?.startsWith(prefix)) pids.push(Number(entry));
  }
  return pids;
}

/** The pid and all its descendants. */
export function processTree(root: number): number[] {
  const found = [root];
  for (let i = 0; i < found.length; i++) {
    const pid = found[i]!;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      const children = read(`/proc/${pid}/task/${tid}/children`);
      if (children) found.push(...children.trim().split(/\s+/).filter(Boolean).map(Number));
    }
  }
  return found;
}

export function usageOf(pids: number[]): Usage {
  let ticks = 0;
  let rssKb = 0;
  let pssKb = 0;
  let processes = 0;
  for (const pid of pids) {
    const stat = read(`/proc/${pid}/stat`);
    const status = read(`/proc/${pid}/status`);
    if (!stat || !status) continue;
    // Fields after the command name, which may contain spaces: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
    rssKb += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
    pssKb += Number(/^Pss:\s+(\d+) kB/m.exec(read(`/proc/${pid}/smaps_rollup`) ?? '')?.[1] ?? 0);
    processes++;
  }
  return { cpuSeconds: ticks / TICKS_PER_SECOND, rssBytes: rssKb * 1024, pssBytes: pssKb * 1024, processes };
}
