// Control-plane figures: how long /on takes until the session's port accepts
// a connection, how many /on + /off pairs per second one caller gets, and (in
// cluster mode) how long the sessions take to listen again after the proxy
// pod is killed.
import http from 'node:http';
import net from 'node:net';
import type { ControlCall } from './join.ts';
import { percentile } from './load.ts';

/** No answer within this long fails the call. */
const CALL_TIMEOUT_MS = 30_000;

/**
 * Control API calls as a lean client makes them: Node's http client over
 * kept-alive connections. Not fetch: the bench is the caller of every /on
 * it times, and with fetch its own scavenges (6–12 ms each, about 3 MB of
 * fetch's short-lived objects copied every half second) were the slowest
 * /on calls of a run. The answer is parsed as JSON when it is JSON.
 */
export function controlClient(baseUrl: string): { call: ControlCall; close(): void } {
  const agent = new http.Agent({ keepAlive: true });
  const call: ControlCall = (path) =>
    new Promise((resolve, reject) => {
      const request = http.get(`${baseUrl}${path}`, { agent }, (answer) => {
        let text = '';
        answer.setEncoding('utf8');
        answer.on('data', (chunk: string) => (text += chunk));
        answer.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({ status: answer.statusCode ?? 0, body });
        });
        answer.on('error', reject);
      });
      request.setTimeout(CALL_TIMEOUT_MS, () => request.destroy(new Error(`no answer to ${path} within ${CALL_TIMEOUT_MS} ms`)));
      request.on('error', reject);
    });
  return { call, close: () => agent.destroy() };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface OnLatency {
  p50Ms: number;
  p99Ms: number;
  count: number;
}

/** Sequential /on calls, each timed until its port accepts a connection, each session turned off before the next call. */
export async function onToListening(call: ControlCall, count: number, prefix: string): Promise<OnLatency> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const answer = await call(`/on?serial=${prefix}-${i}&persistent=true`);
    if (answer.status !== 200) throw new Error(`/on answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    const { port } = answer.body as { port: number };
    const deadline = started + 10_000;
    while (!(await accepts(port))) {
      if (performance.now() > deadline) throw new Error(`port ${port} did not accept within 10 s of /on`);
      await new Promise((r) => setTimeout(r, 1));
    }
    times.push(performance.now() - started);
    await call(`/off?serial=${prefix}-${i}`);
  }
  times.sort((a, b) => a - b);
  return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), count };
}

/** /on then /off for a fresh serial, one pair after another, for `seconds`. */
export async function onOffPairsPerSecond(call: ControlCall, seconds: number, prefix: string): Promise<number> {
  const started = performance.now();
  let pairs = 0;
  while (performance.now() - started < seconds * 1000) {
    const serial = `${prefix}-${pairs}`;
    const on = await call(`/on?serial=${serial}`);
    if (on.status !== 200) throw new Error(`/on answered ${on.status}: ${JSON.stringify(on.body)}`);
    const off = await call(`/off?serial=${serial}`);
    if (off.status !== 200) throw new Error(`/off answered ${off.status}: ${JSON.stringify(off.body)}`);
    pairs++;
  }
  return pairs / ((performance.now() - started) / 1000);
}
