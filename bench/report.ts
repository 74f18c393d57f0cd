// The benchmark's results as JSON and as a markdown table, each figure with
// its ratio to HAProxy measured in the same run, then the goals met or not.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TargetName } from './targets.ts';

export interface Figure {
  id: string;
  title: string;
  unit: string;
  /** Which way is better, so a reader knows what a ratio above 1 means. */
  better: 'higher' | 'lower';
  values: Partial<Record<TargetName, number | null>>;
  note?: string;
}

/** One goal of bench/goals.ts against this run's figure. */
export interface GoalCheck {
  what: string;
  wanted: string;
  measured: string;
  /** Undefined when the figure was not measured in this run. */
  met: boolean | undefined;
}

export interface Results {
  startedAt: string;
  durationSeconds: number;
  machine: Record<string, string | number>;
  options: Record<string, unknown>;
  figures: Figure[];
  notes: string[];
  goals: GoalCheck[];
}

const COLUMNS: TargetName[] = ['proxy', 'haproxy', 'node', 'socat', 'direct'];

function ratio(value: number | null | undefined, reference: number | null | undefined): number | null {
  if (value == null || reference == null || reference === 0 || !Number.isFinite(value) || !Number.isFinite(reference)) return null;
  return value / reference;
}

export function format(value: number | null | undefined): string {
  if (value == null || !Number.isFinite(value)) return '–';
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function withRatios(
  results: Results,
): Results & { figures: Array<Figure & { ratioToHaproxy: Partial<Record<TargetName, number | null>> }> } {
  return {
    ...results,
    figures: results.figures.map((f) => ({
      ...f,
      ratioToHaproxy: Object.fromEntries(COLUMNS.filter((t) => t in f.values).map((t) => [t, ratio(f.values[t], f.values.haproxy)])),
    })),
  };
}

export function markdown(results: Results): string {
  const lines = [
    `# Benchmark: proxy vs HAProxy vs a bare Node forwarder vs socat vs direct (loopback)`,
    '',
    `Run ${results.startedAt}, ${Math.round(results.durationSeconds)} s. Machine: ${Object.entries(results.machine)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
    '',
    `Options: ${Object.entries(results.options)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(', ')}.`,
    '',
    '| figure | unit | better | proxy | haproxy | node | socat | direct | proxy ÷ haproxy | node ÷ haproxy | socat ÷ haproxy |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const f of results.figures) {
    const cells = COLUMNS.map((t) => format(f.values[t]));
    lines.push(
      `| ${f.title}${f.note ? ` (${f.note})` : ''} | ${f.unit} | ${f.better} | ${cells.join(' | ')} | ${format(ratio(f.values.proxy, f.values.haproxy))} | ${format(ratio(f.values.node, f.values.haproxy))} | ${format(ratio(f.values.socat, f.values.haproxy))} |`,
    );
  }
  if (results.notes.length > 0) lines.push('', ...results.notes.map((n) => `- ${n}`));
  if (results.goals.length > 0) {
    lines.push('', '## Goals', '', '| goal | wanted | measured | met |', '| --- | --- | --- | --- |');
    for (const g of results.goals) {
      lines.push(`| ${g.what} | ${g.wanted} | ${g.measured} | ${g.met === undefined ? '–' : g.met ? 'met' : 'not met'} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function write(results: Results, jsonPath: string, mdPath: string): void {
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, `${JSON.stringify(withRatios(results), null, 2)}\n`);
  writeFileSync(mdPath, markdown(results));
}
