// iperf (version 2) through one session of the standalone mode, each way.
//
// iperf3 cannot be used: it opens a control connection and then a data
// connection to the same port, and a session admits one client at a time
// (a newer client replaces the older), so its data connection closes its own
// control connection ("control socket has closed unexpectedly"). iperf 2
// carries a test, including the reverse one (-R), on one TCP connection.
// iperf cannot send a serial, so a relay registers at the device port for the
// iperf server (DeviceRelay).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceRelay, requirePrograms } from '../helpers/interop.ts';
import { freePort, listeningPorts, waitFor } from '../helpers/net.ts';
import { type Started as Program, runProgram, startProcess } from '../helpers/processes.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('interop: iperf through a session');
const SECONDS = 2;

let app: RunningStandalone | undefined;
let server: Program | undefined;
let serverPort = 0;
const relays: DeviceRelay[] = [];
let startError: unknown;

test.before(async () => {
  try {
    requirePrograms(['iperf']);
    app = await startStandalone();
    serverPort = await freePort();
    // -y C: one CSV line per finished test, with the byte count.
    server = await startProcess('iperf', ['-s', '-B', '127.0.0.1', '-p', String(serverPort), '-y', 'C']);
    // A probe connection would count as a test in iperf's output: look at the socket table instead.
    await waitFor(() => listeningPorts().has(serverPort), 5000, 'the iperf server to listen');
  } catch (err) {
    startError = err;
  }
});

test.after.each(() => {
  for (const relay of relays.splice(0)) relay.close();
});

test.after(async () => {
  await server?.stop();
  await app?.stop();
});

function ready(): RunningStandalone {
  if (startError || !app) throw startError ?? new Error('not started');
  return app;
}

interface Report {
  bytes: number;
  bitsPerSecond: number;
}

/** The CSV lines iperf printed: timestamp,src,sport,dst,dport,id,interval,bytes,bps. */
function reports(text: string): Report[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(','))
    .filter((fields) => fields.length >= 9)
    .map((fields) => ({ bytes: Number(fields[7]), bitsPerSecond: Number(fields[8]) }));
}

/**
 * One iperf test through a fresh non-persistent session: when the sending
 * side closes, the session ends and the proxy passes the close on after the
 * last byte, which is what makes the receiving iperf finish its report.
 */
async function runIperf(serial: string, extra: string[]): Promise<{ client: Report; server: Report }> {
  const a = ready();
  const on = await a.call(`/on?serial=${serial}`);
  assert.is(on.status, 200, JSON.stringify(on.body));
  const sessionPort = (on.body as { port: number }).port;
  relays.push(await DeviceRelay.connect(a.devicePort, serial, serverPort));
  await waitFor(
    async () => ((await a.call(`/status?serial=${serial}`)).body as { device_connected: boolean }).device_connected,
    5000,
    'the relay to attach as the device',
  );
  const seen = reports(server!.output()).length;
  const result = await runProgram('iperf', ['-c', '127.0.0.1', '-p', String(sessionPort), '-t', String(SECONDS), '-y', 'C', ...extra], {
    timeoutMs: 60_000,
  });
  assert.is(result.code, 0, result.stdout + result.stderr);
  const [client] = reports(result.stdout);
  assert.ok(client, `iperf printed no report: ${result.stdout}${result.stderr}`);
  await waitFor(() => reports(server!.output()).length > seen, 10_000, 'the iperf server report');
  await waitFor(async () => (await a.call(`/status?serial=${serial}`)).status === 404, 5000, 'the session to end');
  return { client: client!, server: reports(server!.output())[seen]! };
}

test('client → device: every byte the iperf client sent reaches the iperf server', async () => {
  const { client, server: received } = await runIperf('IPERF-UP', []);
  console.log(`  client→device ${(client.bitsPerSecond / 1e9).toFixed(2)} Gbit/s (${client.bytes} bytes)`);
  assert.ok(client.bytes > 1_000_000, `only ${client.bytes} bytes sent`);
  assert.is(received.bytes, client.bytes);
});

test('device → client (iperf -R, on the same connection): every byte the server sent reaches the client', async () => {
  const { client: received, server: sent } = await runIperf('IPERF-DOWN', ['-R']);
  console.log(`  device→client ${(sent.bitsPerSecond / 1e9).toFixed(2)} Gbit/s (${sent.bytes} bytes)`);
  assert.ok(sent.bytes > 1_000_000, `only ${sent.bytes} bytes sent`);
  assert.is(received.bytes, sent.bytes);
});

test.run();
