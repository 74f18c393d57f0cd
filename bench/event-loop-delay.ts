// The proxy process's largest event-loop delay, read from its own metrics:
// the gauge holds the largest delay since the previous scrape, so one scrape
// at the start of a phase resets it and one at the end reads the phase.
import { request } from '../test/helpers/http.ts';

export const EVENT_LOOP_DELAY_GAUGE = 'cccp_proxy_event_loop_delay_max_seconds';

/** The gauge in milliseconds; undefined when the proxy does not report it (or its metrics do not answer). */
export async function scrapeEventLoopDelayMs(metricsUrl: string): Promise<number | undefined> {
  try {
    const answer = await request<string>(metricsUrl, { timeoutMs: 10_000 });
    if (answer.status !== 200 || typeof answer.body !== 'string') return undefined;
    const line = answer.body
      .split('\n')
      .find((l) => l.startsWith(`${EVENT_LOOP_DELAY_GAUGE} `) || l.startsWith(`${EVENT_LOOP_DELAY_GAUGE}{`));
    const value = Number(line?.trim().split(/\s+/).pop());
    return line === undefined || !Number.isFinite(value) ? undefined : value * 1000;
  } catch {
    return undefined;
  }
}
