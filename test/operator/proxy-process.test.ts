// The proxy process's Node options: compiled JavaScript never gets tsx's
// loader, whatever the parent was started with; everything else carries over.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PROXY_SEMI_SPACE_FLAG, proxyExecArgv, proxyV8Flags } from '../../operator/proxy-process.ts';

// What `tsx operator/standalone.ts` gives the process it starts.
const underTsx = ['--require', '/app/node_modules/tsx/dist/preflight.cjs', '--import', 'file:///app/node_modules/tsx/dist/loader.mjs'];

test('from dist/ the proxy process gets no TypeScript loader, in any spelling', () => {
  assert.equal(proxyExecArgv(underTsx, true), []);
  assert.equal(proxyExecArgv(['--import=tsx', '--loader', 'tsx/esm', '-r', 'tsx/cjs', '--experimental-loader=tsx'], true), []);
});

test('other Node options carry over to the proxy process, loaders of other tools among them', () => {
  const parent = [
    '--max-old-space-size=512',
    ...underTsx,
    '--import',
    './telemetry.mjs',
    '--require=dotenv/config',
    '--enable-source-maps',
  ];
  assert.equal(proxyExecArgv(parent, true), [
    '--max-old-space-size=512',
    '--import',
    './telemetry.mjs',
    '--require=dotenv/config',
    '--enable-source-maps',
  ]);
});

test('under TypeScript the proxy process keeps the loader that runs main.ts', () => {
  assert.equal(proxyExecArgv(underTsx, false), underTsx);
});

test('the proxy process gets a small young generation unless the parent names a size', () => {
  assert.equal(proxyV8Flags([], undefined), [PROXY_SEMI_SPACE_FLAG]);
  assert.equal(proxyV8Flags(['--enable-source-maps'], '--max-old-space-size=512'), [PROXY_SEMI_SPACE_FLAG]);
  assert.equal(proxyV8Flags(['--max-semi-space-size=16'], undefined), []);
  assert.equal(proxyV8Flags([], '--trace-gc --max_semi_space_size=1'), []);
});

test.run();
