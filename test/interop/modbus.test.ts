// A real Modbus master (Debian's mbpoll) reads and writes the holding
// registers of a real Modbus TCP slave (pymodbus) through a session of the
// standalone mode. The slave reaches the proxy as a field device does: it
// connects out to the device port, sends its serial and CR, and serves
// Modbus on that connection (test/interop/modbus_device.py).
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PYTHON, requirePrograms } from '../helpers/interop.ts';
import { waitFor } from '../helpers/net.ts';
import { type Started as Program, runProgram, startProcess } from '../helpers/processes.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('interop: Modbus TCP with mbpoll and pymodbus');
const SERIAL = 'MODBUS-PLC-7';
const deviceScript = fileURLToPath(new URL('./modbus_device.py', import.meta.url));

let app: RunningStandalone | undefined;
let device: Program | undefined;
let port = 0;
let startError: unknown;

test.before(async () => {
  try {
    requirePrograms(['mbpoll', PYTHON]);
    app = await startStandalone();
    const on = await app.call(`/on?serial=${SERIAL}&persistent=true`);
    if (on.status !== 200) throw new Error(`/on answered ${on.status}: ${JSON.stringify(on.body)}`);
    port = (on.body as { port: number }).port;
    device = await startProcess(PYTHON, [deviceScript, '127.0.0.1', String(app.devicePort), SERIAL], {
      ready: /registered/,
      timeoutMs: 10_000,
    });
    await waitFor(async () => (await status()).device_connected, 5000, 'the Modbus device to attach');
  } catch (err) {
    startError = err;
  }
});

test.after(async () => {
  await device?.stop();
  await app?.stop();
});

function ready(): RunningStandalone {
  if (startError || !app) throw startError ?? new Error('not started');
  return app;
}

async function status(): Promise<{ device_connected: boolean; client_connected: boolean; transferred: number }> {
  return (await app!.call(`/status?serial=${SERIAL}`)).body as {
    device_connected: boolean;
    client_connected: boolean;
    transferred: number;
  };
}

/** One mbpoll run against the session port (one request, 5 s response timeout); with `values` it writes them. */
async function mbpoll(options: string[], values: number[] = []): Promise<string> {
  const args = [
    '-1',
    '-q',
    '-o',
    '5',
    '-p',
    String(port),
    ...options,
    '127.0.0.1',
    ...(values.length > 0 ? ['--', ...values.map(String)] : []),
  ];
  const result = await runProgram('mbpoll', args, { timeoutMs: 20_000 });
  assert.is(result.code, 0, `mbpoll ${args.join(' ')} failed: ${result.stdout}${result.stderr}${device?.output() ?? ''}`);
  return result.stdout;
}

/** Register values from mbpoll's "[ref]: value" lines. */
function registers(output: string): Map<number, number> {
  const values = new Map<number, number>();
  for (const match of output.matchAll(/^\[(\d+)\]:\s+(-?\d+)/gm)) values.set(Number(match[1]), Number(match[2]));
  return values;
}

async function transferredSettles(expected: number): Promise<void> {
  await waitFor(
    async () => (await status()).transferred === expected,
    5000,
    `/status to count ${expected} bytes (has ${(await status()).transferred})`,
  );
}

test('values written with function 16 (write multiple registers) read back with function 3', async () => {
  ready();
  const before = (await status()).transferred;
  assert.match(await mbpoll(['-r', '10'], [1234, 65535, 32767]), /Written 3 references/);
  const read = registers(await mbpoll(['-r', '10', '-c', '3']));
  assert.equal([read.get(10), read.get(11), read.get(12)], [1234, 65535, 32767]);
  // Modbus TCP frames are exact: write multiple of 3 is 13+6 bytes out and 12
  // back; a read of 3 is 12 out and 9+6 back. Nothing else may pass.
  await transferredSettles(before + 19 + 12 + 12 + 15);
});

test('a value written with function 6 (write single register) reads back, neighbours untouched', async () => {
  ready();
  await mbpoll(['-r', '40'], [4242]);
  const read = registers(await mbpoll(['-r', '39', '-c', '3']));
  assert.equal([read.get(39), read.get(40), read.get(41)], [0, 4242, 0]);
});

test('a new mbpoll connection replaces the previous client and the device keeps serving', async () => {
  ready();
  for (let i = 0; i < 5; i++) await mbpoll(['-r', String(60 + i)], [100 + i]);
  const read = registers(await mbpoll(['-r', '60', '-c', '5']));
  assert.equal([...read.values()], [100, 101, 102, 103, 104]);
  assert.ok((await status()).device_connected, 'the device is still attached');
});

test.run();
