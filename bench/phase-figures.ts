// The table rows of one many-sessions phase, filled target by target from
// its ManySessionsResult. In the standalone mode CPU and memory are the
// whole mode's (its two processes), with the proxy process alone beside them;
// in cluster mode they are the proxy pod process's, with the operator's CPU
// beside them; one proxy pod of several ('pod') has its own figures alone.
import { MiB } from './load.ts';
import type { ManySessionsResult, ProcessCost } from './many-sessions.ts';
import type { Figure } from './report.ts';
import type { TargetName } from './targets.ts';

export type Mode = 'standalone' | 'cluster' | 'pod';

export class PhaseFigures {
  readonly all: Figure[] = [];
  private readonly p99: Figure;
  private readonly cpu: Figure;
  private readonly rss: Figure;
  private readonly pss: Figure;
  private readonly rssPerPair: Figure;
  private readonly besideCpu: Figure | undefined;
  private readonly besideRssPerPair: Figure | undefined;
  private readonly restCpu: Figure | undefined;
  private readonly setup: Figure;
  private readonly retries: Figure;
  private readonly loopDelay: Figure;
  private readonly loopDelayOpening: Figure;

  /** `prefix` starts every id (e.g. `many-1000-`); `title` every title. */
  constructor(
    private readonly prefix: string,
    title: string,
    private readonly mode: Mode,
  ) {
    const row = (id: string, what: string, unit: string) => {
      const figure: Figure = { id: `${prefix}${id}`, title: `${title}: ${what}`, unit, better: 'lower', values: {} };
      this.all.push(figure);
      return figure;
    };
    const whose = mode === 'standalone' ? 'standalone mode, both processes' : 'proxy pod process';
    this.p99 = row('rtt-p99', 'round trip p99', 'µs');
    this.cpu = row('cpu', `CPU (${whose})`, '% of a core');
    this.rss = row('rss', `RSS at the end (${whose})`, 'MiB');
    this.pss = row('pss', `PSS at the end (${whose})`, 'MiB');
    this.rssPerPair = row('rss-per-pair', `RSS added per joined session (${whose})`, 'kB');
    if (mode === 'cluster') {
      this.besideCpu = row('cpu-with-operator', 'CPU (proxy pod and operator)', '% of a core');
      this.restCpu = row('cpu-api-server', "CPU (the test rig's API server and etcd)", '% of a core');
    } else if (mode === 'standalone') {
      this.besideCpu = row('proxy-cpu', 'CPU (proxy process alone)', '% of a core');
      this.besideRssPerPair = row('proxy-rss-per-pair', 'RSS added per joined session (proxy process alone)', 'kB');
    }
    this.setup = row('setup', 'time to open and join all pairs', 's');
    this.retries = row('probe-retries', 'join probes retried', 'probes');
    this.loopDelay = row('loop-delay', 'largest event-loop delay of the proxy process, steady part', 'ms');
    this.loopDelayOpening = row('loop-delay-opening', 'largest event-loop delay of the proxy process, while opening', 'ms');
  }

  /** Fills the target's column; answers a log line and any notes the run deserves. */
  record(name: TargetName, r: ManySessionsResult): { line: string; notes: string[] } {
    const cluster = this.mode !== 'standalone';
    const main = cluster ? r.proxyProcess : r.cost;
    // A forwarder without a control plane is its own "proxy process alone".
    const beside = this.besideCpu === undefined ? undefined : cluster ? r.cost : (r.proxyProcess ?? main);
    this.p99.values[name] = r.rttP99Us;
    this.setup.values[name] = r.openSeconds;
    this.retries.values[name] = r.probeRetries;
    if (main) {
      this.cpu.values[name] = main.cpuPercent;
      this.rss.values[name] = main.rssBytes / MiB;
      this.pss.values[name] = main.pssBytes / MiB;
      this.rssPerPair.values[name] = main.rssAddedPerPairBytes / 1000;
    }
    if (beside && this.besideCpu) {
      this.besideCpu.values[name] = beside.cpuPercent;
      if (this.besideRssPerPair) this.besideRssPerPair.values[name] = beside.rssAddedPerPairBytes / 1000;
    }
    if (this.restCpu && r.restCpuPercent !== undefined) this.restCpu.values[name] = r.restCpuPercent;
    const notes: string[] = [];
    if (r.loopDelayMs) {
      this.loopDelay.values[name] = r.loopDelayMs.steady ?? null;
      this.loopDelayOpening.values[name] = r.loopDelayMs.opening ?? null;
      if (r.loopDelayMs.steady === undefined) notes.push(`${this.loopDelay.title}: not reported by this proxy`);
    }
    if (r.lost > 0) notes.push(`${this.p99.title}, ${name}: ${r.lost} messages were not answered within a second`);
    if (r.onRetries > 0)
      notes.push(`${this.setup.title}, ${name}: ${r.onRetries} /on calls answered request_timed_out and were asked again`);
    if (r.signalsMissed > 0) notes.push(`${this.setup.title}, ${name}: ${r.signalsMissed} device-connected events did not come within 5 s`);

    const ms = (value: number | undefined) => (value === undefined ? 'not reported' : `${value.toFixed(0)} ms`);
    const kB = (c: ProcessCost) => `+${(c.rssAddedPerPairBytes / 1000).toFixed(1)} kB/pair`;
    const line = [
      `${name}: open+join ${r.openSeconds.toFixed(2)} s${r.onSeconds === undefined ? '' : ` (/on ${r.onSeconds.toFixed(2)} s, ${r.onRetries} asked again)`}, ${r.probeRetries} probes retried`,
      ...(r.settleSeconds === undefined ? [] : [`the operator caught up ${r.settleSeconds.toFixed(0)} s later`]),
      `${r.roundTrips} round trips, p99 ${r.rttP99Us.toFixed(0)} µs`,
      ...(main ? [`CPU ${main.cpuPercent.toFixed(1)} %, RSS ${(main.rssBytes / MiB).toFixed(0)} MiB (${kB(main)})`] : []),
      ...(beside && beside !== main
        ? [`${cluster ? 'with the operator' : 'proxy process'}: CPU ${beside.cpuPercent.toFixed(1)} %, ${kB(beside)}`]
        : []),
      ...(r.loopDelayMs ? [`loop delay ${ms(r.loopDelayMs.opening)} opening, ${ms(r.loopDelayMs.steady)} steady`] : []),
    ].join('; ');
    return { line, notes };
  }

  /**
   * Fills the HAProxy column from `figures` measured earlier in the run: the
   * same row of the phase whose ids start with `peerPrefix` (by default this
   * phase's prefix without `cluster-`).
   */
  borrowHaproxy(figures: Figure[], peerPrefix = this.prefix.replace(/^cluster-/, '')): void {
    for (const figure of this.all) {
      const peerId = peerPrefix + figure.id.slice(this.prefix.length);
      const peer = figures.find((f) => f.id === peerId)?.values.haproxy;
      if (peer != null) figure.values.haproxy = peer;
    }
  }
}
