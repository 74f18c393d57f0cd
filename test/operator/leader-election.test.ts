// Lease expiry and renewal on a manual clock. The Lease is held in memory
// with the API server's compare-and-swap on resourceVersion; two replicas
// against the real API server are covered by the cluster tests.
import type { V1Lease } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import { LeaderElector, type LeaseApi } from '../../operator/kube/leader-election.ts';
import { KubeApiError } from '../../operator/kube/proxysession-client.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const test = suite('leader election');

class MemoryLease implements LeaseApi {
  lease: V1Lease | undefined;
  private version = 0;
  /** While set, every call fails as an unreachable API server would. */
  down = false;

  async readNamespacedLease(): Promise<V1Lease> {
    this.check();
    if (!this.lease) throw new KubeApiError(404, 'not found');
    return structuredClone(this.lease);
  }

  async createNamespacedLease(param: { body: V1Lease }): Promise<V1Lease> {
    this.check();
    if (this.lease) throw new KubeApiError(409, 'already exists');
    this.lease = { ...structuredClone(param.body), metadata: { ...param.body.metadata, resourceVersion: String(++this.version) } };
    return structuredClone(this.lease);
  }

  async replaceNamespacedLease(param: { body: V1Lease }): Promise<V1Lease> {
    this.check();
    if (param.body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw new KubeApiError(409, 'conflict');
    this.lease = { ...structuredClone(param.body), metadata: { ...param.body.metadata, resourceVersion: String(++this.version) } };
    return structuredClone(this.lease);
  }

  get holder(): string | undefined {
    return this.lease?.spec?.holderIdentity;
  }

  private check(): void {
    if (this.down) throw new KubeApiError(0, 'connect ECONNREFUSED');
  }
}

/** One replica's path to the API server, which a test can cut. */
class Link implements LeaseApi {
  down = false;
  constructor(private readonly server: MemoryLease) {}
  readNamespacedLease = () => this.pass(() => this.server.readNamespacedLease());
  createNamespacedLease = (param: { body: V1Lease }) => this.pass(() => this.server.createNamespacedLease(param));
  replaceNamespacedLease = (param: { body: V1Lease }) => this.pass(() => this.server.replaceNamespacedLease(param));
  private pass<T>(call: () => Promise<T>): Promise<T> {
    return this.down ? Promise.reject(new KubeApiError(0, 'connect ETIMEDOUT')) : call();
  }
}

function replica(api: LeaseApi, clock: FakeClock, identity: string) {
  const log: string[] = [];
  const elector = new LeaderElector(api, {
    namespace: 'ns',
    leaseName: 'cccp-operator',
    identity,
    leaseDurationSeconds: 15,
    logger: silentLogger(),
    clock,
    onStartedLeading: () => log.push('started'),
    onStoppedLeading: () => log.push('stopped'),
  });
  return { elector, log };
}

test('the first replica takes the lease and renews it every third of its duration', async () => {
  const clock = new FakeClock(1_000_000);
  const api = new MemoryLease();
  const a = replica(api, clock, 'a');
  a.elector.start();
  await clock.advance(0);
  assert.ok(a.elector.isLeader);
  assert.equal(a.log, ['started']);
  const renewed = () => new Date(api.lease?.spec?.renewTime ?? 0).getTime();
  assert.is(renewed(), 1_000_000);
  await clock.advance(5_000);
  assert.is(renewed(), 1_005_000);
  await clock.advance(5_000);
  assert.is(renewed(), 1_010_000);
  await a.elector.stop();
});

test('a second replica waits while the holder renews, and takes over a whole lease duration after renewals stop', async () => {
  const clock = new FakeClock(1_000_000);
  const api = new MemoryLease();
  const aLink = new Link(api);
  const a = replica(aLink, clock, 'a');
  const b = replica(api, clock, 'b');
  a.elector.start();
  await clock.advance(0);
  b.elector.start();
  await clock.advance(60_000);
  assert.is(api.holder, 'a');
  assert.not.ok(b.elector.isLeader);
  // a is cut off without releasing: b judges expiry on its own clock.
  aLink.down = true;
  await clock.advance(14_000);
  assert.is(api.holder, 'a', 'not before the lease duration passed');
  await clock.advance(4_000);
  assert.is(api.holder, 'b');
  assert.ok(b.elector.isLeader);
  assert.equal(b.log, ['started']);
  assert.is(api.lease?.spec?.leaseTransitions, 1);
  // a notices at its next renewal attempt after a whole lease duration without one.
  await clock.advance(3_000);
  assert.not.ok(a.elector.isLeader, 'a stopped leading on its own clock too');
  assert.equal(a.log, ['started', 'stopped']);
  await a.elector.stop();
  await b.elector.stop();
});

test('a leader that cannot renew for a whole lease duration stops leading', async () => {
  const clock = new FakeClock(1_000_000);
  const api = new MemoryLease();
  const a = replica(api, clock, 'a');
  a.elector.start();
  await clock.advance(0);
  api.down = true;
  await clock.advance(14_000);
  assert.ok(a.elector.isLeader, 'still leading within the lease duration');
  await clock.advance(6_000);
  assert.not.ok(a.elector.isLeader);
  assert.equal(a.log, ['started', 'stopped']);
  api.down = false;
  await clock.advance(2_000);
  assert.ok(a.elector.isLeader, 'leads again once it can renew');
  await a.elector.stop();
});

test('stop gives the lease up so another replica takes it at once', async () => {
  const clock = new FakeClock(1_000_000);
  const api = new MemoryLease();
  const a = replica(api, clock, 'a');
  const b = replica(api, clock, 'b');
  a.elector.start();
  await clock.advance(0);
  b.elector.start();
  await clock.advance(1_000);
  await a.elector.stop();
  assert.is(api.holder, '');
  await clock.advance(2_000);
  assert.is(api.holder, 'b');
  await b.elector.stop();
});

test.run();
