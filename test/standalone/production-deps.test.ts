// The production dependency tree (what `npm ci --omit=dev` installs, as the
// image does) carries no TypeScript runner, and the README's `npm start`
// (after `npm ci`) builds dist/ and runs the compiled standalone mode: no
// process it starts carries a TypeScript loader.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PROXY_SEMI_SPACE_FLAG } from '../../operator/proxy-process.ts';
import { childPids } from '../helpers/live-pair.ts';
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
  assert.match(all.stdout, /node_modules\/tsx$/m, 'tsx is still installed by npm ci for the tests');
});

/** A process's command line, from /proc. */
function commandLine(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
}

test('npm start runs the compiled standalone mode and proxy; SIGTERM to npm alone stops every process it started', async () => {
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
  // Whether any process npm started (the build, the standalone process, its proxy child) still runs.
  const groupAlive = () => {
    try {
      process.kill(-child.pid!, 0);
      return true;
    } catch {
      return false;
    }
  };
  try {
    // The build (tsc) comes first.
    await waitFor(() => output.includes('Session ports'), 90_000, `npm start to listen:\n${output}`);
    assert.match(output, 'Control API listening on http://127.0.0.1:');
    // npm's child is the standalone process itself (the script execs node), and its child the compiled proxy.
    const [standalone, ...others] = childPids(child.pid!);
    assert.equal(others, [], 'npm has one child');
    // With the young-generation size the proxy process gets too (its Control API holds every session's state).
    assert.is(commandLine(standalone!), `node ${PROXY_SEMI_SPACE_FLAG} dist/operator/standalone.js`);
    const proxies = childPids(standalone!).map(commandLine);
    assert.is(proxies.length, 1, proxies.join('\n'));
    assert.match(
      proxies[0]!,
      /^\S*node --max-semi-space-size=4 \S*\/dist\/proxy-pod\/main\.js$/,
      'the proxy process runs compiled, with no loader, with its young-generation size',
    );
    // As `kill -TERM <pid of npm start>` does: npm alone gets the signal, not its process group.
    process.kill(child.pid!, 'SIGTERM');
    const ending = await exited;
    assert.ok(ending === 'SIGTERM' || ending === 'exit 0', `${ending}\n${output}`);
    await waitFor(() => !groupAlive(), 10_000, `every process of npm start to exit:\n${output}`);
  } finally {
    if (groupAlive()) process.kill(-child.pid!, 'SIGKILL');
  }
});

test.run();
