// What a flood does to the logs of the standalone mode at the default level:
// 10,000 clients refused by a whitelist, 10,000 registrations replacing one
// serial's device, and 2,000 Control API requests without a token (with a
// token-like query parameter) produce a bounded number of lines, every event
// is still counted, and neither the query nor the token reaches the log.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FULL_LINES_PER_INTERVAL } from '../../common/log-summary.ts';
import { connect, freePort, Received, sleep } from '../helpers/net.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('log volume');

const REFUSED = 10_000;
const REGISTRATIONS = 10_000;
const UNAUTHENTICATED = 2_000;
const SUMMARY_S = 10;
const TOKEN = 'log-volume-token-0123456789';
/**
 * Messages a flood can cause: refused clients, registrations, device connects
 * and disconnects, refused Control API requests, and the connection limits'
 * own line. Each writes at most FULL_LINES_PER_INTERVAL lines and one summary
 * per interval.
 */
const FLOODABLE_MESSAGES = 6;
/** Lines that are not part of the flood: sessions listening, the summaries' flush at stop, and the stop itself. */
const OTHER_LINES = 30;

let app: RunningStandalone | undefined;

test.after(async () => {
  await app?.stop();
});

function lines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function inBatches(total: number, batch: number, one: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < total; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, total - i) }, (_, j) => one(i + j).catch(() => undefined)));
  }
}

test(`${REFUSED.toLocaleString('en')} refused clients, ${REGISTRATIONS.toLocaleString('en')} registrations and ${UNAUTHENTICATED.toLocaleString('en')} unauthenticated requests write a bounded number of lines, with every event counted`, async () => {
  const healthPort = await freePort();
  app = await startStandalone({
    rangeSize: 4,
    env: {
      CCCP_LOG_LEVEL: 'info',
      CCCP_LOG_SUMMARY_S: String(SUMMARY_S),
      CCCP_CONTROL_TOKENS: TOKEN,
      CCCP_PROXY_HEALTH_PORT: String(healthPort),
    },
  });
  const auth = { token: TOKEN };
  const whitelisted = await app.call('/on?serial=LOG-WL&persistent=true&ip_whitelist=10.9.9.9', auth);
  const replaced = await app.call('/on?serial=LOG-REG&persistent=true', auth);
  assert.is(whitelisted.status, 200);
  assert.is(replaced.status, 200);
  const refusedPort = (whitelisted.body as { port: number }).port;
  const before = app.process.output().length;
  const started = Date.now();

  await inBatches(REFUSED, 250, async () => {
    const socket = await connect(refusedPort);
    await new Received(socket).untilClosed(10_000);
    socket.destroy();
  });
  await inBatches(REGISTRATIONS, 100, async (i) => {
    const socket: net.Socket = await connect(app!.devicePort);
    socket.on('error', () => {});
    socket.write(`LOG-REG\r${i}`);
    // Held briefly, so most are replaced by the next one rather than closing first.
    await sleep(20);
    socket.destroy();
  });
  await inBatches(UNAUTHENTICATED, 50, async () => {
    const answer = await app!.call(`/on?serial=LOG-X&token=LEAKED-SECRET&pad=${'q'.repeat(8000)}`);
    assert.is(answer.status, 401);
  });
  const floodSeconds = (Date.now() - started) / 1000;
  const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
  // Stopping flushes the summaries still open.
  assert.is(await app.stop(), 0);
  const written = lines(app.process.output().slice(before));
  app = undefined;

  const windows = Math.floor(floodSeconds / SUMMARY_S) + 1;
  const bound = FLOODABLE_MESSAGES * (FULL_LINES_PER_INTERVAL + 1) * windows + OTHER_LINES;
  const byMessage = new Map<string, number>();
  for (const line of written)
    byMessage.set(String(line.msg).replace(/^\d+ more /, '… '), (byMessage.get(String(line.msg).replace(/^\d+ more /, '… ')) ?? 0) + 1);
  console.log(
    `  ${written.length} lines in ${floodSeconds.toFixed(1)} s (bound ${bound}): ${[...byMessage].map(([m, n]) => `${m}: ${n}`).join('; ')}`,
  );
  assert.ok(written.length <= bound, `${written.length} lines, more than ${bound}`);

  // Nothing is lost: the full lines plus the summaries' counts make up every refusal.
  const refusals =
    written.filter((l) => l.msg === 'client refused by whitelist').length +
    written.filter((l) => l.summary === 'client refused by whitelist').reduce((n, l) => n + Number(l.count), 0);
  assert.is(refusals, REFUSED);
  assert.match(metrics, new RegExp(`^cccp_proxy_clients_refused_total ${REFUSED}$`, 'm'));
  assert.match(metrics, new RegExp(`^cccp_proxy_registrations_total ${REGISTRATIONS}$`, 'm'));
  const text = app === undefined ? written.map((l) => JSON.stringify(l)).join('\n') : '';
  assert.not.match(text, /LEAKED-SECRET/, 'a token-like parameter reached the log');
  assert.not.match(text, /qqqq/, 'a query string reached the log');
});

test.run();
