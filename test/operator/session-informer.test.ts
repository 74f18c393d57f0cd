// The informer's time-driven paths on a manual clock: the watchdog that
// relists a silent watch, the relist after 410, the backoff after errors.
// The source is a script of list and watch answers; the informer against
// the real API server is covered by the cluster tests.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import type { ProxySessionResource, WatchEvent, WatchHandle } from '../../operator/kube/proxysession-client.ts';
import { type InformerChange, SessionInformer, type SessionSource } from '../../operator/kube/session-informer.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const test = suite('session informer');

function resource(name: string, uid: string, resourceVersion: string): ProxySessionResource {
  return {
    metadata: { name, namespace: 'ns', uid, resourceVersion, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z', finalizers: [] },
    spec: { serial: name.toUpperCase(), persistent: false, ipWhitelist: [] },
    status: {},
  };
}

interface OpenWatch {
  resourceVersion: string;
  send(event: WatchEvent): void;
  end(err?: Error): void;
  aborted: boolean;
}

class ScriptedSource implements SessionSource {
  listCalls = 0;
  items: ProxySessionResource[] = [];
  listVersion = '100';
  /** Lists fail while this is set. */
  listError: Error | undefined;
  readonly watches: OpenWatch[] = [];

  async list(): Promise<{ items: ProxySessionResource[]; resourceVersion: string }> {
    this.listCalls++;
    if (this.listError) throw this.listError;
    return { items: [...this.items], resourceVersion: this.listVersion };
  }

  async watch(resourceVersion: string, onEvent: (event: WatchEvent) => void, done: (err?: Error) => void): Promise<WatchHandle> {
    const open: OpenWatch = { resourceVersion, send: onEvent, end: done, aborted: false };
    this.watches.push(open);
    return { abort: () => (open.aborted = true) };
  }

  get current(): OpenWatch {
    const open = this.watches.at(-1);
    if (!open) throw new Error('no watch open');
    return open;
  }
}

function setup(options: { silenceMs?: number; initialBackoffMs?: number; maxBackoffMs?: number } = {}) {
  const clock = new FakeClock(1_000_000);
  const source = new ScriptedSource();
  const informer = new SessionInformer(source, silentLogger(), { clock, ...options });
  const changes: InformerChange[] = [];
  informer.subscribe((change) => changes.push(change));
  return { clock, source, informer, changes };
}

test('lists, then watches from the list resourceVersion', async () => {
  const { clock, source, informer } = setup();
  source.items = [resource('a', 'u1', '90')];
  informer.start();
  await informer.synced;
  await clock.advance(0);
  assert.is(source.listCalls, 1);
  assert.is(source.current.resourceVersion, '100');
  assert.equal(
    informer.list().map((r) => r.metadata.name),
    ['a'],
  );
  informer.stop();
});

test('a watch silent for longer than silenceMs is dropped and everything relisted', async () => {
  const { clock, source, informer } = setup({ silenceMs: 30_000 });
  informer.start();
  await clock.advance(0);
  const first = source.current;
  await clock.advance(25_000);
  assert.is(source.listCalls, 1, 'not yet silent long enough');
  // A bookmark counts as hearing from the server.
  first.send({ type: 'BOOKMARK', resourceVersion: '120' });
  await clock.advance(25_000);
  assert.is(source.listCalls, 1, 'the bookmark reset the watchdog');
  source.items = [resource('b', 'u2', '130')];
  source.listVersion = '130';
  await clock.advance(15_000);
  assert.is(source.listCalls, 2, 'relisted after 30 s of silence');
  assert.ok(first.aborted, 'the silent watch was dropped');
  assert.is(source.current.resourceVersion, '130');
  assert.equal(
    informer.list().map((r) => r.metadata.name),
    ['b'],
  );
  informer.stop();
});

test('410 Gone relists at once and resumes from the new list', async () => {
  const { clock, source, informer, changes } = setup();
  source.items = [resource('a', 'u1', '90')];
  informer.start();
  await clock.advance(0);
  source.items = [];
  source.listVersion = '200';
  source.current.send({ type: 'ERROR', status: 410, message: 'too old resource version' });
  await clock.advance(0);
  assert.is(source.listCalls, 2);
  assert.is(source.current.resourceVersion, '200');
  assert.equal(
    changes.map((c) => `${c.type} ${c.object.metadata.name}`),
    ['upserted a', 'removed a'],
  );
  informer.stop();
});

test('failing lists are retried with doubling backoff up to the maximum, and the backoff resets after a success', async () => {
  const { clock, source, informer } = setup({ initialBackoffMs: 100, maxBackoffMs: 400 });
  source.listError = new Error('connection refused');
  informer.start();
  await clock.advance(0);
  assert.is(source.listCalls, 1);
  const callsAt = (ms: number) => clock.advance(ms).then(() => source.listCalls);
  assert.is(await callsAt(99), 1);
  assert.is(await callsAt(1), 2, 'after 100 ms');
  assert.is(await callsAt(199), 2);
  assert.is(await callsAt(1), 3, 'after 200 more');
  assert.is(await callsAt(400), 4, 'after 400 more');
  assert.is(await callsAt(400), 5, 'capped at 400');
  source.listError = undefined;
  await clock.advance(400);
  assert.is(source.listCalls, 6);
  assert.is(source.watches.length, 1, 'watching after the list succeeded');
  // A watch that fails now waits the initial backoff again, not the maximum.
  source.current.end(new Error('stream reset'));
  assert.is(await callsAt(99), 6);
  assert.is(await callsAt(1), 7);
  informer.stop();
});

test('a watch that ends cleanly resumes from where it was without relisting', async () => {
  const { clock, source, informer } = setup();
  informer.start();
  await clock.advance(0);
  source.current.send({ type: 'ADDED', object: resource('a', 'u1', '150') });
  source.current.end();
  await clock.advance(0);
  assert.is(source.listCalls, 1);
  assert.is(source.current.resourceVersion, '150');
  informer.stop();
});

test('a copy read back after the watch reported its deletion does not return it to the cache', async () => {
  const { clock, source, informer, changes } = setup();
  informer.start();
  await clock.advance(0);
  source.current.send({ type: 'ADDED', object: resource('a', 'u1', '101') });
  const deleting = {
    ...resource('a', 'u1', '102'),
    metadata: { ...resource('a', 'u1', '102').metadata, deletionTimestamp: '2026-01-01T00:00:01Z', finalizers: ['x'] },
  };
  source.current.send({ type: 'DELETED', object: resource('a', 'u1', '103') });
  informer.observe(deleting);
  assert.is(informer.get('a'), undefined);
  assert.equal(
    changes.map((c) => c.type),
    ['upserted', 'removed'],
  );
  informer.stop();
});

test('stop ends the watch and every timer', async () => {
  const { clock, source, informer } = setup();
  informer.start();
  await clock.advance(0);
  informer.stop();
  assert.ok(source.current.aborted);
  assert.is(clock.pending, 0);
});

test.run();
