// Clients generated from the served /openapi.json work first time: the
// Python client of openapi-python-client (type-checked with mypy --strict)
// and openapi-typescript types with openapi-fetch (tsc --strict) each run
// the whole flow with a two-entry whitelist (test/interop/generated-clients/flow.*),
// against the standalone mode and against the cluster mode.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startRigWithCrd, TestCluster } from '../helpers/cluster.ts';
import { freePortRange } from '../helpers/net.ts';
import { runProgram } from '../helpers/processes.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';
import type { Rig } from '../kube/rig.ts';

const test = suite('generated clients');
const root = fileURLToPath(new URL('../..', import.meta.url));
const flows = join(root, 'test', 'interop', 'generated-clients');
const venv = join(homedir(), '.cache', 'cccp-openapi-python-client-0.29.1-mypy-1.18.2', 'bin');
const work = mkdtempSync(join(tmpdir(), 'cccp-generated-'));
const python = join(work, 'py');
const typescript = join(work, 'ts');
let standalone: RunningStandalone | undefined;
let rig: Rig | undefined;
let cluster: TestCluster | undefined;
let servedDocument: unknown;

/** Runs a tool to its end in `work` (or cwd); its output, or an error with the tail of it. */
async function run(command: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  const result = await runProgram(command, args, {
    cwd: options.cwd ?? work,
    timeoutMs: 180_000,
    ...(options.env ? { env: options.env } : {}),
  });
  const output = result.stdout + result.stderr;
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${output.slice(-4000)}`);
  return output;
}

test.before(async () => {
  standalone = await startStandalone({ rangeSize: 3 });
  servedDocument = (await standalone.call('/openapi.json')).body;
  writeFileSync(join(work, 'openapi.json'), JSON.stringify(servedDocument));

  // Python: generate the package, type-check it and the flow strictly.
  mkdirSync(python);
  writeFileSync(join(work, 'python-client.yaml'), 'post_hooks: []\npackage_name_override: cccp_control_api_client\n');
  await run(join(venv, 'openapi-python-client'), [
    'generate',
    '--path',
    'openapi.json',
    '--output-path',
    join(python, 'cccp_control_api_client'),
    '--meta',
    'none',
    '--config',
    'python-client.yaml',
  ]);
  copyFileSync(join(flows, 'flow.py'), join(python, 'flow.py'));
  await run(join(venv, 'mypy'), ['--strict', '--cache-dir', join(work, '.mypy_cache'), 'cccp_control_api_client', 'flow.py'], {
    cwd: python,
  });

  // TypeScript: generate the types, type-check them with openapi-fetch and the flow strictly.
  mkdirSync(typescript);
  symlinkSync(join(root, 'node_modules'), join(typescript, 'node_modules'));
  writeFileSync(join(typescript, 'package.json'), '{"type":"module"}\n');
  writeFileSync(
    join(typescript, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', types: ['node'] },
    }),
  );
  await run(join(root, 'node_modules', '.bin', 'openapi-typescript'), ['openapi.json', '-o', join(typescript, 'schema.ts')]);
  copyFileSync(join(flows, 'flow.ts'), join(typescript, 'flow.ts'));
  await run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: typescript });
});

test.after(async () => {
  await standalone?.stop();
  await cluster?.stop();
  await rig?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function runFlows(url: string, devicePort: number, serialPrefix: string): Promise<void> {
  const env = { CCCP_URL: url, CCCP_DEVICE_PORT: String(devicePort) };
  const py = await run(join(venv, 'python'), ['flow.py'], {
    cwd: python,
    env: { ...env, CCCP_SERIAL: `${serialPrefix}-PY`, PYTHONPATH: python },
  });
  assert.match(py, /python flow ok/);
  const ts = await run(join(root, 'node_modules', '.bin', 'tsx'), ['flow.ts'], {
    cwd: typescript,
    env: { ...env, CCCP_SERIAL: `${serialPrefix}-TS` },
  });
  assert.match(ts, /typescript flow ok/);
}

test('standalone mode: both generated clients type-check strictly and run the whole flow with a two-entry whitelist', async () => {
  await runFlows(standalone!.url, standalone!.devicePort, 'GEN-SA');
});

test('cluster mode: the same document is served, and both clients run the whole flow', async () => {
  rig = await startRigWithCrd();
  cluster = await TestCluster.start(rig, { namespace: 'cccp-generated', portRange: await freePortRange(3) });
  await cluster.startOperator('operator-gen');
  await cluster.waitForOperatorLeader();
  const served = await cluster.control('/openapi.json');
  assert.equal(served.body, servedDocument, 'the cluster mode serves the document the clients were generated from');
  await runFlows(cluster.controlUrl(), cluster.devicePort, 'GEN-CL');
});

test.run();
