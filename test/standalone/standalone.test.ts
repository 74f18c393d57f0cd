// The standalone entry point as a process: what it prints, how it protects
// the admin socket, how it refuses bad settings and how it stops.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { refuses } from '../helpers/net.ts';
import { startStandalone } from '../helpers/standalone.ts';

const test = suite('standalone mode');

test('prints one line per listener, keeps the admin socket private, and exits 0 on SIGINT closing every port', async () => {
  const app = await startStandalone({ rangeSize: 2, env: { CCCP_LOG_LEVEL: 'info' } });
  let stopped = false;
  try {
    const output = app.process.output();
    assert.match(output, /^Control API listening on http:\/\/127\.0\.0\.1:\d+$/m);
    assert.match(output, new RegExp(`^Device port ${app.devicePort} listening on 127\\.0\\.0\\.1$`, 'm'));
    assert.match(
      output,
      new RegExp(`^Session ports ${app.range.min}-${app.range.max} on 127\\.0\\.0\\.1, answered as host 127\\.0\\.0\\.1$`, 'm'),
    );
    const socketPath = /"admin":"([^"]+)"/.exec(output)?.[1];
    assert.ok(socketPath, 'the proxy logged its admin socket');
    assert.is(statSync(socketPath!).mode & 0o777, 0o600);
    assert.is(statSync(socketPath!.replace(/\/[^/]+$/, '')).mode & 0o777, 0o700);
    const { port } = (await app.call('/on?serial=SIG-1&persistent=true')).body as { port: number };
    const exited = new Promise<number | null>((resolve) => app.process.child.once('exit', (code) => resolve(code)));
    app.process.child.kill('SIGINT');
    assert.is(await exited, 0);
    stopped = true;
    assert.ok(await refuses(port), 'the session port is closed');
    assert.ok(await refuses(app.devicePort), 'the device port is closed');
    assert.not.ok(statExists(socketPath!), 'the admin socket is removed');
  } finally {
    if (!stopped) await app.stop();
  }
});

test('a reversed CCCP_PORT_RANGE stops the start with exit 1 and a message naming it', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'operator/standalone.ts'], {
    env: { ...process.env, CCCP_PORT_RANGE: '20099-20000', CCCP_CONTROL_PORT: '0', CCCP_DEVICE_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c));
  child.stderr.on('data', (c: Buffer) => (output += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  assert.is(code, 1);
  assert.match(output, /CCCP_PORT_RANGE is reversed/);
});

function statExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

test.run();
