// The Helm chart against the rig's real kube-apiserver: every rendered object
// is accepted, `helm install` works, and the operator does its whole job
// with nothing but the chart's own ServiceAccount and Role, one release per
// namespace, side by side.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mustKubectl } from '../helpers/cluster.ts';
import {
  chartDir,
  kubeBinDir,
  type LocalRelease,
  type LocalReleaseOptions,
  render,
  requiredValues,
  runHelm,
  slicedRange,
  startLocalRelease,
  topLevelCrdFile,
  toYamlStream,
  valuesFile,
} from '../helpers/helm.ts';
import { connect, connectDevice, freePortRange, Received, waitFor } from '../helpers/net.ts';
import { type Rig, startRig } from '../kube/rig.ts';

const test = suite('helm chart in a cluster');
let rig: Rig | undefined;
let startError: unknown;
const releases = new Map<string, Promise<LocalRelease>>();
const sockets: Array<{ destroy(): void }> = [];

// Session ranges found free at start (below Linux's ephemeral ports), set in `before`.
const acme: LocalReleaseOptions = { release: 'acme', namespace: 'acme', portRange: { min: 0, max: 0 } };
const globex: LocalReleaseOptions = { release: 'globex', namespace: 'globex', portRange: { min: 0, max: 0 } };

// uvu swallows an error thrown by a before hook; keep it and rethrow it from every test.
test.before(async () => {
  try {
    const { min } = await freePortRange(70);
    acme.portRange = { min, max: min + 19 };
    globex.portRange = { min: min + 50, max: min + 69 };
    await kubeBinDir();
    rig = await startRig();
  } catch (err) {
    startError = err;
  }
});

test.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

test.after(async () => {
  await Promise.all(
    [...releases.values()].map((r) =>
      r.then(
        (started) => started.stop(),
        () => undefined,
      ),
    ),
  );
  await rig?.stop();
});

function theRig(): Rig {
  if (!rig || startError) throw startError ?? new Error('rig not started');
  return rig;
}

/** The CRD, installed by `helm install` when that test ran first, else applied here. */
async function ensureCrd(): Promise<void> {
  const r = theRig();
  if ((await r.kubectl(['get', 'crd', 'proxysessions.cccp.tcxn.net'])).code !== 0) {
    await mustKubectl(r, ['apply', '--server-side', '-f', topLevelCrdFile]);
  }
  await mustKubectl(r, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/proxysessions.cccp.tcxn.net']);
}

/** Each release starts once, on first use, and runs until the file ends. */
async function release(opts: LocalReleaseOptions): Promise<LocalRelease> {
  const r = theRig();
  await ensureCrd();
  let started = releases.get(opts.release);
  if (!started) {
    started = startLocalRelease(r, opts);
    releases.set(opts.release, started);
  }
  return started;
}

function canI(r: Rig, as: { namespace: string; serviceAccount: string }, args: string[]) {
  return r.kubectl(['auth', 'can-i', ...args, `--as=system:serviceaccount:${as.namespace}:${as.serviceAccount}`]);
}

async function leaseHolder(r: Rig, namespace: string, name: string): Promise<string> {
  const { stdout } = await r.kubectl(['get', 'lease', name, '-n', namespace, '-o', 'jsonpath={.spec.holderIdentity}']);
  return stdout.trim();
}

interface SessionJson {
  metadata: { name: string };
  spec: { serial: string };
  status?: { phase?: string; port?: number; host?: string };
}

async function sessions(r: Rig, namespace: string): Promise<SessionJson[]> {
  const { stdout } = await mustKubectl(r, ['get', 'pxs', '-n', namespace, '-o', 'json']);
  return (JSON.parse(stdout) as { items: SessionJson[] }).items;
}

async function exchange(devicePort: number, port: number, serial: string): Promise<void> {
  const client = new Received(await connect(port));
  const device = new Received(await connectDevice(devicePort, serial));
  sockets.push(client.socket, device.socket);
  device.socket.write('ping');
  await client.untilLength(4, 5000);
  client.socket.write('pong');
  await device.untilLength(4, 5000);
}

function inRange(port: number, range: { min: number; max: number }): boolean {
  return port >= range.min && port <= range.max;
}

test('helm install creates the CRD from the chart and every object; an upgrade and a rollback keep the admin token the operator wrote', async () => {
  const r = theRig();
  const values = valuesFile({ ...requiredValues, ...slicedRange({ min: 24000, max: 24009 }) });
  const install = await runHelm(r.binDir, ['install', 'shop', chartDir, '-n', 'shop', '--create-namespace', '-f', values], r.kubeconfig);
  assert.is(install.code, 0, install.stderr);
  assert.match(install.stdout, 'kubectl get pxs -n shop');
  assert.match(install.stdout, 'http://shop-cccp-proxy-control.shop.svc:8080/on?serial=DEVICE-SERIAL');
  assert.match(install.stdout, 'Devices connect to proxy.customer.example:9000');
  await mustKubectl(r, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/proxysessions.cccp.tcxn.net']);

  const { stdout } = await mustKubectl(r, [
    'get',
    'deploy,statefulset,svc,sa,role,rolebinding,networkpolicy,pdb,secret',
    '-n',
    'shop',
    '-o',
    'name',
  ]);
  for (const name of [
    'deployment.apps/shop-cccp-proxy-operator',
    'statefulset.apps/shop-cccp-proxy-proxy',
    'service/shop-cccp-proxy-control',
    'service/shop-cccp-proxy-proxy-pods',
    'service/shop-cccp-proxy-proxy',
    'service/shop-cccp-proxy-proxy-0',
    'serviceaccount/shop-cccp-proxy-operator',
    'role.rbac.authorization.k8s.io/shop-cccp-proxy-operator',
    'rolebinding.rbac.authorization.k8s.io/shop-cccp-proxy-operator',
    'networkpolicy.networking.k8s.io/shop-cccp-proxy-proxy',
    'poddisruptionbudget.policy/shop-cccp-proxy-operator',
    'poddisruptionbudget.policy/shop-cccp-proxy-proxy',
    'secret/shop-cccp-proxy-admin-token',
  ])
    assert.ok(stdout.split('\n').includes(name), `${name} was created`);

  const tokenOf = async () =>
    (await mustKubectl(r, ['get', 'secret', 'shop-cccp-proxy-admin-token', '-n', 'shop', '-o', 'jsonpath={.data.token}'])).stdout;
  assert.is(await tokenOf(), '', 'the chart renders the admin token Secret empty');
  // What the first operator replica does (operator/kube/admin-token-secret.ts), as its own ServiceAccount.
  const token = Buffer.from('filled-by-the-operator-0123456789').toString('base64');
  await mustKubectl(r, [
    'patch',
    'secret',
    'shop-cccp-proxy-admin-token',
    '-n',
    'shop',
    '--type=merge',
    '-p',
    JSON.stringify({ data: { token } }),
    '--as=system:serviceaccount:shop:shop-cccp-proxy-operator',
  ]);
  const upgrade = await runHelm(
    r.binDir,
    ['upgrade', 'shop', chartDir, '-n', 'shop', '-f', values, '--set', 'devicePort=9100'],
    r.kubeconfig,
  );
  assert.is(upgrade.code, 0, upgrade.stderr);
  assert.is(await tokenOf(), token, 'the admin token survives the upgrade');
  const env = (
    await mustKubectl(r, [
      'get',
      'statefulset',
      'shop-cccp-proxy-proxy',
      '-n',
      'shop',
      '-o',
      'jsonpath={.spec.template.spec.containers[0].env[0].value}',
    ])
  ).stdout;
  assert.is(env, '9100', 'the upgrade applied the new value');
  const rollback = await runHelm(r.binDir, ['rollback', 'shop', '1', '-n', 'shop'], r.kubeconfig);
  assert.is(rollback.code, 0, rollback.stderr);
  assert.is(await tokenOf(), token, 'the admin token survives a rollback to the first revision');
});

test('every rendered manifest, in each exposure mode, passes server-side dry run', async () => {
  const r = theRig();
  await ensureCrd();
  await mustKubectl(r, ['create', 'namespace', 'dry-run'], true);
  const variants: Record<string, object> = {
    'loadBalancer, 1 pod of 100 session ports': { ...requiredValues, ...slicedRange({ min: 20000, max: 20099 }) },
    'loadBalancer, 3 pods of 50 session ports': { ...requiredValues, ...slicedRange({ min: 20000, max: 20149 }, 3) },
    'loadBalancer with options and control tokens': {
      ...requiredValues,
      devicePort: 502,
      controlTokens: ['control-token-0123456789'],
      exposure: {
        mode: 'loadBalancer',
        loadBalancer: {
          annotations: { 'lb.example/kind': 'nlb' },
          loadBalancerSourceRanges: ['192.0.2.0/24'],
          allocateLoadBalancerNodePorts: false,
        },
      },
    },
    'hostNetwork on a named node, 1000 session ports': {
      ...requiredValues,
      portRange: { min: 40000, max: 40999 },
      exposure: { mode: 'hostNetwork', hostNetwork: { nodeName: 'edge-1' } },
    },
    'hostNetwork by node selector, 3 pods, existing Secrets': {
      ...requiredValues,
      proxy: { replicas: 3 },
      adminToken: { existingSecret: 'mine' },
      existingControlTokensSecret: 'my-tokens',
      exposure: { mode: 'hostNetwork', hostNetwork: { nodeSelector: { 'cccp.tcxn.net/edge': 'true' } } },
    },
  };
  for (const [variant, values] of Object.entries(variants)) {
    // The helm test Pod needs its ServiceAccount stored, which a dry run does not do; helm-day-two-cluster.test.ts admits it.
    const objects = (await render(r.binDir, values, { release: 'dry', namespace: 'dry-run' })).objects.filter((o) => o.kind !== 'Pod');
    const rendered = { objects, yaml: toYamlStream(objects) };
    const result = await r.kubectl(['apply', '--dry-run=server', '--server-side', '--field-manager=helm-test', '-f', '-'], {
      input: rendered.yaml,
    });
    assert.is(result.code, 0, `${variant}: ${result.stderr}`);
    const accepted = result.stdout
      .trim()
      .split('\n')
      .filter((line) => line.endsWith('(server dry run)'));
    assert.is(accepted.length, rendered.objects.length, `${variant}: every object accepted\n${result.stdout}`);
  }
  const stored = await r.kubectl(['get', 'all', '-n', 'dry-run', '-o', 'name']);
  assert.is(stored.stdout.trim(), '', 'a dry run stores nothing');
});

test('the operator as the chart ServiceAccount creates a session, writes status, takes the Lease and records Events', async () => {
  const r = theRig();
  const a = await release(acme);
  const on = await a.control<{ host: string; port: number }>('/on?serial=HELM-1&persistent=true');
  assert.is(on.status, 200, JSON.stringify(on.body));
  assert.is(on.body.host, '127.0.0.1');
  assert.ok(inRange(on.body.port, acme.portRange), `port ${on.body.port} in ${JSON.stringify(acme.portRange)}`);

  const session = (await sessions(r, acme.namespace)).find((s) => s.spec.serial === 'HELM-1');
  assert.is(session?.status?.phase, 'Active');
  assert.is(session?.status?.port, on.body.port);
  await waitFor(
    async () => (await leaseHolder(r, acme.namespace, a.leaseName)) === a.operatorIdentity,
    15_000,
    'the operator to hold the Lease',
  );
  assert.is(a.leaseName, 'acme-cccp-proxy-operator');

  // The proxy was programmed with the chart's admin token: traffic flows.
  await exchange(a.devicePort, on.body.port, 'HELM-1');
  let reasons: string[] = [];
  await waitFor(
    async () => {
      const events = await mustKubectl(r, [
        'get',
        'events',
        '-n',
        acme.namespace,
        '--field-selector',
        `involvedObject.name=${session!.metadata.name}`,
        '-o',
        'jsonpath={.items[*].reason}',
      ]);
      reasons = events.stdout.trim().split(/\s+/);
      return reasons.includes('DeviceConnected') && reasons.includes('ClientConnected');
    },
    10_000,
    'DeviceConnected and ClientConnected Events',
  );

  const off = await a.control('/off?serial=HELM-1');
  assert.is(off.status, 200);
  assert.is(
    (await sessions(r, acme.namespace)).find((s) => s.spec.serial === 'HELM-1'),
    undefined,
    'deleted, finalizer removed',
  );
  assert.not.match(a.operator.output(), /forbidden/i, 'no call was refused');
});

test('the chart ServiceAccount cannot touch Secrets, other namespaces or cluster-scoped resources', async () => {
  const r = theRig();
  const a = await release(acme);
  const as = { namespace: acme.namespace, serviceAccount: a.serviceAccount };
  const ns = ['-n', acme.namespace];
  for (const args of [
    ['create', 'proxysessions.cccp.tcxn.net', ...ns],
    ['patch', 'proxysessions.cccp.tcxn.net', '--subresource=status', ...ns],
    ['watch', 'proxysessions.cccp.tcxn.net', ...ns],
    ['update', `leases.coordination.k8s.io/${a.leaseName}`, ...ns],
    ['create', 'events', ...ns],
    // Each proxy pod's session Service, by name: its load-balancer address.
    ['get', `services/${a.release}-cccp-proxy-proxy-0`, ...ns],
  ]) {
    const answer = await canI(r, as, args);
    assert.is(answer.stdout.trim(), 'yes', `can ${args.join(' ')}`);
  }
  for (const args of [
    ['get', 'secrets', ...ns],
    ['list', 'secrets', ...ns],
    ['watch', 'secrets', ...ns],
    ['create', 'secrets', ...ns],
    ['update', 'proxysessions.cccp.tcxn.net/status', ...ns],
    ['update', 'leases.coordination.k8s.io/someone-elses-lease', ...ns],
    ['delete', 'events', ...ns],
    ['create', 'pods', ...ns],
    ['create', 'services', ...ns],
    ['get', 'services/kubernetes', ...ns],
    ['list', 'services', ...ns],
    ['watch', 'services', ...ns],
    ['patch', 'services', ...ns],
    ['delete', 'services', ...ns],
    ['patch', 'services/status', ...ns],
    ['list', 'services', '-n', 'globex'],
    ['list', 'services', '--all-namespaces'],
    ['list', 'endpoints', ...ns],
    ['create', 'rolebindings.rbac.authorization.k8s.io', ...ns],
    ['list', 'proxysessions.cccp.tcxn.net', '-n', 'globex'],
    ['create', 'events', '-n', 'default'],
    ['list', 'proxysessions.cccp.tcxn.net', '--all-namespaces'],
    ['list', 'namespaces'],
    ['list', 'nodes'],
    ['create', 'clusterroles.rbac.authorization.k8s.io'],
    ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
    ['update', 'customresourcedefinitions.apiextensions.k8s.io'],
  ]) {
    const answer = await canI(r, as, args);
    assert.is(answer.stdout.trim(), 'no', `cannot ${args.join(' ')}`);
  }
  const list = await canI(r, as, ['--list', ...ns]);
  const secretRules = list.stdout.split('\n').filter((line) => line.startsWith('secrets'));
  assert.is(secretRules.length, 1, `one Secrets rule:\n${list.stdout}`);
  assert.match(
    secretRules[0]!,
    /^secrets\s+\[\]\s+\[acme-cccp-proxy-admin-token\]\s+\[get patch\]/,
    'get and patch of the admin token Secret, by name only',
  );
  for (const verb of ['get', 'patch']) {
    assert.is(
      (await canI(r, as, [verb, 'secret/acme-cccp-proxy-admin-token', ...ns])).stdout.trim(),
      'yes',
      `${verb} its admin token Secret`,
    );
    assert.is((await canI(r, as, [verb, 'secret/acme-cccp-proxy-control-tokens', ...ns])).stdout.trim(), 'no', `${verb} another Secret`);
  }
  assert.not.match(list.stdout, /^\*\./m, 'no wildcard resource');
});

test('two releases in two namespaces with different port ranges run side by side without seeing each other', async () => {
  const r = theRig();
  const [a, b] = await Promise.all([release(acme), release(globex)]);
  const onA = await a.control<{ port: number }>('/on?serial=SIDE-A&persistent=true');
  const onB = await b.control<{ port: number }>('/on?serial=SIDE-B&persistent=true');
  assert.is(onA.status, 200, JSON.stringify(onA.body));
  assert.is(onB.status, 200, JSON.stringify(onB.body));
  assert.ok(inRange(onA.body.port, acme.portRange), `acme port ${onA.body.port} in ${JSON.stringify(acme.portRange)}`);
  assert.ok(inRange(onB.body.port, globex.portRange), `globex port ${onB.body.port} in ${JSON.stringify(globex.portRange)}`);

  assert.is((await a.control('/status?serial=SIDE-B')).status, 404, 'acme does not see globex sessions');
  assert.is((await b.control('/status?serial=SIDE-A')).status, 404, 'globex does not see acme sessions');
  assert.equal(
    (await sessions(r, acme.namespace)).map((s) => s.spec.serial),
    ['SIDE-A'],
  );
  assert.equal(
    (await sessions(r, globex.namespace)).map((s) => s.spec.serial),
    ['SIDE-B'],
  );

  await waitFor(
    async () => (await leaseHolder(r, globex.namespace, b.leaseName)) === b.operatorIdentity,
    15_000,
    'globex to hold its own Lease',
  );
  assert.is(await leaseHolder(r, acme.namespace, a.leaseName), a.operatorIdentity);

  // Each proxy carries its own release's session on its own device port.
  await exchange(a.devicePort, onA.body.port, 'SIDE-A');
  await exchange(b.devicePort, onB.body.port, 'SIDE-B');

  for (const [from, to] of [
    [a, b],
    [b, a],
  ] as const) {
    const answer = await canI(r, { namespace: from.namespace, serviceAccount: from.serviceAccount }, [
      'list',
      'proxysessions.cccp.tcxn.net',
      '-n',
      to.namespace,
    ]);
    assert.is(answer.stdout.trim(), 'no', `${from.release} cannot list ${to.release}'s sessions`);
  }
  assert.is((await a.control('/off?serial=SIDE-A')).status, 200);
  assert.is((await b.control('/off?serial=SIDE-B')).status, 200);
});

test.run();
