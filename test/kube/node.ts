// A real one-node Kubernetes cluster for tests, where pods run: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, containerd (with
// runc and the bridge CNI plugin from Debian), kubelet, kube-proxy, CoreDNS
// and kube-router (NetworkPolicy only), all inside a network namespace of the test's own, joined to the
// machine by a veth pair. ../../../shared/notes/real-node.md explains why it
// is built this way (the kubelet refuses a loopback node address, runc needs
// restrict_oom_score_adj without CAP_SYS_RESOURCE, cgroup v1 needs
// failCgroupV1: false, ...).
//
// Addresses (the test process reaches all of them through the veth pair):
//   10.203.255.1/30  the machine's end          10.203.255.2  the node
//   10.244.0.0/24    pods                       10.96.0.0/16  Service ClusterIPs
//   10.203.254.0/24  LoadBalancer addresses, handed out by this module the way a
//                    bare-metal load balancer would (status.loadBalancer.ingress)
//
// Only one node runs at a time on a machine (the addresses and a few paths are
// fixed); a second start waits for the first to stop. stop() — or the exit
// handler, or the next start after a crash — runs node-down.sh, which puts the
// machine back as it was: processes, mounts, cgroups, the namespace (and with
// it every iptables/nft rule kube-proxy and the CNI plugin wrote), kernel
// tunables, and the few paths the kubelet and containerd cannot be moved from.
//
// Environment:
//   CCCP_KUBE_BIN_DIR   prebuilt kubectl/helm/kube-apiserver/etcd (skips build.sh)
//   CCCP_NODE_KEEP=1    keep the work directory's logs (copied to /tmp/cccp-node-last)
import { execFile, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig, type V1Service } from '@kubernetes/client-node';
import { createPki, type Pki } from './pki.ts';
import type { KubectlOptions, KubectlResult } from './rig.ts';
import { logTail, type ServerProcess, startServerProcess } from './server-process.ts';

const here = fileURLToPath(new URL('.', import.meta.url));

export const nodeNetwork = {
  hostIp: '10.203.255.1',
  nodeIp: '10.203.255.2',
  hostLink: 'cccp-node0',
  podCidr: '10.244.0.0/24',
  serviceCidr: '10.96.0.0/16',
  dnsIp: '10.96.0.10',
  loadBalancerCidr: '10.203.254.0/24',
} as const;

const apiServerPort = 6443;
const lockDir = '/run/cccp-test-node.lock';
const startTimeoutMs = 180_000;

export interface NodeImages {
  pause: { name: string; archive: string };
  app: { name: string; archive: string };
}

export interface NodeCluster {
  nodeName: string;
  nodeIp: string;
  /** Cluster-admin kubeconfig, server https://NODE_IP:6443. */
  kubeconfig: string;
  /** kubectl, helm (build.sh) */
  binDir: string;
  workDir: string;
  images: NodeImages;
  /** Seconds from start (binaries and images built) to the node Ready with DNS answering. */
  startSeconds: number;
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** kubectl that throws on a non-zero exit; returns stdout. */
  mustKubectl(args: string[], input?: string): Promise<string>;
  /** ctr against the node's containerd, in the Kubernetes namespace. */
  ctr(args: string[]): Promise<string>;
  /** Runs a command inside the node's network namespace. */
  inNode(command: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  /** The log file of one of the node's daemons (kubelet, containerd, ...). */
  logFile(daemon: string): string;
  stop(): Promise<void>;
}

interface Daemon {
  name: string;
  process: ServerProcess;
}

/** Builds what is missing (cached), then starts a node and waits until it is Ready. */
export async function startNodeCluster(): Promise<NodeCluster> {
  const binDir = process.env.CCCP_KUBE_BIN_DIR || lastLine(await runScript('build.sh'));
  const nodeBinDir = lastLine(await runScript('build-node.sh'));
  const images = JSON.parse(lastLine(await runScript('build-images.sh'))) as NodeImages;
  await acquireLock();
  const started = Date.now();
  const workDir = mkdtempSync('/tmp/cccp-node-');
  const daemons: Daemon[] = [];
  const down = () => takeDown(workDir, daemons);
  exitTeardowns.add(workDir);
  if (exitTeardowns.size === 1) process.on('exit', teardownOnExit);
  try {
    const cluster = await startIn(workDir, binDir, nodeBinDir, images, daemons, started);
    let stopped = false;
    return {
      ...cluster,
      async stop() {
        if (stopped) return;
        stopped = true;
        await down();
      },
    };
  } catch (err) {
    await down();
    throw err;
  }
}

type ClusterParts = Omit<NodeCluster, 'stop'>;

async function startIn(
  workDir: string,
  binDir: string,
  nodeBinDir: string,
  images: NodeImages,
  daemons: Daemon[],
  started: number,
): Promise<ClusterParts> {
  const { nodeIp, hostIp, hostLink, podCidr, serviceCidr, loadBalancerCidr, dnsIp } = nodeNetwork;
  const nodeName = hostname().toLowerCase();
  const state = join(workDir, 'state');
  const netns = join(workDir, 'ns', 'net');
  const cgroup = `cccp-node-${workDir.split('-').pop()}`;
  for (const dir of ['state', 'ns', 'logs', 'cni/net.d', 'cni/ipam', 'containerd', 'kubelet', 'volume-plugins', 'pod-logs']) {
    mkdirSync(join(workDir, dir), { recursive: true });
  }

  // What node-down.sh needs to undo, recorded before anything changes.
  writeFileSync(join(state, 'netns'), netns);
  writeFileSync(join(state, 'host-link'), hostLink);
  writeFileSync(join(state, 'cgroup'), cgroup);
  writeFileSync(
    join(state, 'sysctl'),
    `${kernelTunables.map((k) => `${k} ${readFileSync(`/proc/sys/${k}`, 'utf8').trim()}`).join('\n')}\n`,
  );
  writeFileSync(join(state, 'paths'), `${fixedPaths.map((p) => `${p} ${existsSync(p) ? 'existed' : 'absent'}`).join('\n')}\n`);
  writeFileSync(join(state, 'netns-before'), existsSync('/run/netns') ? `${readdirSync('/run/netns').join('\n')}\n` : '');

  // The network namespace, persisted as a bind mount (a private mount, so the
  // bind does not propagate), and the veth pair into it.
  const ns = join(workDir, 'ns');
  await must('mount', ['--bind', ns, ns]);
  await must('mount', ['--make-private', ns]);
  writeFileSync(netns, '');
  await must('unshare', [`--net=${netns}`, 'true']);
  const inNs = (command: string, args: string[]) => must('nsenter', [`--net=${netns}`, '--', command, ...args]);
  await must('ip', ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'cccp-node1']);
  await must('ip', ['link', 'set', 'dev', 'cccp-node1', 'netns', netns]);
  await must('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostLink]);
  await must('ip', ['link', 'set', hostLink, 'up']);
  await inNs('ip', ['link', 'set', 'lo', 'up']);
  await inNs('ip', ['link', 'set', 'cccp-node1', 'name', 'eth0']);
  await inNs('ip', ['addr', 'add', `${nodeIp}/30`, 'dev', 'eth0']);
  await inNs('ip', ['link', 'set', 'eth0', 'up']);
  await inNs('ip', ['route', 'add', 'default', 'via', hostIp]);
  // Per-namespace settings: forwarding for the pods, and bridged pod-to-pod
  // traffic through iptables so a Service reply from a pod on the same
  // bridge is translated back.
  await inNs('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);
  for (const cidr of [serviceCidr, podCidr, loadBalancerCidr]) {
    await must('ip', ['route', 'add', cidr, 'via', nodeIp, 'dev', hostLink]);
  }

  // The kubelet's cgroup root, in every v1 hierarchy; a new cpuset cgroup
  // starts with no CPUs and no memory nodes, so it copies its parent's.
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const base = join('/sys/fs/cgroup', hierarchy);
    if (hierarchy === 'unified' || !existsSync(join(base, 'cgroup.procs'))) continue;
    mkdirSync(join(base, cgroup), { recursive: true });
    if (hierarchy === 'cpuset') {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        writeFileSync(join(base, cgroup, file), readFileSync(join(base, file)));
      }
    }
  }

  const pki = await createPki(
    workDir,
    [
      'IP:127.0.0.1',
      `IP:${nodeIp}`,
      'IP:10.96.0.1',
      'DNS:localhost',
      'DNS:kubernetes',
      'DNS:kubernetes.default',
      'DNS:kubernetes.default.svc',
      'DNS:kubernetes.default.svc.cluster.local',
    ].join(','),
  );
  const kubeconfig = join(workDir, 'admin.kubeconfig');
  writeKubeconfig(kubeconfig, `https://${nodeIp}:${apiServerPort}`, pki);

  const log = (name: string) => join(workDir, 'logs', `${name}.log`);
  const daemon = (name: string, binary: string, args: string[]) => {
    const process = startServerProcess(name, 'nsenter', [`--net=${netns}`, '--', binary, ...args], log(name));
    daemons.push({ name, process });
    return process;
  };

  const etcd = daemon('etcd', join(binDir, 'etcd'), [
    '--name=node',
    `--data-dir=${join(workDir, 'etcd')}`,
    `--listen-client-urls=http://${nodeIp}:2379`,
    `--advertise-client-urls=http://${nodeIp}:2379`,
    '--listen-peer-urls=http://127.0.0.1:2380',
    '--initial-advertise-peer-urls=http://127.0.0.1:2380',
    '--initial-cluster=node=http://127.0.0.1:2380',
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  await waitFor(etcd, 30_000, () => httpsOrHttpOk(`http://${nodeIp}:2379/health`));

  const apiServer = daemon('kube-apiserver', join(binDir, 'kube-apiserver'), [
    `--etcd-servers=http://${nodeIp}:2379`,
    '--bind-address=0.0.0.0',
    `--advertise-address=${nodeIp}`,
    `--secure-port=${apiServerPort}`,
    `--tls-cert-file=${pki.serverCert}`,
    `--tls-private-key-file=${pki.serverKey}`,
    `--client-ca-file=${pki.caCert}`,
    '--authorization-mode=Node,RBAC',
    '--anonymous-auth=false',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki.serviceAccountPublicKey}`,
    `--service-account-signing-key-file=${pki.serviceAccountPrivateKey}`,
    `--service-cluster-ip-range=${serviceCidr}`,
    // kubectl logs/exec: the node's host name resolves to 127.0.0.1 here.
    '--kubelet-preferred-address-types=InternalIP',
    `--kubelet-client-certificate=${pki.adminCert}`,
    `--kubelet-client-key=${pki.adminKey}`,
    '--profiling=false',
    '--v=1',
  ]);
  await waitFor(apiServer, 90_000, () => apiServerReady(pki, nodeIp));

  daemon('kube-controller-manager', join(nodeBinDir, 'kube-controller-manager'), [
    `--kubeconfig=${kubeconfig}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--service-account-private-key-file=${pki.serviceAccountPrivateKey}`,
    `--root-ca-file=${pki.caCert}`,
    `--service-cluster-ip-range=${serviceCidr}`,
    '--use-service-account-credentials=false',
    '--v=1',
  ]);
  daemon('kube-scheduler', join(nodeBinDir, 'kube-scheduler'), [
    `--kubeconfig=${kubeconfig}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    '--v=1',
  ]);

  // containerd: state, sockets and CNI configuration under the work dir.
  const containerdSocket = join(workDir, 'containerd', 'containerd.sock');
  const containerdConfig = join(workDir, 'containerd.toml');
  writeFileSync(containerdConfig, containerdToml(workDir, containerdSocket, images.pause.name));
  writeFileSync(join(workDir, 'cni', 'net.d', '10-cccp.conflist'), JSON.stringify(cniConfig(workDir)));
  const containerd = daemon('containerd', 'containerd', [`--config=${containerdConfig}`]);
  await waitFor(containerd, 30_000, async () => (await run('ctr', ['-a', containerdSocket, 'version'])).code === 0);
  for (const image of [images.pause, images.app]) {
    await must('ctr', ['-a', containerdSocket, '-n', 'k8s.io', 'images', 'import', image.archive]);
  }

  const kubeletConfig = join(workDir, 'kubelet.yaml');
  writeFileSync(join(workDir, 'resolv.conf'), '# pods resolve through the cluster DNS only\n');
  writeFileSync(kubeletConfig, JSON.stringify(kubeletConfiguration(workDir, containerdSocket, pki, cgroup)));
  daemon('kubelet', join(nodeBinDir, 'kubelet'), [
    `--config=${kubeletConfig}`,
    `--kubeconfig=${kubeconfig}`,
    `--root-dir=${join(workDir, 'kubelet')}`,
    `--node-ip=${nodeIp}`,
    '--v=1',
  ]);
  const kubeProxyConfig = join(workDir, 'kube-proxy.yaml');
  writeFileSync(kubeProxyConfig, JSON.stringify(kubeProxyConfiguration(kubeconfig, nodeName)));
  daemon('kube-proxy', join(nodeBinDir, 'kube-proxy'), [`--config=${kubeProxyConfig}`, '--v=1']);

  // CoreDNS as a process of the node (no image needed), behind the usual
  // kube-dns Service whose EndpointSlice names the node's address.
  const corefile = join(workDir, 'Corefile');
  writeFileSync(
    corefile,
    [
      '.:53 {',
      '  errors',
      `  health ${nodeIp}:8081`,
      `  ready ${nodeIp}:8181`,
      `  kubernetes cluster.local in-addr.arpa ip6.arpa {`,
      `    kubeconfig ${kubeconfig} node`,
      '    pods insecure',
      '  }',
      '  cache 30',
      '}',
      '',
    ].join('\n'),
  );
  const coredns = daemon('coredns', join(nodeBinDir, 'coredns'), ['-conf', corefile]);

  const kubectl = (args: string[], opts: KubectlOptions = {}) =>
    runKubectl(binDir, workDir, opts.kubeconfig ?? kubeconfig, args, opts.input);
  const mustKubectl = async (args: string[], input?: string) => {
    const result = await kubectl(args, { input });
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr.trim()}`);
    return result.stdout;
  };
  await mustKubectl(['apply', '-f', '-'], JSON.stringify(kubeDnsObjects(nodeIp, dnsIp)));
  await waitFor(coredns, 60_000, () => httpsOrHttpOk(`http://${nodeIp}:8181/ready`));

  const kubelet = daemons.find((d) => d.name === 'kubelet')!.process;
  await waitFor(kubelet, 90_000, async () => {
    const out = await kubectl(['get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
    return out.code === 0 && out.stdout.trim() === 'True';
  });
  // The default ServiceAccount, which every pod needs, comes from the controller-manager.
  await waitFor(apiServer, 60_000, async () => (await kubectl(['get', 'serviceaccount', 'default', '-n', 'default'])).code === 0);
  // NetworkPolicy: the bridge plugin enforces none, so kube-router runs as
  // a firewall only (no routing, no service proxy), with iptables and ipsets
  // in the node's namespace. It needs the Node object, so it starts last.
  const kubeRouter = daemon('kube-router', join(nodeBinDir, 'kube-router'), [
    `--kubeconfig=${kubeconfig}`,
    `--hostname-override=${nodeName}`,
    '--run-firewall=true',
    '--run-router=false',
    '--run-service-proxy=false',
    '--enable-cni=false',
    '--enable-ipv6=false',
    `--service-cluster-ip-range=${serviceCidr}`,
    '--metrics-port=0',
    '--v=1',
  ]);
  await waitFor(kubeRouter, 60_000, () => httpsOrHttpOk(`http://${nodeIp}:20244/healthz`));
  startLoadBalancer(kubeconfig, daemons);

  return {
    nodeName,
    nodeIp,
    kubeconfig,
    binDir,
    workDir,
    images,
    startSeconds: (Date.now() - started) / 1000,
    kubectl,
    mustKubectl,
    ctr: (args) => must('ctr', ['-a', containerdSocket, '-n', 'k8s.io', ...args]),
    inNode: (command, args) => run('nsenter', [`--net=${netns}`, '--', command, ...args]),
    logFile: log,
  };
}

// Kernel tunables the kubelet sets on start (container_manager_linux.go);
// they are machine-wide, so node-down.sh writes the old values back.
const kernelTunables = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

// Paths the kubelet, containerd and the CNI plugins use whatever they are
// told; node-down.sh removes those that did not exist before.
const fixedPaths = [
  '/run/containerd',
  '/var/log/containers',
  '/var/log/pods',
  '/var/lib/kubelet',
  '/var/lib/cni',
  '/run/netns',
  '/var/run/netns',
  '/run/flannel',
  '/etc/cni',
  '/opt/cni',
];

function containerdToml(workDir: string, socket: string, pauseImage: string): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${join(workDir, 'containerd', 'root')}"
state = "${join(workDir, 'containerd', 'state')}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(workDir, 'containerd', 'opt')}"
[${cri}]
  sandbox_image = "${pauseImage}"
  # No CAP_SYS_RESOURCE here: runc may not raise oom_score_adj.
  restrict_oom_score_adj = true
[${cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[${cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[${cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "${join(workDir, 'cni', 'net.d')}"
`;
}

function cniConfig(workDir: string): object {
  return {
    cniVersion: '1.0.0',
    name: 'cccp-node',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          dataDir: join(workDir, 'cni', 'ipam'),
          ranges: [[{ subnet: nodeNetwork.podCidr }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

function kubeletConfiguration(workDir: string, containerdSocket: string, pki: Pki, cgroup: string): object {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: nodeNetwork.nodeIp,
    readOnlyPort: 0,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: pki.caCert } },
    authorization: { mode: 'AlwaysAllow' },
    containerRuntimeEndpoint: `unix://${containerdSocket}`,
    // cgroup v1 and no systemd: kubelet 1.36 needs to be told both.
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    cgroupRoot: `/${cgroup}`,
    // Without CAP_SYS_RESOURCE the kubelet may not lower its own score either.
    oomScoreAdj: 0,
    failSwapOn: false,
    clusterDomain: 'cluster.local',
    clusterDNS: [nodeNetwork.dnsIp],
    resolvConf: join(workDir, 'resolv.conf'),
    volumePluginDir: join(workDir, 'volume-plugins'),
    podLogsDir: join(workDir, 'pod-logs'),
    // The imported images cannot be pulled again: never collect them, and
    // never evict pods because the test machine's disk is fuller than a node's.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    podCIDR: nodeNetwork.podCidr,
    serializeImagePulls: false,
  };
}

function kubeProxyConfiguration(kubeconfig: string, nodeName: string): object {
  return {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig },
    mode: 'iptables',
    hostnameOverride: nodeName,
    clusterCIDR: nodeNetwork.podCidr,
    // Conntrack sizing is machine-wide outside the initial namespace: leave it.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    metricsBindAddress: '127.0.0.1:10249',
    healthzBindAddress: '127.0.0.1:10256',
  };
}

function kubeDnsObjects(nodeIp: string, dnsIp: string): object {
  const ports = [
    { name: 'dns', port: 53, protocol: 'UDP' },
    { name: 'dns-tcp', port: 53, protocol: 'TCP' },
  ];
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
        spec: { clusterIP: dnsIp, ports: ports.map((p) => ({ ...p, targetPort: 53 })) },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'kube-dns-node', namespace: 'kube-system', labels: { 'kubernetes.io/service-name': 'kube-dns' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: [nodeIp], conditions: { ready: true } }],
        ports,
      },
    ],
  };
}

/**
 * A minimal load balancer: every LoadBalancer Service gets the next address
 * of nodeNetwork.loadBalancerCidr in its status, which kube-proxy then routes
 * to the Service (as with MetalLB or kube-vip). Without it `helm install
 * --wait` never sees such a Service ready.
 */
function startLoadBalancer(kubeconfig: string, daemons: Daemon[]): void {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  const api = config.makeApiClient(CoreV1Api);
  const assigned = new Map<string, string>();
  let next = 10;
  let running = true;
  const tick = async () => {
    const services = await api.listServiceForAllNamespaces();
    for (const service of services.items) {
      if (service.spec?.type !== 'LoadBalancer' || (service.status?.loadBalancer?.ingress?.length ?? 0) > 0) continue;
      const key = `${service.metadata?.namespace}/${service.metadata?.name}`;
      const ip = assigned.get(key) ?? `${nodeNetwork.loadBalancerCidr.split('.').slice(0, 3).join('.')}.${next++}`;
      assigned.set(key, ip);
      const updated: V1Service = { ...service, status: { loadBalancer: { ingress: [{ ip, ipMode: 'VIP' }] } } };
      await api.replaceNamespacedServiceStatus({ name: service.metadata!.name!, namespace: service.metadata!.namespace!, body: updated });
    }
  };
  const loop = async () => {
    while (running) {
      // A conflict or a passing API error is retried on the next round.
      await tick().catch(() => {});
      await sleep(500);
    }
  };
  void loop();
  // Registered as a daemon so that teardown stops it first.
  let resolveExit: (how: string) => void = () => {};
  const exited = new Promise<string>((resolve) => (resolveExit = resolve));
  daemons.push({
    name: 'load-balancer',
    process: {
      name: 'load-balancer',
      logFile: '',
      exited,
      running: () => running,
      async stop() {
        running = false;
        resolveExit('stopped');
      },
    },
  });
}

const exitTeardowns = new Set<string>();

/** Last resort when the test process exits without stop(): synchronous. */
function teardownOnExit(): void {
  for (const workDir of exitTeardowns) {
    spawnSync('bash', [join(here, 'node-down.sh'), workDir], { stdio: 'ignore', timeout: 60_000 });
  }
  releaseLock();
}

async function takeDown(workDir: string, daemons: Daemon[]): Promise<void> {
  if (process.env.CCCP_NODE_KEEP) {
    rmSync('/tmp/cccp-node-last', { recursive: true, force: true });
    cpSync(join(workDir, 'logs'), '/tmp/cccp-node-last', { recursive: true });
  }
  // The node's agents first (they would restart what is being removed), the
  // control plane last; node-down.sh then kills the pods through their cgroups.
  const order = ['load-balancer', 'kube-router', 'kube-proxy', 'kubelet', 'coredns', 'kube-scheduler', 'kube-controller-manager'];
  for (const name of order) await Promise.all(daemons.filter((d) => d.name === name).map((d) => d.process.stop(3_000)));
  await run('bash', [join(here, 'node-down.sh'), workDir]);
  // kube-apiserver may linger after SIGTERM: a short grace, then SIGKILL.
  await Promise.all(daemons.map((d) => d.process.stop(3_000)));
  exitTeardowns.delete(workDir);
  if (exitTeardowns.size === 0) process.off('exit', teardownOnExit);
  releaseLock();
}

async function acquireLock(): Promise<void> {
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      return;
    } catch {
      const owner = Number(readFileIfExists(join(lockDir, 'pid')));
      if (owner && !processAlive(owner)) {
        // A crashed run: take its node down before starting another.
        for (const name of readdirSync('/tmp').filter((n) => n.startsWith('cccp-node-') && n !== 'cccp-node-last')) {
          spawnSync('bash', [join(here, 'node-down.sh'), join('/tmp', name)], { stdio: 'inherit', timeout: 120_000 });
        }
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`another test node holds ${lockDir} (pid ${owner})`);
      await sleep(2_000);
    }
  }
}

function releaseLock(): void {
  if (Number(readFileIfExists(join(lockDir, 'pid'))) === process.pid) rmSync(lockDir, { recursive: true, force: true });
}

function readFileIfExists(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function runScript(name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(here, name)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`test/kube/${name} failed (exit ${code})`))));
  });
}

function lastLine(text: string): string {
  const line = text.trim().split('\n').pop();
  if (!line) throw new Error('a build script printed nothing');
  return line;
}

function run(command: string, args: string[], input?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`${command} ${args.join(' ')}: ${err.message}`, { cause: err }));
        return;
      }
      resolve({ stdout, stderr, code: err ? Number(err.code) : 0 });
    });
    // A child that exits without reading its input must not fail the caller.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

async function must(command: string, args: string[]): Promise<string> {
  const result = await run(command, args);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.code}): ${result.stderr.trim()}`);
  return result.stdout;
}

function runKubectl(binDir: string, workDir: string, kubeconfig: string, args: string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      join(binDir, 'kubectl'),
      [`--kubeconfig=${kubeconfig}`, ...args],
      {
        env: { ...process.env, KUBECACHEDIR: join(workDir, 'kube-cache') },
        timeout: 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          reject(new Error(`kubectl ${args.join(' ')}: ${err.message}`, { cause: err }));
          return;
        }
        resolve({ stdout, stderr, code: err ? Number(err.code) : 0 });
      },
    );
    // A child that exits without reading its input must not fail the caller.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

function writeKubeconfig(path: string, server: string, pki: Pki): void {
  const base64 = (file: string) => readFileSync(file).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'node', cluster: { server, 'certificate-authority-data': base64(pki.caCert) } }],
    users: [{ name: 'node', user: { 'client-certificate-data': base64(pki.adminCert), 'client-key-data': base64(pki.adminKey) } }],
    contexts: [{ name: 'node', context: { cluster: 'node', user: 'node' } }],
    'current-context': 'node',
  };
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 });
}

async function waitFor(server: ServerProcess, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + Math.min(timeoutMs, startTimeoutMs);
  while (Date.now() < deadline) {
    if (!server.running()) {
      const how = await server.exited;
      throw new Error(`${server.name} exited (${how}) before it was ready; log tail:\n${logTail(server.logFile)}`);
    }
    if (await ready().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`${server.name} not ready within ${timeoutMs / 1000} s; log tail:\n${logTail(server.logFile)}`);
}

async function httpsOrHttpOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    return response.ok;
  } catch {
    return false;
  }
}

function apiServerReady(pki: Pki, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      {
        host,
        port: apiServerPort,
        path: '/readyz',
        timeout: 2_000,
        ca: readFileSync(pki.caCert),
        cert: readFileSync(pki.adminCert),
        key: readFileSync(pki.adminKey),
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
