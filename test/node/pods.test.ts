// The product as pods on a real one-node cluster (test/kube/node.ts): the
// image built by buildah from the project's Dockerfile, the chart installed
// from helm/ with only values a user would set (plus the local image), and
// traffic from outside through the chart's Services — the first time the
// image starts, the probes are called, the read-only root filesystem is met,
// the Secrets are mounted and the Services route.
//
// Release "acme" (namespace labelled Pod Security `restricted`) runs in
// loadBalancer mode: devices reach it through the device Service, clients
// through the proxy pod's session Service, by NodePorts and by load-balancer
// address. Release "initech" runs two proxy pods in loadBalancer mode on the
// one node; "hooli" asks for two in hostNetwork mode, where the second finds
// no node of its own. Release "globex" runs in hostNetwork mode beside them:
// the proxy answers on the node's own address.
// Timings (restarts, takeover) are printed, not asserted: the machine is shared.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chartDir, runHelm, valuesFile } from '../helpers/helm.ts';
import { connect, Received, sleep, waitFor } from '../helpers/net.ts';
import { type NodeCluster, startNodeCluster } from '../kube/node.ts';

const nodeSuite = suite('product as pods on a real node');
let node: NodeCluster | undefined;
let startError: unknown;
const sockets: Socket[] = [];

const acme = {
  release: 'acme',
  namespace: 'acme',
  tokens: ['acme-token-first-0123456789'],
  values: {
    publicHost: 'proxy.acme.example',
    portRange: { min: 20000, max: 20009 },
    exposure: { mode: 'loadBalancer', loadBalancer: { portsPerPod: 10 } },
    operator: { leaseDurationSeconds: 6 },
  },
};
const globexPortRange = { min: 21000, max: 21009 };

nodeSuite.before(async () => {
  try {
    node = await startNodeCluster();
    console.log(`node: Ready with DNS and NetworkPolicy ${node.startSeconds.toFixed(1)} s after its start`);
  } catch (err) {
    startError = err;
  }
});

nodeSuite.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

/**
 * A test whose failure prints what the cluster looked like then: the pods,
 * the leases, recent events and the last lines of every operator and proxy
 * container's log. A failure on the node is rare and not repeated on demand,
 * so its evidence is printed at once.
 */
function test(name: string, body: () => Promise<void>): void {
  nodeSuite(name, async () => {
    try {
      await body();
    } catch (error) {
      await printDiagnostics().catch((e: Error) => console.log(`diagnostics failed: ${e.message}`));
      throw error;
    }
  });
}

async function printDiagnostics(): Promise<void> {
  const n = theNode();
  const show = async (title: string, args: string[]) => {
    const result = await n.kubectl(args);
    console.log(`--- ${title}:\n${(result.stdout + result.stderr).trim()}`);
  };
  await show('pods', ['get', 'pods', '-A', '-o', 'wide']);
  await show('leases', [
    'get',
    'leases',
    '-A',
    '-o',
    'custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,HOLDER:.spec.holderIdentity,RENEWED:.spec.renewTime,TRANSITIONS:.spec.leaseTransitions',
  ]);
  await show('events', ['get', 'events', '-A', '--sort-by=.lastTimestamp']);
  const list = await json<{ items: PodJson[] }>(['get', 'pods', '-A', '-l', 'app.kubernetes.io/component in (operator,proxy)']);
  for (const pod of list.items) {
    const { name, namespace } = pod.metadata;
    await show(`log of ${namespace}/${name}, last 40 lines`, ['logs', name, '-n', namespace, '--all-containers', '--tail=40']);
  }
}

// The node's teardown removes whatever the releases left running.
nodeSuite.after(async () => {
  await node?.stop();
});

function theNode(): NodeCluster {
  if (!node || startError) throw startError ?? new Error('node not started');
  return node;
}

function helm(args: string[]) {
  const n = theNode();
  return runHelm(n.binDir, args, n.kubeconfig);
}

async function mustHelm(args: string[]): Promise<string> {
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${result.code}): ${result.stderr.trim()}`);
  return result.stdout;
}

/** A user's values plus what a node without a registry needs: the local image, never pulled. */
function withLocalImage(values: object): object {
  const [repository, tag] = theNode().images.app.name.split(/:(?=[^:]+$)/) as [string, string];
  return { ...values, image: { repository, tag, pullPolicy: 'Never' } };
}

async function json<T>(args: string[]): Promise<T> {
  return JSON.parse(await theNode().mustKubectl([...args, '-o', 'json'])) as T;
}

interface ServiceJson {
  metadata: { name: string };
  spec: { type: string; clusterIP: string; ports: Array<{ name: string; port: number; nodePort?: number }> };
  status: { loadBalancer: { ingress?: Array<{ ip: string }> } };
}
interface PodJson {
  metadata: { name: string; namespace: string; uid: string; labels: Record<string, string> };
  status: {
    phase: string;
    podIP?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: Array<{ containerID: string }>;
  };
}

const readyPod = (p: PodJson) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function pods(namespace: string, component: string): Promise<PodJson[]> {
  const list = await json<{ items: PodJson[] }>(['get', 'pods', '-n', namespace, '-l', `app.kubernetes.io/component=${component}`]);
  return list.items;
}

async function controlUrl(release: string, namespace: string): Promise<string> {
  const service = await json<ServiceJson>(['get', 'service', `${release}-cccp-proxy-control`, '-n', namespace]);
  return `http://${service.spec.clusterIP}:${service.spec.ports[0]!.port}`;
}

async function call(url: string, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, body };
}

async function on(url: string, serial: string, token: string, query = ''): Promise<{ host: string; port: number }> {
  const { status, body } = await call(`${url}/on?serial=${serial}${query}`, token);
  assert.is(status, 200, `/on ${serial}: ${JSON.stringify(body)}`);
  return { host: body.host as string, port: body.port as number };
}

/** The proxy's LoadBalancer Services: the device port's, and one per proxy pod with its session ports. */
async function proxyServices(namespace: string): Promise<ServiceJson[]> {
  const list = await json<{ items: ServiceJson[] }>(['get', 'services', '-n', namespace, '-l', 'app.kubernetes.io/component=proxy']);
  return list.items.filter((s) => s.spec.type === 'LoadBalancer');
}

/** The LoadBalancer Service that lists `port`, and that port's entry. */
async function serviceOf(namespace: string, port: number): Promise<{ service: ServiceJson; nodePort: number }> {
  for (const service of await proxyServices(namespace)) {
    const entry = service.spec.ports.find((p) => p.port === port);
    if (entry?.nodePort) return { service, nodePort: entry.nodePort };
  }
  throw new Error(`no proxy Service of ${namespace} lists port ${port}`);
}

async function nodePortOf(_release: string, namespace: string, port: number): Promise<number> {
  return (await serviceOf(namespace, port)).nodePort;
}

async function open(host: string, port: number): Promise<Socket> {
  const socket = await connect(port, { host });
  socket.setNoDelay(true);
  sockets.push(socket);
  return socket;
}

function connectWithin(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('connect timed out'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      sockets.push(socket);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Connects until the port accepts and the connection stays up, within timeoutMs. */
async function openWhenListening(host: string, port: number, timeoutMs: number): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      // Each try from a new source port: while a Service has no ready local
      // endpoint kube-proxy drops the SYN, and conntrack would keep that
      // verdict for the retransmissions of the same connection.
      const socket = await connectWithin(host, port, 1_000);
      // A Service with no ready endpoint may accept nothing or reset: give it a moment.
      await sleep(200);
      if (!socket.destroyed && socket.readyState === 'open') return socket;
    } catch {
      // refused: not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${host}:${port} not listening within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Sends a probe byte from `from` every 100 ms until one reaches `to`; the probes are read and dropped. */
async function crossed(from: Socket, to: Socket, way: string): Promise<void> {
  let arrived = false;
  to.once('data', () => {
    arrived = true;
  });
  const deadline = Date.now() + 30_000;
  while (!arrived) {
    if (Date.now() > deadline) throw new Error(`no byte crossed ${way} in 30 s`);
    from.write('.');
    await sleep(100);
  }
}

/** A device and a client joined through the given addresses exchange `size` random bytes each way, exactly. */
async function exchange(
  device: { host: string; port: number },
  client: { host: string; port: number },
  serial: string,
  size: number,
  opts: { waitMs?: number } = {},
): Promise<void> {
  const deviceSocket = opts.waitMs ? await openWhenListening(device.host, device.port, opts.waitMs) : await open(device.host, device.port);
  deviceSocket.write(`${serial}\r`);
  const clientSocket = opts.waitMs ? await openWhenListening(client.host, client.port, opts.waitMs) : await open(client.host, client.port);
  // Both parties attached before payload flows: data meanwhile is discarded by
  // design. A fixed wait of 500 ms was too short for a device through a
  // NodePort on a loaded machine: probes prove it, then go quiet.
  await crossed(clientSocket, deviceSocket, 'client to device');
  await crossed(deviceSocket, clientSocket, 'device to client');
  await sleep(300);
  const atDevice = new Received(deviceSocket);
  const atClient = new Received(clientSocket);
  const up = randomBytes(size);
  const down = randomBytes(size);
  deviceSocket.write(up);
  clientSocket.write(down);
  const [gotAtClient, gotAtDevice] = await Promise.all([atClient.untilLength(size, 30_000), atDevice.untilLength(size, 30_000)]);
  assert.ok(gotAtClient.equals(up), 'client received the device bytes exactly');
  assert.ok(gotAtDevice.equals(down), 'device received the client bytes exactly');
}

async function helmInstall(release: string, namespace: string, values: object): Promise<number> {
  const started = Date.now();
  await mustHelm(['install', release, chartDir, '-n', namespace, '-f', valuesFile(withLocalImage(values)), '--wait', '--timeout=180s']);
  return (Date.now() - started) / 1000;
}

test('helm install --wait on the node: both operator replicas and the proxy Ready, under Pod Security restricted', async () => {
  const n = theNode();
  await n.mustKubectl(['create', 'namespace', acme.namespace]);
  await n.mustKubectl(['label', 'namespace', acme.namespace, 'pod-security.kubernetes.io/enforce=restricted']);
  const seconds = await helmInstall(acme.release, acme.namespace, { ...acme.values, controlTokens: acme.tokens });
  console.log(`helm install --wait (loadBalancer mode): ${seconds.toFixed(1)} s`);
  const operators = await pods(acme.namespace, 'operator');
  const proxies = await pods(acme.namespace, 'proxy');
  assert.is(operators.filter(readyPod).length, 2, 'two operator replicas Ready');
  assert.is(proxies.filter(readyPod).length, 1, 'the proxy Ready');

  // The label is enforced, so the pods above passed `restricted`: a pod that
  // breaks it is refused in the same namespace.
  const refused = await n.kubectl([
    'run',
    'rooty',
    '-n',
    acme.namespace,
    `--image=${n.images.app.name}`,
    '--image-pull-policy=Never',
    '--restart=Never',
  ]);
  assert.is.not(refused.code, 0, 'a pod violating restricted is refused');
  assert.match(refused.stderr, /violates PodSecurity "restricted/);
});

test('/on through the Control API Service; a device and a client through the proxy Service NodePorts, byte-exact; kubectl get pxs', async () => {
  const n = theNode();
  const url = await controlUrl(acme.release, acme.namespace);
  const { status } = await call(`${url}/on?serial=NOAUTH`);
  assert.is(status, 401, 'the Control API wants the token');
  const session = await on(url, 'SN-ACME-1', acme.tokens[0]!, '&persistent=true');
  assert.ok(session.port >= 20000 && session.port <= 20009, `port ${session.port} in the range`);
  const sessionService = (await serviceOf(acme.namespace, session.port)).service;
  assert.is(sessionService.metadata.name, `${acme.release}-cccp-proxy-proxy-0`, 'the session port is on the pod-0 Service');
  const sessionLbIp = sessionService.status.loadBalancer.ingress?.[0]?.ip;
  assert.ok(sessionLbIp, 'the pod-0 Service has a load-balancer address');
  // The operator answers its pod's Service address, or publicHost until it reads Services.
  assert.ok([sessionLbIp, 'proxy.acme.example'].includes(session.host), `host ${session.host}`);

  const deviceNodePort = await nodePortOf(acme.release, acme.namespace, 9000);
  const sessionNodePort = await nodePortOf(acme.release, acme.namespace, session.port);
  await exchange({ host: n.nodeIp, port: deviceNodePort }, { host: n.nodeIp, port: sessionNodePort }, 'SN-ACME-1', 256 * 1024);

  // The same session through the load balancers' addresses and the Service ports themselves.
  const lb = await json<ServiceJson>(['get', 'service', `${acme.release}-cccp-proxy-proxy`, '-n', acme.namespace]);
  const lbIp = lb.status.loadBalancer.ingress?.[0]?.ip;
  assert.ok(lbIp, 'the device Service has a load-balancer address');
  assert.is.not(lbIp, sessionLbIp, 'two load balancers');
  await exchange({ host: lbIp, port: 9000 }, { host: sessionLbIp, port: session.port }, 'SN-ACME-1', 64 * 1024);

  await waitFor(
    async () => {
      const table = await n.mustKubectl(['get', 'pxs', '-n', acme.namespace]);
      return /SN-ACME-1\s+\d+\s+Active\s+\S+\s+true\s+true\s+[1-9]/.test(table);
    },
    10_000,
    'kubectl get pxs to show the session Active with device, client and bytes',
  );
  const table = await n.mustKubectl(['get', 'pxs', '-n', acme.namespace]);
  console.log(table.trimEnd());
  assert.match(table.split('\n')[0]!, /SERIAL\s+PORT\s+PHASE\s+PROXY\s+DEVICE\s+CLIENT\s+TRANSFERRED\s+AGE/);
});

test('read-only root filesystem: the containers wrote nothing outside their volumes', async () => {
  const n = theNode();
  for (const component of ['operator', 'proxy']) {
    const [pod] = await pods(acme.namespace, component);
    const name = pod!.metadata.name;
    const write = await n.kubectl([
      'exec',
      '-n',
      acme.namespace,
      name,
      '--',
      'node',
      '-e',
      'require("fs").writeFileSync("/app/probe", "x")',
    ]);
    assert.is.not(write.code, 0, `${component}: writing the image's files fails`);
    assert.match(write.stderr, /EROFS|read-only file system/i);
    const tmp = await n.kubectl([
      'exec',
      '-n',
      acme.namespace,
      name,
      '--',
      'node',
      '-e',
      'require("fs").writeFileSync("/tmp/probe", "x"); require("fs").unlinkSync("/tmp/probe")',
    ]);
    assert.is(tmp.code, 0, `${component}: /tmp (an emptyDir) is writable: ${tmp.stderr}`);
  }
  // Each container's writable layer holds nothing but the mount points the
  // runtime made for the volumes: nothing was written outside the mounted
  // volumes. The layer is the upperdir of the container's rootfs snapshot.
  for (const component of ['operator', 'proxy']) {
    for (const pod of await pods(acme.namespace, component)) {
      for (const status of pod.status.containerStatuses ?? []) {
        const id = status.containerID.replace(/^containerd:\/\//, '');
        const info = JSON.parse(await n.ctr(['containers', 'info', id])) as {
          SnapshotKey: string;
          Snapshotter: string;
          Spec: { mounts: Array<{ destination: string }> };
        };
        const mounts = await n.ctr(['snapshots', '--snapshotter', info.Snapshotter, 'mounts', '/mnt', info.SnapshotKey]);
        const upper = /upperdir=([^,\s]+)/.exec(mounts)?.[1];
        assert.ok(upper, `${pod.metadata.name}: rootfs snapshot found`);
        const found = await n.inNode('find', [upper!, '-mindepth', '1']);
        const mountPoints = info.Spec.mounts.map((m) => m.destination);
        const written = found.stdout
          .split('\n')
          .filter(Boolean)
          .map((f) => f.slice(upper!.length))
          .filter((f) => !mountPoints.some((m) => m === f || m.startsWith(`${f}/`)));
        assert.equal(written, [], `${pod.metadata.name}: files written to the container's own layer`);
      }
    }
  }
});

test('proxy pod deleted: every session listens again on its port (timed)', async () => {
  const n = theNode();
  const url = await controlUrl(acme.release, acme.namespace);
  const serials = ['SN-ACME-2', 'SN-ACME-3'];
  const sessions = new Map<string, number>();
  for (const serial of serials) sessions.set(serial, (await on(url, serial, acme.tokens[0]!, '&persistent=true')).port);
  sessions.set('SN-ACME-1', (await on(url, 'SN-ACME-1', acme.tokens[0]!, '&persistent=true')).port);
  const [proxy] = await pods(acme.namespace, 'proxy');
  const deleted = Date.now();
  await n.mustKubectl(['delete', 'pod', '-n', acme.namespace, proxy!.metadata.name, '--wait=false']);
  const deviceNodePort = await nodePortOf(acme.release, acme.namespace, 9000);
  await waitFor(
    async () => {
      const list = await pods(acme.namespace, 'proxy');
      return list.some((p) => p.metadata.uid !== proxy!.metadata.uid && readyPod(p));
    },
    90_000,
    'a new proxy pod Ready',
  );
  const readyAfter = (Date.now() - deleted) / 1000;
  for (const [serial, port] of sessions) {
    const nodePort = await nodePortOf(acme.release, acme.namespace, port);
    await exchange({ host: n.nodeIp, port: deviceNodePort }, { host: n.nodeIp, port: nodePort }, serial, 32 * 1024, { waitMs: 60_000 });
  }
  const allBack = (Date.now() - deleted) / 1000;
  console.log(
    `proxy pod deleted: new pod Ready after ${readyAfter.toFixed(1)} s; all ${sessions.size} sessions exchanging data again on their ports after ${allBack.toFixed(1)} s`,
  );
  for (const [serial, port] of sessions)
    assert.is((await on(url, serial, acme.tokens[0]!, '&persistent=true')).port, port, `${serial} kept its port`);
});

test('leader operator pod deleted: the other replica takes over (timed)', async () => {
  const n = theNode();
  const leaseName = `${acme.release}-cccp-proxy-operator`;
  const holder = (await n.mustKubectl(['get', 'lease', leaseName, '-n', acme.namespace, '-o', 'jsonpath={.spec.holderIdentity}'])).trim();
  const operatorNames = (await pods(acme.namespace, 'operator')).map((p) => p.metadata.name);
  assert.ok(operatorNames.includes(holder), `the lease holder ${holder} is an operator pod (${operatorNames.join(', ')})`);
  const deleted = Date.now();
  await n.mustKubectl(['delete', 'pod', '-n', acme.namespace, holder, '--wait=false']);
  let newHolder = '';
  await waitFor(
    async () => {
      newHolder = (
        await n.kubectl(['get', 'lease', leaseName, '-n', acme.namespace, '-o', 'jsonpath={.spec.holderIdentity}'])
      ).stdout.trim();
      return newHolder !== '' && newHolder !== holder;
    },
    60_000,
    'another replica to hold the lease',
  );
  const tookLease = (Date.now() - deleted) / 1000;
  // The surviving replica, or the Deployment's replacement if it started and
  // asked first: either is a running operator pod other than the one deleted.
  const nowRunning = (await pods(acme.namespace, 'operator')).map((p) => p.metadata.name);
  assert.ok(nowRunning.includes(newHolder), `the new lease holder ${newHolder} is a running operator pod (${nowRunning.join(', ')})`);
  const by = operatorNames.includes(newHolder) ? 'the surviving replica' : 'the replacement pod';
  // The new leader reconciles: a new session is allocated and carries data.
  const url = await controlUrl(acme.release, acme.namespace);
  const session = await on(url, 'SN-ACME-4', acme.tokens[0]!);
  const reconciled = (Date.now() - deleted) / 1000;
  const deviceNodePort = await nodePortOf(acme.release, acme.namespace, 9000);
  await exchange(
    { host: n.nodeIp, port: deviceNodePort },
    { host: n.nodeIp, port: await nodePortOf(acme.release, acme.namespace, session.port) },
    'SN-ACME-4',
    16 * 1024,
  );
  console.log(
    `leader operator pod deleted: lease taken over by ${by} after ${tookLease.toFixed(1)} s; a new /on answered after ${reconciled.toFixed(1)} s`,
  );
  await waitFor(
    async () => (await pods(acme.namespace, 'operator')).filter(readyPod).length === 2,
    90_000,
    'two operator replicas Ready again',
  );
});

test('an operator that cannot reach the proxy admin port goes unready', async () => {
  const n = theNode();
  await n.mustKubectl(['scale', 'statefulset', `${acme.release}-cccp-proxy-proxy`, '-n', acme.namespace, '--replicas=0']);
  const leaseName = `${acme.release}-cccp-proxy-operator`;
  try {
    const leader = (await n.mustKubectl(['get', 'lease', leaseName, '-n', acme.namespace, '-o', 'jsonpath={.spec.holderIdentity}'])).trim();
    await waitFor(
      async () => {
        const list = await pods(acme.namespace, 'operator');
        return list.some((p) => p.metadata.name === leader && !readyPod(p));
      },
      60_000,
      'the leading operator to report unready',
    );
  } finally {
    await n.mustKubectl(['scale', 'statefulset', `${acme.release}-cccp-proxy-proxy`, '-n', acme.namespace, '--replicas=1']);
  }
  await waitFor(async () => (await pods(acme.namespace, 'operator')).filter(readyPod).length === 2, 90_000, 'both operators Ready again');
  // The operators can reach the proxy before the kubelet's next readiness probe marks its pod Ready.
  await waitFor(async () => (await pods(acme.namespace, 'proxy')).some(readyPod), 90_000, 'the proxy pod Ready again');
});

/** Runs a one-off pod of the project image in `namespace` (restricted-compliant) and returns its log. */
async function probePod(namespace: string, name: string, script: string): Promise<string> {
  const n = theNode();
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/name': 'network-probe' } },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'probe',
          image: n.images.app.name,
          imagePullPolicy: 'Never',
          args: ['-e', script],
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  };
  await n.mustKubectl(['apply', '-f', '-'], JSON.stringify(pod));
  try {
    await waitFor(
      async () => {
        const phase = (await n.kubectl(['get', 'pod', name, '-n', namespace, '-o', 'jsonpath={.status.phase}'])).stdout;
        return phase === 'Succeeded' || phase === 'Failed';
      },
      90_000,
      `pod ${name} to finish`,
    );
    return await n.mustKubectl(['logs', name, '-n', namespace]);
  } finally {
    await n.kubectl(['delete', 'pod', name, '-n', namespace, '--wait=false']);
  }
}

// Tries each port of `host` with a 3 s limit and prints "port:open" or "port:blocked".
const probeScript = (host: string, ports: number[]) => `
const net = require('net');
const tryPort = (port) => new Promise((resolve) => {
  const s = net.connect({ host: '${host}', port });
  const done = (what) => { s.destroy(); resolve(port + ':' + what); };
  s.setTimeout(3000, () => done('blocked'));
  s.once('connect', () => done('open'));
  s.once('error', () => done('blocked'));
});
Promise.all(${JSON.stringify(ports)}.map(tryPort)).then((r) => console.log(r.join(' ')));
`;

test('NetworkPolicy (kube-router): only operator pods reach the proxy admin port', async () => {
  const n = theNode();
  const [proxy] = (await pods(acme.namespace, 'proxy')).filter(readyPod);
  const proxyIp = proxy!.status.podIP!;
  const policyName = `${acme.release}-cccp-proxy-proxy`;
  // The operators reach it: they are Ready, and the leader's readiness needs the admin API.
  assert.is((await pods(acme.namespace, 'operator')).filter(readyPod).length, 2);
  // Another pod in the same namespace, and the machine outside the cluster, do not;
  // the device port stays open to them.
  assert.is((await probePod(acme.namespace, 'probe-with-policy', probeScript(proxyIp, [9001, 9000]))).trim(), '9001:blocked 9000:open');
  const fromHost = await connectWithin(proxyIp, 9001, 3_000).then(
    (s) => {
      s.destroy();
      return 'open';
    },
    () => 'blocked',
  );
  assert.is(fromHost, 'blocked', 'the admin port from outside the cluster');

  // The check can fail: without the policy the same pod reaches the admin port.
  const policy = await n.mustKubectl(['get', 'networkpolicy', policyName, '-n', acme.namespace, '-o', 'json']);
  await n.mustKubectl(['delete', 'networkpolicy', policyName, '-n', acme.namespace]);
  try {
    await waitFor(
      async () =>
        (await probePod(acme.namespace, `probe-without-policy-${Date.now() % 100000}`, probeScript(proxyIp, [9001]))).trim() ===
        '9001:open',
      60_000,
      'the admin port to be reachable without the policy',
    );
  } finally {
    const restored = JSON.parse(policy) as { metadata: Record<string, unknown> };
    restored.metadata = {
      name: policyName,
      namespace: acme.namespace,
      labels: restored.metadata.labels,
      annotations: restored.metadata.annotations,
    };
    await n.mustKubectl(['create', '-f', '-'], JSON.stringify(restored));
  }
});

test('helm test runs the chart test pod with the project image', async () => {
  if (!existsSync(join(chartDir, 'templates', 'tests'))) {
    console.log('helm test: the chart has no test pod (templates/tests/) to run');
    return;
  }
  const out = await mustHelm(['test', acme.release, '-n', acme.namespace, '--timeout=120s']);
  assert.match(out, /Phase:\s+Succeeded/);
});

test('helm upgrade with rotated Control API tokens: the old token refused, the new one accepted (timed)', async () => {
  // Rotation without a restart needs the operator to read the tokens from
  // the mounted Secret (CCCP_CONTROL_TOKENS_FILE); a chart that passes them
  // as an environment variable cannot rotate them in running pods.
  const rendered = await mustHelm(['get', 'manifest', acme.release, '-n', acme.namespace]);
  if (!rendered.includes('CCCP_CONTROL_TOKENS_FILE')) {
    console.log('token rotation: the chart passes the tokens as an environment variable; nothing to rotate in place');
    return;
  }
  const url = await controlUrl(acme.release, acme.namespace);
  const [oldToken] = acme.tokens;
  const newToken = 'acme-token-second-9876543210';
  const started = Date.now();
  await mustHelm([
    'upgrade',
    acme.release,
    chartDir,
    '-n',
    acme.namespace,
    '--wait',
    '--timeout=180s',
    '-f',
    valuesFile(withLocalImage({ ...acme.values, controlTokens: [newToken] })),
  ]);
  const upgraded = (Date.now() - started) / 1000;
  // Each replica on its own (pod addresses): each reads the Secret's file
  // when the kubelet has updated it.
  const replicas = (await pods(acme.namespace, 'operator')).map((p) => `http://${p.status.podIP}:8080`);
  assert.is(replicas.length, 2);
  // Asked four times a second for the minute or so the kubelet takes. A
  // request that fails outright is counted, not fatal: what is timed here is
  // the rotation, and one reset connection over the pod network is not it.
  const failures: string[] = [];
  await waitFor(
    async () => {
      await sleep(250);
      try {
        const answers = await Promise.all(
          replicas.flatMap((base) => [
            call(`${base}/status?serial=SN-ACME-1`, oldToken).then((r) => r.status === 401),
            call(`${base}/status?serial=SN-ACME-1`, newToken).then((r) => r.status === 200),
          ]),
        );
        return answers.every(Boolean);
      } catch (error) {
        failures.push(String((error as Error).cause ?? error));
        assert.ok(failures.length <= 3, `Control API requests failed: ${failures.join('; ')}`);
        return false;
      }
    },
    180_000,
    'every replica to refuse the old token and accept the new one',
  );
  if (failures.length > 0) console.log(`token rotation: ${failures.length} request(s) failed while waiting: ${failures.join('; ')}`);
  acme.tokens = [newToken];
  for (let i = 0; i < 6; i++) assert.is((await call(`${url}/status?serial=SN-ACME-1`, oldToken)).status, 401, 'through the Service too');
  console.log(
    `token rotation: helm upgrade --wait ${upgraded.toFixed(1)} s; old token refused and new accepted ${((Date.now() - started) / 1000).toFixed(1)} s after the upgrade began`,
  );
});

interface EndpointSliceJson {
  endpoints?: Array<{ addresses: string[]; targetRef?: { name: string } }>;
}

/** The pod names behind a Service, from its EndpointSlices (what kube-proxy routes to). */
async function endpointPods(namespace: string, service: string): Promise<string[]> {
  const list = await json<{ items: EndpointSliceJson[] }>([
    'get',
    'endpointslices',
    '-n',
    namespace,
    '-l',
    `kubernetes.io/service-name=${service}`,
  ]);
  return list.items
    .flatMap((slice) => slice.endpoints ?? [])
    .map((e) => e.targetRef?.name ?? '')
    .sort();
}

async function podEnv(namespace: string, pod: string, name: string): Promise<string> {
  return (await theNode().mustKubectl(['exec', '-n', namespace, pod, '--', 'node', '-e', `console.log(process.env.${name} ?? '')`])).trim();
}

test('proxy.replicas=2 in loadBalancer mode on one node: two pods with their ordinals, each session Service routing to its own pod, the device Service to both, stable DNS names; a deleted pod returns under its name and the other never notices', async () => {
  const n = theNode();
  const release = 'initech';
  const set = `${release}-cccp-proxy-proxy`;
  await n.mustKubectl(['create', 'namespace', release]);
  const started = Date.now();
  // No --wait: the operator's part of several pods is not what this checks.
  await mustHelm([
    'install',
    release,
    chartDir,
    '-n',
    release,
    '-f',
    valuesFile(
      withLocalImage({
        publicHost: 'proxy.initech.example',
        portRange: { min: 22000, max: 22009 },
        exposure: { mode: 'loadBalancer', loadBalancer: { portsPerPod: 5 } },
        operator: { replicas: 1 },
        proxy: { replicas: 2 },
      }),
    ),
  ]);
  // Uninstalled even when a check fails, so the tests after it get the node's CPU.
  let standIn: Promise<unknown> = Promise.resolve();
  try {
    await waitFor(async () => (await pods(release, 'proxy')).filter(readyPod).length === 2, 180_000, 'two proxy pods Ready');
    console.log(`two proxy pods Ready ${((Date.now() - started) / 1000).toFixed(1)} s after helm install`);
    const byName = new Map((await pods(release, 'proxy')).map((p) => [p.metadata.name, p]));
    assert.equal([...byName.keys()].sort(), [`${set}-0`, `${set}-1`]);
    for (const ordinal of ['0', '1']) {
      const pod = byName.get(`${set}-${ordinal}`)!;
      assert.is(pod.metadata.labels['apps.kubernetes.io/pod-index'], ordinal);
      assert.is(await podEnv(release, pod.metadata.name, 'CCCP_POD_ORDINAL'), ordinal, 'the ordinal reaches the proxy process');
      assert.equal(
        await endpointPods(release, `${set}-${ordinal}`),
        [pod.metadata.name],
        `Service ${set}-${ordinal} routes to its pod only`,
      );
    }
    assert.equal(await endpointPods(release, set), [`${set}-0`, `${set}-1`], 'the device Service routes to both pods');
    const services = await proxyServices(release);
    const addresses = services.map((s) => s.status.loadBalancer.ingress?.[0]?.ip);
    assert.is(services.length, 3);
    assert.is(new Set(addresses).size, 3, `three load-balancer addresses: ${addresses.join(', ')}`);
    // The device port answers through the device Service's load balancer.
    const device = await openWhenListening(addresses[services.findIndex((s) => s.metadata.name === set)]!, 9000, 30_000);
    device.destroy();

    // The names the operator and the peers use resolve, inside the cluster, to each pod.
    const host = (ordinal: number) => `${set}-${ordinal}.${release}-cccp-proxy-proxy-pods.${release}.svc`;
    const resolved = (
      await probePod(
        release,
        'probe-dns',
        // CoreDNS may answer EAI_AGAIN for a moment on a busy node: each name is asked again, for up to 30 s.
        `const ask = (name, left) => require('dns').promises.lookup(name).catch((e) => (left > 0 ? new Promise((r) => setTimeout(r, 1000)).then(() => ask(name, left - 1)) : Promise.reject(e))); ask('${host(0)}', 30).then((a) => ask('${host(1)}', 30).then((b) => console.log(a.address + ' ' + b.address)))`,
      )
    ).trim();
    assert.is(resolved, `${byName.get(`${set}-0`)!.status.podIP} ${byName.get(`${set}-1`)!.status.podIP}`);

    // The peer port (devices handed between pods) admits the release's proxy
    // pods only. Something must listen on it in pod 0: the proxy, or else a
    // stand-in started in that pod for a minute.
    const pod0Ip = byName.get(`${set}-0`)!.status.podIP!;
    standIn = n.kubectl([
      'exec',
      '-n',
      release,
      `${set}-0`,
      '--',
      'node',
      '-e',
      "const s = require('net').createServer((c) => c.end()); s.on('error', (e) => console.log(e.code)); s.listen(9002); setTimeout(() => process.exit(0), 60000);",
    ]);
    await waitFor(
      async () =>
        (await n.kubectl(['exec', '-n', release, `${set}-1`, '--', 'node', '-e', probeScript(pod0Ip, [9002])])).stdout.trim() ===
        '9002:open',
      30_000,
      'the peer port of pod 0 open to pod 1',
    );
    assert.is(
      (await probePod(release, 'probe-peer', probeScript(pod0Ip, [9002, 9000]))).trim(),
      '9002:blocked 9000:open',
      'another pod of the namespace does not reach the peer port',
    );

    const other = byName.get(`${set}-1`)!;
    const deleted = Date.now();
    await n.mustKubectl(['delete', 'pod', '-n', release, `${set}-0`, '--wait=false']);
    await waitFor(
      async () =>
        (await pods(release, 'proxy')).some(
          (p) => p.metadata.name === `${set}-0` && p.metadata.uid !== byName.get(`${set}-0`)!.metadata.uid && readyPod(p),
        ),
      120_000,
      `a new ${set}-0 Ready`,
    );
    console.log(`proxy pod 0 of 2 deleted: back under its name, Ready, after ${((Date.now() - deleted) / 1000).toFixed(1)} s`);
    const after = (await pods(release, 'proxy')).find((p) => p.metadata.name === `${set}-1`)!;
    assert.is(after.metadata.uid, other.metadata.uid, 'pod 1 is the same pod');
    assert.equal(await endpointPods(release, `${set}-0`), [`${set}-0`], 'the returned pod is behind its Service again');
  } finally {
    await mustHelm(['uninstall', release, '-n', release, '--no-hooks', '--wait', '--timeout=120s']);
    await standIn;
  }
});

test('proxy.replicas=2 in hostNetwork mode on one node: the first pod runs, the second stays Pending, refused by the scheduler (one pod per node)', async () => {
  const n = theNode();
  const release = 'hooli';
  const set = `${release}-cccp-proxy-proxy`;
  await n.mustKubectl(['create', 'namespace', release]);
  await mustHelm([
    'install',
    release,
    chartDir,
    '-n',
    release,
    '-f',
    valuesFile(
      withLocalImage({
        publicHost: n.nodeIp,
        devicePort: 9200,
        portRange: { min: 23000, max: 23009 },
        exposure: { mode: 'hostNetwork', hostNetwork: { nodeSelector: { 'kubernetes.io/hostname': n.nodeName } } },
        operator: { replicas: 1 },
        proxy: { replicas: 2, adminPort: 9201, peerPort: 9202, healthPort: 9290 },
      }),
    ),
  ]);
  try {
    await waitFor(
      async () => (await pods(release, 'proxy')).some((p) => p.metadata.name === `${set}-0` && readyPod(p)),
      180_000,
      `${set}-0 Ready`,
    );
    assert.is(await podEnv(release, `${set}-0`, 'CCCP_PUBLIC_HOST'), n.nodeIp, "the pod reports its node's address");
    let message = '';
    await waitFor(
      async () => {
        const events = await json<{ items: Array<{ reason: string; message: string }> }>([
          'get',
          'events',
          '-n',
          release,
          '--field-selector',
          `involvedObject.name=${set}-1`,
        ]);
        message = events.items.find((e) => e.reason === 'FailedScheduling')?.message ?? '';
        return message !== '';
      },
      60_000,
      `the scheduler to refuse ${set}-1`,
    );
    // The scheduler names the first filter that refuses: the node's ports (a
    // hostNetwork pod's container ports are host ports) or the anti-affinity.
    console.log(`second hostNetwork proxy pod on one node: ${message}`);
    assert.match(message, /anti-affinity|free ports/);
    const second = (await pods(release, 'proxy')).find((p) => p.metadata.name === `${set}-1`);
    assert.is(second?.status.phase, 'Pending');
  } finally {
    await mustHelm(['uninstall', release, '-n', release, '--no-hooks', '--wait', '--timeout=120s']);
  }
});

test('a second release in hostNetwork mode side by side: data through the node address', async () => {
  const n = theNode();
  await n.mustKubectl(['create', 'namespace', 'globex']);
  const seconds = await helmInstall('globex', 'globex', {
    publicHost: n.nodeIp,
    devicePort: 9100,
    portRange: globexPortRange,
    exposure: { mode: 'hostNetwork', hostNetwork: { nodeName: n.nodeName } },
    proxy: { adminPort: 9101, peerPort: 9102, healthPort: 9190 },
  });
  console.log(`helm install --wait (hostNetwork mode): ${seconds.toFixed(1)} s`);
  const url = await controlUrl('globex', 'globex');
  const { status, body } = await call(`${url}/on?serial=SN-GLOBEX-1`);
  assert.is(status, 200, JSON.stringify(body));
  assert.is(body.host, n.nodeIp);
  await exchange({ host: n.nodeIp, port: 9100 }, { host: n.nodeIp, port: body.port as number }, 'SN-GLOBEX-1', 128 * 1024);
  // acme is untouched by globex.
  const acmeUrl = await controlUrl(acme.release, acme.namespace);
  assert.is((await call(`${acmeUrl}/status?serial=SN-GLOBEX-1`, acme.tokens[0])).status, 404);
  assert.is((await call(`${acmeUrl}/status?serial=SN-ACME-1`, acme.tokens[0])).status, 200);
});

test("helm uninstall: nothing left but the CRD and the operators' Lease, no stuck ProxySession", async () => {
  const n = theNode();
  const started = Date.now();
  // A live session: uninstall must end it, not leave it stuck on its finalizer.
  assert.ok((await n.mustKubectl(['get', 'pxs', '-n', 'globex', '-o', 'name'])).trim() !== '', 'globex has a session');
  await mustHelm(['uninstall', 'globex', '-n', 'globex', '--wait', '--timeout=120s']);
  const leaseName = 'lease.coordination.k8s.io/globex-cccp-proxy-operator';
  let own: string[] = [];
  await waitFor(
    async () => {
      const left = await n.mustKubectl([
        'get',
        'all,pxs,secrets,configmaps,leases,roles,rolebindings,serviceaccounts,networkpolicies,poddisruptionbudgets,jobs',
        '-n',
        'globex',
        '-o',
        'name',
      ]);
      // What every namespace has regardless of releases; and the operators'
      // Lease, which they create at run time and helm does not own (checked below).
      own = left.split('\n').filter((l) => l && l !== leaseName && !/^(serviceaccount\/default|configmap\/kube-root-ca\.crt)$/.test(l));
      return own.length === 0;
    },
    90_000,
    'the globex namespace to be empty',
  ).catch((err: Error) => {
    throw new Error(`${err.message}; left: ${own.join(', ')}`);
  });
  console.log(`helm uninstall --wait: namespace empty after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const lease = await n.kubectl(['get', leaseName, '-n', 'globex', '-o', 'jsonpath={.spec.holderIdentity}']);
  // Known gap, reported rather than hidden: helm does not own the Lease, and
  // a leader stopping during uninstall cannot release it (its Role goes at
  // the same moment), so it stays, naming a pod that no longer exists.
  if (lease.code === 0) console.log(`helm uninstall: the operators' Lease stays behind (holder "${lease.stdout.trim()}")`);
  assert.is((await n.kubectl(['get', 'crd', 'proxysessions.cccp.tcxn.net'])).code, 0, 'the CRD stays');
});

nodeSuite.run();
