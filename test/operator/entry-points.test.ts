// Entry points start only when run: importing one (to test what it exports)
// opens no port and leaves nothing running.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const test = suite('entry points');
const run = promisify(execFile);

test('importing the three entry points starts none of them', async () => {
  const script = [
    "await import('./operator/main.ts');",
    "await import('./operator/standalone.ts');",
    "await import('./proxy-pod/main.ts');",
    "console.log('imported');",
  ].join(' ');
  const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: new URL('../..', import.meta.url),
    timeout: 20_000,
    env: { ...process.env, CCCP_CONTROL_PORT: '0', CCCP_DEVICE_PORT: '0' },
  });
  // The process exited by itself (no listener kept it alive) and logged nothing.
  assert.is(stdout.trim(), 'imported');
  assert.is(stderr.trim(), '');
});

test.run();
