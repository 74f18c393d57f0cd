// Monitoring under test: the chart's dashboard and alert rules, the README's
// scrape config, and a real Prometheus (Debian's package, installed by
// test/setup/install-prometheus.sh) run with its own config and data directory.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort, waitFor } from './net.ts';
import { type Started, startProcess } from './processes.ts';

export const dashboardFile = fileURLToPath(new URL('../../helm/cccp-proxy/dashboards/cccp-proxy.json', import.meta.url));
export const scrapeConfigFile = fileURLToPath(new URL('../../docs/monitoring/prometheus-scrape-config.yaml', import.meta.url));

export interface DashboardTarget {
  refId: string;
  expr: string;
  legendFormat?: string;
  instant?: boolean;
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: unknown;
  targets: DashboardTarget[];
  fieldConfig?: { defaults?: { unit?: string; custom?: unknown } };
  options?: unknown;
}

export interface DashboardJson {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: Array<{ name: string }> };
  panels: DashboardPanel[];
}

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A dashboard query with Grafana's variables replaced, as Grafana would send it. */
export function resolveVariables(expr: string, vars: { namespace: string; rateInterval: string }): string {
  return expr.replaceAll('$namespace', vars.namespace).replaceAll('$__rate_interval', vars.rateInterval);
}

/**
 * The expression with `bool` after every top-level comparison, so that it
 * returns its series with 0 or 1 instead of only those beyond the threshold:
 * proof that every part of an alert finds data even while it does not fire.
 */
export function withBoolComparisons(expr: string): string {
  let out = '';
  let braces = 0;
  let quote: string | undefined;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i]!;
    out += c;
    if (quote) {
      if (c === '\\') out += expr[++i] ?? '';
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if (c === '{') braces++;
    else if (c === '}') braces--;
    else if (braces === 0 && (c === '>' || c === '<' || ((c === '=' || c === '!') && expr[i + 1] === '='))) {
      if (expr[i + 1] === '=') out += expr[++i];
      out += ' bool';
    }
  }
  return out;
}

/** The cccp_* metric names and `up` an expression reads. */
export function metricNames(expr: string): string[] {
  const withoutMatchers = expr.replace(/\{[^}]*\}/g, '{}');
  return [...new Set([...withoutMatchers.matchAll(/\b(cccp_[a-z0-9_]+|up)\b/g)].map((m) => m[1]!))];
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PromRangeSeries {
  metric: Record<string, string>;
  values: Array<[number, string]>;
}

export interface ActiveAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

export class TestPrometheus {
  private constructor(
    private readonly process: Started,
    readonly url: string,
    private readonly dir: string,
  ) {}

  /** Starts Prometheus with these scrape configs and rule files (written as given), on a free loopback port. */
  static async start(options: {
    scrapeConfigs: object[];
    rules: object;
    scrapeInterval: string;
    evaluationInterval: string;
  }): Promise<TestPrometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'cccp-prometheus-'));
    const rulesFile = join(dir, 'rules.yaml');
    writeFileSync(rulesFile, stringify(options.rules));
    const configFile = join(dir, 'prometheus.yaml');
    writeFileSync(
      configFile,
      stringify({
        global: {
          scrape_interval: options.scrapeInterval,
          scrape_timeout: options.scrapeInterval,
          evaluation_interval: options.evaluationInterval,
        },
        rule_files: [rulesFile],
        scrape_configs: options.scrapeConfigs,
      }),
    );
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const started = await startProcess(
      'prometheus',
      [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { ready: /Server is ready to receive web requests/, timeoutMs: 20_000 },
    ).catch((err: unknown) => {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    });
    const prometheus = new TestPrometheus(started, url, dir);
    try {
      await waitFor(async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true, 20_000, 'Prometheus to be ready');
    } catch (err) {
      await prometheus.stop();
      throw new Error(`${(err as Error).message}; output:\n${started.output().slice(-2000)}`);
    }
    return prometheus;
  }

  get rulesFile(): string {
    return join(this.dir, 'rules.yaml');
  }

  output(): string {
    return this.process.output();
  }

  private async api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
    const res = await fetch(`${this.url}/api/v1/${path}?${new URLSearchParams(params)}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${path} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  }

  async query(expr: string): Promise<PromSample[]> {
    const data = await this.api<{ resultType: string; result: PromSample[] }>('query', { query: expr });
    if (data.resultType !== 'vector') throw new Error(`${expr} answered a ${data.resultType}, not a vector`);
    return data.result;
  }

  async queryRange(expr: string, start: number, end: number, step: number): Promise<PromRangeSeries[]> {
    const data = await this.api<{ result: PromRangeSeries[] }>('query_range', {
      query: expr,
      start: String(start),
      end: String(end),
      step: String(step),
    });
    return data.result;
  }

  async alerts(): Promise<ActiveAlert[]> {
    return (await this.api<{ alerts: ActiveAlert[] }>('alerts')).alerts;
  }

  async targets(): Promise<Array<{ labels: Record<string, string>; health: string; lastError: string }>> {
    return (await this.api<{ activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }> }>('targets'))
      .activeTargets;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function promtool(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('promtool', args, { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
