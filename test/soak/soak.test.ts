// The soak in three minutes (`npm run soak` runs it for an hour): the
// standalone mode with 200 sessions of steady traffic, devices on emulated
// mobile links that are blackholed and come back from another address,
// churn of every kind of session ending, bulk transfers, and the cluster mode
// with kill -9 of the proxy pod and the operator. Nothing may be lost,
// mismatched, leaked or stuck, and every fault must be recovered from.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runSoak, soakSettings } from './soak.ts';

const test = suite('soak');
const dir = mkdtempSync(join(tmpdir(), 'cccp-soak-'));

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('three minutes of churn, traffic and faults lose nothing and leave nothing behind', async () => {
  const minutes = Number(process.env.CCCP_SOAK_MINUTES ?? 3);
  const report = await runSoak(soakSettings(minutes, 200, join(dir, 'soak')), (line) => console.log(`  ${line}`));
  const table = readFileSync(join(dir, 'soak.md'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| ---'))
    .slice(0, 16);
  console.log(table.join('\n'));
  assert.ok(report.finished, 'the soak ran to its end');
  assert.ok(report.sessions.started > 300, `sessions started: ${report.sessions.started}`);
  assert.ok(
    report.faults.some((f) => f.kind === 'kill-proxy') &&
      report.faults.some((f) => f.kind === 'kill-operator') &&
      report.faults.some((f) => f.kind === 'blackhole'),
    'every kind of fault was injected',
  );
  assert.ok(report.bulk.length > 0, 'a bulk transfer ran');
  assert.equal(report.verdict.reasons, [], 'the soak found no problem');
});

test.run();
