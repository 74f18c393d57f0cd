// One load generator of the spread phase (bench/spread.ts), a child process of
// its own: one process cannot hold the sockets of 15,000 pairs under the
// open-file limit, so each proxy pod's pairs are held by a child. It joins the
// pairs of the sessions it is handed, waits for the word to start, runs the
// steady load (1 msg/s per pair) and sends back its round-trip samples.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { AdminEndpoint } from '../operator/proxy-admin-client.ts';
import { closePairs, DeviceAttachments, joinProxyPairs, type OpenedPairs } from './join.ts';
import { steadySessions } from './load.ts';

export type ToLoad =
  | {
      type: 'open';
      host: string;
      devicePort: number;
      admin: AdminEndpoint;
      sessions: Array<{ serial: string; port: number }>;
    }
  | { type: 'steady'; seconds: number };

export type FromLoad =
  | { type: 'opened'; probeRetries: number; signalsMissed: number }
  | { type: 'steady-done'; times: number[]; lost: number; loopDelayMaxMs: number }
  | { type: 'failed'; message: string };

function send(message: FromLoad): void {
  process.send!(message);
}

let attachments: DeviceAttachments | undefined;
let opened: OpenedPairs | undefined;

async function handle(message: ToLoad): Promise<void> {
  if (message.type === 'open') {
    attachments = await DeviceAttachments.watch(message.admin);
    opened = await joinProxyPairs({ sessions: message.sessions, devicePort: message.devicePort, host: message.host, attachments });
    send({ type: 'opened', probeRetries: opened.probeRetries, signalsMissed: opened.signalsMissed });
  } else {
    if (!opened) throw new Error('steady load asked for before the pairs opened');
    // This generator's own stalls, so that the report can tell them from the proxy's.
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const { times, lost } = await steadySessions(opened.pairs, message.seconds);
    loop.disable();
    send({ type: 'steady-done', times, lost, loopDelayMaxMs: loop.max / 1e6 });
  }
}

if (!process.send) throw new Error('bench/spread-load.ts runs as a child of bench/spread.ts (with an IPC channel)');
process.on('message', (message: ToLoad) => {
  handle(message).catch((error: unknown) => send({ type: 'failed', message: (error as Error).stack ?? String(error) }));
});
// The parent gone (or done): the pairs close with this process.
process.on('disconnect', () => {
  if (opened) closePairs(opened.pairs);
  attachments?.close();
  process.exit(0);
});
