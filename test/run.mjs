#!/usr/bin/env node
// Runs every uvu suite under test/ through tsx, one child process per file so
// that a hang or leaked handle in one file cannot stall the others, and
// enforces deadlines: uvu has no per-test timeout and waits forever on open
// handles. Ends with one line "N passed, N failed" for CI.
//
//   npm test                 every *.test.ts
//   npm test -- proxy admin  only files whose path contains one of the words
//
// CCCP_TEST_FILE_DEADLINE_S (default 900) bounds one file,
// CCCP_TEST_DEADLINE_S (default 4800) bounds the whole run.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const fileDeadlineMs = Number(process.env.CCCP_TEST_FILE_DEADLINE_S ?? 900) * 1000;
const runDeadlineMs = Number(process.env.CCCP_TEST_DEADLINE_S ?? 4800) * 1000;
// After uvu has printed its summary the process must exit promptly; if it
// does not, something (a server, socket or watch) was left open.
const exitGraceMs = 5000;

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules' || name.startsWith('.')) continue;
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.ts')) found.push(relative(root, path));
  }
  return found.sort();
}

const ANSI_COLOR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
const stripAnsi = (s) => s.replace(ANSI_COLOR, '');

function summaryOf(output) {
  const text = stripAnsi(output);
  const total = /Total:\s+(\d+)/.exec(text);
  const passed = /Passed:\s+(\d+)/.exec(text);
  const skipped = /Skipped:\s+(\d+)/.exec(text);
  if (!total || !passed) return undefined;
  const t = Number(total[1]);
  const p = Number(passed[1]);
  const s = skipped ? Number(skipped[1]) : 0;
  return { passed: p, failed: t - p - s, skipped: s };
}

function runFile(file, remainingMs) {
  return new Promise((resolve) => {
    const deadline = Math.min(fileDeadlineMs, remainingMs);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'node_modules/uvu/bin.js', '--no-color', '.', `^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, FORCE_COLOR: '0' } },
    );
    let output = '';
    let verdict;
    const kill = (why) => {
      verdict ??= why;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {}
      setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {}
      }, 3000).unref();
    };
    const onData = (chunk) => {
      process.stdout.write(chunk);
      output += chunk.toString();
      if (!verdict && summaryOf(output) && /Duration:/.test(stripAnsi(output))) {
        graceTimer ??= setTimeout(() => kill(`left an open handle: still running ${exitGraceMs} ms after its summary`), exitGraceMs);
      }
    };
    let graceTimer;
    child.stdout.on('data', onData);
    child.stderr.on('data', (c) => {
      process.stderr.write(c);
      output += c.toString();
    });
    const timer = setTimeout(() => kill(`exceeded its deadline of ${deadline / 1000} s`), deadline);
    child.on('close', (code) => {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      const summary = summaryOf(output) ?? { passed: 0, failed: 0, skipped: 0 };
      // A crash before the summary, a deadline, or a hang after it each count as a failure.
      if (verdict || (code !== 0 && summary.failed === 0)) summary.failed += 1;
      resolve({ file, code, verdict, ...summary });
    });
    // Our own interruption must not orphan the child's process group.
    const forward = () => kill('interrupted');
    process.once('SIGINT', forward);
    process.once('SIGTERM', forward);
    child.on('close', () => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
    });
  });
}

const filters = process.argv.slice(2);
const files = findTests(join(root, 'test')).filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)));
const started = Date.now();
const results = [];
for (const file of files) {
  const remaining = runDeadlineMs - (Date.now() - started);
  if (remaining <= 0) {
    results.push({ file, passed: 0, failed: 1, skipped: 0, verdict: 'not run: the whole run exceeded its deadline' });
    continue;
  }
  console.log(`\n=== ${file}`);
  results.push(await runFile(file, remaining));
}

console.log('\n=== summary');
for (const r of results) {
  const note = r.verdict ? ` (${r.verdict})` : r.code ? ` (exit ${r.code})` : '';
  console.log(`${r.failed ? 'FAIL' : 'ok  '} ${r.file}: ${r.passed} passed, ${r.failed} failed${note}`);
}
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
const skipped = results.reduce((n, r) => n + r.skipped, 0);
if (files.length === 0) console.log('no test files matched');
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
