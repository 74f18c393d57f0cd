// The production dependency tree (what `npm ci --omit=dev` installs, as the
// image does) carries no TypeScript runner, and the README's `npm start`
// (after `npm ci`, which installs dev dependencies) still runs the standalone
// mode through tsx.
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, freePortRange, waitFor } from '../helpers/net.ts';

const test = suite('production dependencies');
const root = fileURLToPath(new URL('../..', import.meta.url));

function npm(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile('npm', args, { cwd: root, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? Number(err.code) : 0, stdout });
    });
  });
}

test('npm ls --omit=dev lists neither tsx nor esbuild; the dev tree has tsx', async () => {
  const production = await npm(['ls', '--omit=dev', '--all', '--parseable']);
  const paths = production.stdout.split('\n').filter(Boolean);
  assert.ok(
    paths.some((p) => p.endsWith('node_modules/koa')),
    'the production tree is listed',
  );
  assert.equal(
    paths.filter((p) => /node_modules\/(tsx|esbuild|@esbuild\/[^/]+)$/.test(p)),
    [],
  );
  const all = await npm(['ls', 'tsx', '--parseable']);
  assert.match(all.stdout, /node_modules\/tsx$/m, 'tsx is still installed by npm ci for npm start and the tests');
});

test('npm start runs the standalone mode, and SIGTERM stops it without a SIGKILL', async () => {
  const range = await freePortRange(2);
  const child = spawn('npm', ['start'], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      CCCP_CONTROL_PORT: String(await freePort()),
      CCCP_CONTROL_BIND_HOST: '127.0.0.1',
      CCCP_DEVICE_PORT: String(await freePort()),
      CCCP_BIND_HOST: '127.0.0.1',
      CCCP_PORT_RANGE: `${range.min}-${range.max}`,
      CCCP_LOG_LEVEL: 'warn',
    },
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<string>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? `exit ${code}`)));
  try {
    await waitFor(() => output.includes('Session ports'), 30_000, `npm start to listen:\n${output}`);
    assert.match(output, 'Control API listening on http://127.0.0.1:');
  } finally {
    process.kill(-child.pid!, 'SIGTERM');
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
    // npm ends by the signal itself; the standalone under it exits 0 (standalone.test.ts).
    const ending = await exited;
    clearTimeout(timer);
    assert.ok(ending === 'SIGTERM' || ending === 'exit 0', `${ending}\n${output}`);
  }
});

test.run();
