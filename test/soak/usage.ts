// Resident memory and open descriptors of processes, from /proc, and the
// trend of a series of samples (least squares), for the soak's report.
import { readdirSync, readFileSync } from 'node:fs';

export interface Usage {
  rssMiB: number;
  fds: number;
}

export function usageOf(pid: number): Usage | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
    return { rssMiB: Math.round((rssKb / 1024) * 10) / 10, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

/** Pids whose command line contains every one of `parts`. */
/** The child processes of pid (the standalone mode's proxy runs as one). */
export function childPids(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function pidsWith(...parts: string[]): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (parts.every((p) => cmdline.includes(p)) && !cmdline.startsWith('sh ')) found.push(Number(entry));
    } catch {}
  }
  return found;
}

export interface Trend {
  samples: number;
  mean: number;
  /** Fitted change per 10 minutes. */
  slopePer10Min: number;
  /** Fitted change over the whole window. */
  fittedChange: number;
  /** Standard deviation of the residuals: the noise. */
  noise: number;
  min: number;
  max: number;
  /** Growth beyond noise: fitted change above 3 × noise and above 5 % of the mean (and 2 units). */
  grows: boolean;
}

/** Least-squares trend of (minute, value) points. */
export function trendOf(points: Array<[number, number]>): Trend | undefined {
  const n = points.length;
  if (n < 3) return undefined;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const slope = sxx === 0 ? 0 : sxy / sxx;
  const residuals = points.map(([x, y]) => y - (my + slope * (x - mx)));
  const noise = Math.sqrt(residuals.reduce((s, r) => s + r * r, 0) / Math.max(1, n - 2));
  const span = points[n - 1]![0] - points[0]![0];
  const fittedChange = slope * span;
  const ys = points.map(([, y]) => y);
  const round = (v: number) => Math.round(v * 100) / 100;
  return {
    samples: n,
    mean: round(my),
    slopePer10Min: round(slope * 10),
    fittedChange: round(fittedChange),
    noise: round(noise),
    min: Math.min(...ys),
    max: Math.max(...ys),
    grows: fittedChange > 3 * noise && fittedChange > 0.05 * my && fittedChange > 2,
  };
}
