// The ProxySession CRD against a real kube-apiserver (test/kube/rig.ts):
// the schema and CEL rules in crds/proxysession.yaml are enforced by the API
// server itself, and authorization in the rig is real.

import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type KubectlResult, type Rig, startRig } from '../kube/rig.ts';

const crdFile = fileURLToPath(new URL('../../crds/proxysession.yaml', import.meta.url));
const namespace = 'default';

const test = suite('kube rig: ProxySession CRD');

let rig: Rig | undefined;
let startError: unknown;

// uvu swallows an error thrown by a before hook; keep it and rethrow it from
// every test, so a rig that cannot start shows why.
test.before(async () => {
  try {
    rig = await startRig();
    const applied = await rig.kubectl(['apply', '--server-side', '-f', crdFile]);
    if (applied.code !== 0) throw new Error(`applying the CRD failed: ${applied.stderr}`);
    const established = await rig.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/proxysessions.cccp.tcxn.net']);
    if (established.code !== 0) throw new Error(`CRD not established: ${established.stderr}`);
  } catch (err) {
    startError = err;
  }
});

test.after(async () => {
  await rig?.stop();
});

function theRig(): Rig {
  if (!rig || startError) throw startError ?? new Error('rig not started');
  return rig;
}

function proxySession(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'cccp.tcxn.net/v1alpha1',
    kind: 'ProxySession',
    metadata: { name, namespace },
    spec,
  });
}

async function create(name: string, spec: Record<string, unknown>): Promise<KubectlResult> {
  return theRig().kubectl(['create', '-f', '-'], { input: proxySession(name, spec) });
}

function assertRefused(result: KubectlResult, message: string): void {
  assert.is.not(result.code, 0, `expected a refusal, got: ${result.stdout}`);
  assert.ok(result.stderr.includes(message), `expected "${message}" in: ${result.stderr}`);
}

test('a ProxySession applied with kubectl is stored with its defaults', async () => {
  const applied = await theRig().kubectl(['apply', '--server-side', '-f', '-'], {
    input: proxySession('device-a1', { serial: 'A1-0001', ipWhitelist: ['10.0.0.0/8', '2001:db8::1'] }),
  });
  assert.is(applied.code, 0, applied.stderr);

  const read = await theRig().kubectl(['get', 'pxs', 'device-a1', '-n', namespace, '-o', 'json']);
  assert.is(read.code, 0, read.stderr);
  const spec = JSON.parse(read.stdout).spec;
  assert.equal(spec, { serial: 'A1-0001', ipWhitelist: ['10.0.0.0/8', '2001:db8::1'], persistent: false });
});

test('kubectl get pxs shows the printer columns', async () => {
  assert.is((await create('columns', { serial: 'A1-0006' })).code, 0);
  const listed = await theRig().kubectl(['get', 'pxs', 'columns', '-n', namespace]);
  assert.is(listed.code, 0, listed.stderr);
  const header = listed.stdout.split('\n')[0] ?? '';
  assert.equal(header.trim().split(/\s+/), ['NAME', 'SERIAL', 'PORT', 'PHASE', 'PROXY', 'DEVICE', 'CLIENT', 'TRANSFERRED', 'AGE']);
});

test('a serial with a space is refused by the schema pattern', async () => {
  assertRefused(await create('bad-serial', { serial: 'A1 0001' }), 'spec.serial in body should match');
});

test('a whitelist entry that is neither an IP nor a CIDR is refused by its CEL rule', async () => {
  assertRefused(await create('bad-whitelist', { serial: 'A1-0002', ipWhitelist: ['300.1.1.1'] }), 'must be an IP address or a CIDR range');
});

test('timeoutSeconds below 1 is refused', async () => {
  assertRefused(
    await create('bad-timeout', { serial: 'A1-0003', timeoutSeconds: 0 }),
    'spec.timeoutSeconds in body should be greater than or equal to 1',
  );
});

test('changing the serial of an existing ProxySession is refused', async () => {
  assert.is((await create('moving-serial', { serial: 'A1-0004' })).code, 0);
  const patched = await theRig().kubectl([
    'patch',
    'pxs',
    'moving-serial',
    '-n',
    namespace,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { serial: 'A1-0005' } }),
  ]);
  assertRefused(patched, 'serial is immutable');
});

test('a ServiceAccount without RBAC bindings is forbidden to list ProxySessions', async () => {
  const kubeconfig = await theRig().serviceAccountKubeconfig('rig-nobody', 'nobody');

  const listed = await theRig().kubectl(['get', 'pxs', '-n', namespace], { kubeconfig });
  assertRefused(listed, 'Forbidden');
  assert.ok(listed.stderr.includes('system:serviceaccount:rig-nobody:nobody'), listed.stderr);

  const canI = await theRig().kubectl(['auth', 'can-i', 'list', 'proxysessions.cccp.tcxn.net', '-n', namespace], { kubeconfig });
  assert.is(canI.stdout.trim(), 'no');
});

test.run();
