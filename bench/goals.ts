// The goals the benchmark checks (issue 13: 5,000 live sessions per proxy at
// HAProxy's tail latency), each tied to one figure: either the proxy's ratio
// to HAProxy in the same run, or the proxy's own value.
import { type Figure, format, type GoalCheck } from './report.ts';

export interface Goal {
  /** What is asked, as a reader knows it. */
  what: string;
  figure: string;
  /** `ratio`: proxy ÷ HAProxy of the figure; `value`: the proxy's figure itself. */
  measure: 'ratio' | 'value';
  bound: 'at most' | 'at least';
  limit: number;
  /** The limit's unit ('×' for a ratio). */
  unit: string;
  /** Said beside the limit (e.g. the aim beyond the bound). */
  remark?: string;
  /** A figure of the same run said beside the measured value: a floor under the goal's value on this machine. */
  beside?: { figure: string; label: string };
}

const atMost = (what: string, figure: string, limit: number, unit: string): Goal => ({
  what,
  figure,
  measure: unit === '×' ? 'ratio' : 'value',
  bound: 'at most',
  limit,
  unit,
});
const atLeast = (what: string, figure: string, limit: number, unit: string, remark?: string): Goal => ({
  ...atMost(what, figure, limit, unit),
  bound: 'at least',
  ...(remark ? { remark } : {}),
});

/** The table of issue 13, for one mode: `prefix` is the figures' id prefix. */
const manySessions = (prefix: string, label: string): Goal[] => [
  atMost(`${label}1,000 sessions: round-trip p99`, `${prefix}1000-rtt-p99`, 1.2, '×'),
  atMost(`${label}5,000 sessions: round-trip p99`, `${prefix}5000-rtt-p99`, 1.5, '×'),
  atMost(`${label}1,000 sessions: CPU`, `${prefix}1000-cpu`, 1.5, '×'),
  atMost(`${label}5,000 sessions: CPU`, `${prefix}5000-cpu`, 1.5, '×'),
  atMost(`${label}RSS added per joined session (1,000 sessions)`, `${prefix}1000-rss-per-pair`, 15, 'kB'),
  atMost(`${label}RSS added per joined session (5,000 sessions)`, `${prefix}5000-rss-per-pair`, 15, 'kB'),
  atMost(`${label}open and join 1,000 pairs`, `${prefix}1000-setup`, 2, '×'),
  atMost(`${label}longest event-loop stall with 5,000 sessions`, `${prefix}5000-loop-delay`, 20, 'ms'),
];

/**
 * The per-process goals of issue 13 for each proxy pod of the spread phase
 * (`pods` × `perPod` sessions), each pod against HAProxy's phase of `perPod`.
 */
export function spreadGoals(pods: number, perPod: number): Goal[] {
  const sessions = perPod.toLocaleString('en-US');
  return Array.from({ length: pods }, (_, o) => {
    const prefix = `spread-${pods}x${perPod}-pod${o}-`;
    const label = `${pods} pods × ${sessions} sessions, pod ${o}: `;
    return [
      atMost(`${label}round-trip p99`, `${prefix}rtt-p99`, 1.5, '×'),
      atMost(`${label}CPU`, `${prefix}cpu`, 1.5, '×'),
      atMost(`${label}RSS added per joined session`, `${prefix}rss-per-pair`, 15, 'kB'),
      atMost(`${label}longest event-loop stall`, `${prefix}loop-delay`, 20, 'ms'),
    ];
  }).flat();
}

export const GOALS: Goal[] = [
  ...manySessions('many-', ''),
  ...manySessions('cluster-many-', 'cluster: '),
  {
    ...atMost('standalone: /on until the port accepts, p99', 'standalone-on-p99', 5, 'ms'),
    beside: { figure: 'http-floor-p99', label: 'one bare HTTP request between two processes, of the three an /on makes' },
  },
  atMost('cluster: /on until the port accepts, p99', 'cluster-on-p99', 50, 'ms'),
  atLeast('standalone: /on + /off pairs, one caller', 'standalone-on-off-rate', 300, 'pairs/s'),
  {
    ...atLeast('cluster: /on + /off pairs, one caller', 'cluster-on-off-rate', 50, 'pairs/s'),
    beside: { figure: 'cluster-api-floor', label: "a pair's API writes alone" },
  },
  atMost('1,000 sessions listening again after a kill -9 of the proxy, once it is back', 'cluster-restart-from-ready', 2, 's'),
  atLeast('one-stream throughput client→device', 'throughput-up', 0.9, '×', '1.0× the aim'),
  atLeast('one-stream throughput device→client', 'throughput-down', 0.9, '×', '1.0× the aim'),
];

export function checkGoals(figures: Figure[], goals: Goal[] = GOALS): GoalCheck[] {
  const byId = new Map(figures.map((f) => [f.id, f]));
  return goals.map((goal) => {
    const figure = byId.get(goal.figure);
    const unit = goal.unit === '×' ? '×' : ` ${goal.unit}`;
    const wanted = `${goal.bound === 'at most' ? '≤' : '≥'} ${goal.limit}${unit}${goal.remark ? ` (${goal.remark})` : ''}`;
    const proxy = figure?.values.proxy;
    const haproxy = figure?.values.haproxy;
    const value =
      proxy == null ? undefined : goal.measure === 'value' ? proxy : haproxy == null || haproxy === 0 ? undefined : proxy / haproxy;
    if (value === undefined || !Number.isFinite(value)) {
      const measured = !figure ? 'not measured in this run' : proxy == null ? 'not reported' : 'no HAProxy figure in this run';
      return { what: goal.what, wanted, measured, met: undefined };
    }
    const shown =
      goal.measure === 'ratio' ? `${format(value)}× (${format(proxy!)} vs ${format(haproxy!)} ${figure!.unit})` : `${format(value)}${unit}`;
    const context = goal.beside && byId.get(goal.beside.figure)?.values.proxy;
    const measured = context == null ? shown : `${shown} (${goal.beside!.label}: ${format(context)}${unit})`;
    return { what: goal.what, wanted, measured, met: goal.bound === 'at most' ? value <= goal.limit : value >= goal.limit };
  });
}
