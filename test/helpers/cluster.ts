// The cluster mode under test: the rig's real kube-apiserver with the CRD,
// a proxy pod and operator replicas as real processes, wired like the chart
// wires them (admin API on TCP with a token, KUBECONFIG for the operator).
import { fileURLToPath } from 'node:url';
import type { Test } from 'uvu';
import { type Rig, startRig } from '../kube/rig.ts';
import { suiteFixture } from './fixture.ts';
import { type Answer, request } from './http.ts';
import { freePort, freePortRange, freePorts, waitFor } from './net.ts';
import { type Started, startNodeProcess, withProxyYoungGeneration } from './processes.ts';

const crdFile = fileURLToPath(new URL('../../crds/proxysession.yaml', import.meta.url));
const ADMIN_TOKEN = 'cluster-test-admin-token-0123456789';

export interface ClusterOptions {
  namespace: string;
  portRange: { min: number; max: number };
  leaseDurationSeconds?: number;
  /** Acts as this kubeconfig instead of the rig's admin. */
  operatorKubeconfig?: string;
  /** Serve the proxy's /healthz, /readyz and /metrics on a port of its own (proxyHealthPort). */
  proxyMetrics?: boolean;
  /** Runs the proxy pod inside this network namespace (see helpers/netlab.ts), reached at `address`. */
  proxyNetns?: { exec: string[]; address: string };
  /** More environment for the proxy pod. */
  proxyEnv?: Record<string, string>;
  /**
   * Several proxy pods: pod i runs at 127.0.0.(10+i) with the same ports,
   * as pods on nodes of their own (every pod has the whole range).
   */
  proxyPods?: number;
  /**
   * Proxy pods start without CCCP_PROXY_REPLICAS, as the chart starts them:
   * they know their peers only once the operator tells them (PUT /v1/peers).
   */
  podCountFromOperator?: boolean;
}

/** Where the pods of a several-pod cluster run: 127.0.0.10, 127.0.0.11, ... */
const POD_ADDRESS = '127.0.0.1{ordinal}';

export function podAddress(ordinal: number): string {
  return POD_ADDRESS.replace('{ordinal}', String(ordinal));
}

export class TestCluster {
  /** The proxy pods by ordinal; `proxy` is the first. */
  readonly proxies: Array<Started | undefined> = [];
  readonly operators = new Map<string, Started>();
  readonly controlPorts = new Map<string, number>();
  devicePort = 0;
  adminPort = 0;
  /** The port on which several proxy pods hand devices to each other; 0 with one pod. */
  peerPort = 0;
  /** The proxy's health and metrics port; 0 when off. The same across proxy restarts. */
  proxyHealthPort = 0;

  private constructor(
    readonly rig: Rig,
    readonly opts: ClusterOptions,
  ) {}

  static async start(rig: Rig, opts: ClusterOptions): Promise<TestCluster> {
    const cluster = new TestCluster(rig, opts);
    [cluster.devicePort, cluster.adminPort] = (await freePorts(2)) as [number, number];
    if (opts.proxyMetrics) cluster.proxyHealthPort = await freePort();
    if (opts.proxyPods) cluster.peerPort = await freePort();
    await mustKubectl(rig, ['create', 'namespace', opts.namespace], true);
    await Promise.all(Array.from({ length: cluster.podCount }, (_, ordinal) => cluster.startProxy(ordinal)));
    return cluster;
  }

  get podCount(): number {
    return this.opts.proxyPods ?? 1;
  }

  get proxy(): Started | undefined {
    return this.proxies[0];
  }

  /** Starts (or starts again) proxy pod `ordinal`, on the same address and ports. */
  async startProxy(ordinal = 0): Promise<Started> {
    const netns = this.opts.proxyNetns;
    const host = this.podHost(ordinal);
    const bind = netns ? '0.0.0.0' : host;
    const proxy = await startNodeProcess(
      'proxy-pod/main.ts',
      {
        CCCP_DEVICE_PORT: String(this.devicePort),
        CCCP_BIND_HOST: bind,
        CCCP_ADMIN_PORT: String(this.adminPort),
        CCCP_ADMIN_BIND_HOST: bind,
        CCCP_ADMIN_TOKEN: ADMIN_TOKEN,
        CCCP_PROXY_HEALTH_PORT: String(this.proxyHealthPort),
        // The young-generation size the chart gives the proxy container.
        NODE_OPTIONS: withProxyYoungGeneration(),
        ...(this.opts.proxyPods
          ? {
              CCCP_PUBLIC_HOST: host,
              CCCP_POD_ORDINAL: String(ordinal),
              ...(this.opts.podCountFromOperator ? {} : { CCCP_PROXY_REPLICAS: String(this.opts.proxyPods) }),
              CCCP_PEER_PORT: String(this.peerPort),
              CCCP_PEER_ADDRESS: `${POD_ADDRESS}:${this.peerPort}`,
            }
          : {}),
        ...this.opts.proxyEnv,
      },
      /proxy pod ready/,
      20_000,
      undefined,
      netns?.exec,
    );
    this.proxies[ordinal] = proxy;
    return proxy;
  }

  /** The proxy's admin API as the operator reaches it (TCP with the bearer token). */
  get adminEndpoint(): { host: string; port: number; token: string } {
    return { host: this.proxyHost, port: this.adminPort, token: ADMIN_TOKEN };
  }

  /** Where the (first) proxy pod is reached: loopback, or its namespace's address. */
  get proxyHost(): string {
    return this.podHost(0);
  }

  /** Where proxy pod `ordinal` is reached. */
  podHost(ordinal: number): string {
    if (this.opts.proxyNetns) return this.opts.proxyNetns.address;
    return this.opts.proxyPods ? podAddress(ordinal) : '127.0.0.1';
  }

  /** Starts one operator replica; `name` is its identity for the Lease and field manager. */
  async startOperator(name: string, extraEnv: Record<string, string> = {}): Promise<Started> {
    const controlPort = this.controlPorts.get(name) ?? (await freePort());
    this.controlPorts.set(name, controlPort);
    const operator = await startNodeProcess(
      'operator/main.ts',
      {
        KUBECONFIG: this.opts.operatorKubeconfig ?? this.rig.kubeconfig,
        CCCP_NAMESPACE: this.opts.namespace,
        POD_NAME: name,
        CCCP_CONTROL_PORT: String(controlPort),
        CCCP_CONTROL_BIND_HOST: '127.0.0.1',
        CCCP_DEVICE_PORT: String(this.devicePort),
        CCCP_PORT_RANGE: `${this.opts.portRange.min}-${this.opts.portRange.max}`,
        CCCP_PUBLIC_HOST: this.proxyHost,
        CCCP_ADMIN_ADDRESS: `${this.opts.proxyPods ? POD_ADDRESS : this.proxyHost}:${this.adminPort}`,
        ...(this.opts.proxyPods ? { CCCP_PROXY_REPLICAS: String(this.opts.proxyPods) } : {}),
        CCCP_ADMIN_TOKEN: ADMIN_TOKEN,
        CCCP_LEASE_DURATION_S: String(this.opts.leaseDurationSeconds ?? 4),
        CCCP_LOG_LEVEL: 'info',
        ...extraEnv,
      },
      /operator ready/,
    );
    this.operators.set(name, operator);
    return operator;
  }

  controlUrl(name?: string): string {
    // Without a name: any replica still running.
    const port = this.controlPorts.get(name ?? [...this.operators.keys()][0] ?? '');
    return `http://127.0.0.1:${port}`;
  }

  async control<T = Record<string, unknown>>(path: string, name?: string): Promise<Answer<T>> {
    return request<T>(`${this.controlUrl(name)}${path}`, { timeoutMs: 30_000 });
  }

  kubectl(args: string[], input?: string) {
    return this.rig.kubectl(['-n', this.opts.namespace, ...args], input === undefined ? {} : { input });
  }

  /** The ProxySessions of the namespace as JSON. */
  async sessions(): Promise<ProxySessionJson[]> {
    const { stdout } = await mustKubectl(this.rig, [
      '-n',
      this.opts.namespace,
      'get',
      'proxysessions',
      '-o',
      'json',
      '--show-managed-fields',
    ]);
    return (JSON.parse(stdout) as { items: ProxySessionJson[] }).items;
  }

  async session(serial: string): Promise<ProxySessionJson | undefined> {
    return (await this.sessions()).find((s) => s.spec.serial === serial);
  }

  /** One ProxySession by its resource name. */
  async named(name: string): Promise<ProxySessionJson | undefined> {
    return (await this.sessions()).find((s) => s.metadata.name === name);
  }

  /** A persistent `/on` that must answer 200, and the pod the operator placed it on (`status.proxy`). */
  async place(serial: string): Promise<PlacedSession> {
    const answer = await this.control<{ host: string; port: number }>(`/on?serial=${serial}&persistent=true`);
    if (answer.status !== 200) throw new Error(`/on?serial=${serial} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    const proxy = (await this.session(serial))?.status?.proxy ?? '';
    return { serial, ...answer.body, proxy, ordinal: Number(/-(\d+)$/.exec(proxy)?.[1] ?? Number.NaN) };
  }

  async waitForOperatorLeader(): Promise<string> {
    let holder = '';
    await waitFor(
      async () => {
        const { stdout, code } = await this.kubectl(['get', 'lease', 'cccp-operator', '-o', 'jsonpath={.spec.holderIdentity}']);
        holder = stdout.trim();
        return code === 0 && holder !== '';
      },
      30_000,
      'a leader',
    );
    return holder;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.operators.values()].map((o) => o.stop()));
    await Promise.all(this.proxies.map((proxy) => proxy?.stop()));
  }
}

export interface PlacedSession {
  serial: string;
  host: string;
  port: number;
  /** The proxy pod's name, and its ordinal. */
  proxy: string;
  ordinal: number;
}

export interface ProxySessionJson {
  metadata: {
    name: string;
    uid: string;
    deletionTimestamp?: string;
    finalizers?: string[];
    managedFields?: Array<{ manager: string; subresource?: string }>;
  };
  spec: { serial: string; persistent?: boolean; ipWhitelist?: string[]; timeoutSeconds?: number };
  status?: {
    phase?: string;
    proxy?: string;
    port?: number;
    host?: string;
    deviceConnected?: boolean;
    clientConnected?: boolean;
    transferredBytes?: number;
    endedReason?: string;
    observedGeneration?: number;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
  };
}

export async function startRigWithCrd(): Promise<Rig> {
  const rig = await startRig();
  await mustKubectl(rig, ['apply', '--server-side', '-f', crdFile]);
  await mustKubectl(rig, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/proxysessions.cccp.tcxn.net']);
  return rig;
}

export async function mustKubectl(rig: Rig, args: string[], allowFailure = false, input?: string) {
  const result = await rig.kubectl(args, input === undefined ? {} : { input });
  if (result.code !== 0 && !allowFailure) throw new Error(`kubectl ${args.join(' ')} failed: ${result.stderr}`);
  return result;
}

/**
 * The usual cluster suite: the rig with the CRD, a proxy pod and one operator
 * replica (operator-a) that has taken the Lease; both stopped after the suite.
 */
export function clusterFixture(
  test: Test,
  options: {
    namespace: string;
    rangeSize: number;
    operatorEnv?: Record<string, string>;
    proxyPods?: number;
    podCountFromOperator?: boolean;
  },
): () => TestCluster {
  return suiteFixture(
    test,
    async () => {
      const rig = await startRigWithCrd();
      let cluster: TestCluster | undefined;
      try {
        // Below the ephemeral ports: an outgoing connection's local port would make a session port unbindable.
        cluster = await TestCluster.start(rig, {
          namespace: options.namespace,
          portRange: await freePortRange(options.rangeSize),
          ...(options.proxyPods ? { proxyPods: options.proxyPods } : {}),
          ...(options.podCountFromOperator ? { podCountFromOperator: true } : {}),
        });
        await cluster.startOperator('operator-a', options.operatorEnv ?? {});
        await cluster.waitForOperatorLeader();
        return cluster;
      } catch (err) {
        await cluster?.stop();
        await rig.stop();
        throw err;
      }
    },
    async (cluster) => {
      await cluster.stop();
      await cluster.rig.stop();
    },
  );
}
