// schemathesis (property-based API testing from the OpenAPI document) against
// a running standalone mode: no server error, and every answer matches the
// document. positive_data_acceptance is left out: the document describes
// ip_whitelist as IPs or CIDRs in prose, which no JSON Schema pattern the
// generator can use expresses, so "schema-valid" strings like "0" are
// rightly refused with 400.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runProgram } from '../helpers/processes.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('schemathesis');
const configFile = fileURLToPath(new URL('../schemathesis/schemathesis.toml', import.meta.url));
const st = join(homedir(), '.cache', 'cccp-schemathesis-4.32.5', 'bin', 'st');
let standalone: RunningStandalone | undefined;

test.before(async () => {
  // A range large enough that generated /on calls never exhaust it (503 would count as a server error).
  standalone = await startStandalone({ rangeSize: 2000 });
});

test.after(async () => {
  await standalone?.stop();
});

async function run(args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  const result = await runProgram(st, args, { timeoutMs, env: { NO_COLOR: '1' } });
  return { code: result.code, output: result.stdout + result.stderr };
}

test('generated requests against /openapi.json find no server error and no answer that breaks the schema', async () => {
  const result = await run(
    [
      '--config-file',
      configFile,
      'run',
      `${standalone!.url}/openapi.json`,
      '--checks',
      'all',
      '--exclude-checks',
      'positive_data_acceptance',
      '--max-examples',
      '100',
      '--workers',
      '2',
      '--seed',
      '20261126',
    ],
    240_000,
  );
  const summary = /(\d+) generated/.exec(result.output)?.[1];
  console.log(`  schemathesis generated ${summary ?? '?'} test cases`);
  assert.ok(result.output.includes('generated'), `schemathesis did not run:\n${result.output.slice(-2000)}`);
  assert.not.match(result.output, /FAILURES/, result.output.slice(result.output.indexOf('FAILURES')).slice(0, 3000));
  assert.is(result.code, 0, result.output.slice(-2000));
});

test.run();
