// A small session port range, end to end: exhaustion answers 503 and leaves
// nothing behind, a freed port is handed out again, and a port that another
// process holds is skipped.
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('port exhaustion');
let app: RunningStandalone;
let foreign: net.Server;

test.before(async () => {
  app = await startStandalone({ rangeSize: 4 });
  // Another process takes the first port of the range after the operator started.
  foreign = net.createServer();
  await new Promise<void>((resolve) => foreign.listen({ port: app.range.min, host: '127.0.0.1', exclusive: true }, resolve));
});

test.after(async () => {
  await new Promise<void>((resolve) => foreign.close(() => resolve()));
  await app.stop();
});

test('with every free port taken /on answers 503 {"message":"No available ports"} and leaves no session', async () => {
  const ports: number[] = [];
  for (const serial of ['EX-1', 'EX-2', 'EX-3']) {
    const answer = await app.call(`/on?serial=${serial}&persistent=true`);
    assert.is(answer.status, 200, `${serial}: ${JSON.stringify(answer.body)}`);
    ports.push((answer.body as { port: number }).port);
  }
  assert.equal(ports, [app.range.min + 1, app.range.min + 2, app.range.max], 'the port held by another process was skipped');
  const full = await app.call('/on?serial=EX-4');
  assert.is(full.status, 503);
  assert.equal(full.body, { code: 'no_available_ports', message: 'No available ports' });
  assert.is((await app.call('/status?serial=EX-4')).status, 404);
  assert.is((await app.call('/off?serial=EX-4')).status, 404, 'nothing to switch off: the failed session was removed');
});

test('after /off of one session its freed port is handed out again', async () => {
  const freed = (await app.call('/on?serial=EX-2&persistent=true')).body as { port: number };
  assert.is((await app.call('/off?serial=EX-2')).status, 200);
  const next = await app.call('/on?serial=EX-5');
  assert.is(next.status, 200);
  assert.is((next.body as { port: number }).port, freed.port);
  for (const serial of ['EX-1', 'EX-3', 'EX-5']) assert.is((await app.call(`/off?serial=${serial}`)).status, 200);
});

test.run();
