// A real Kubernetes API server for tests: etcd + kube-apiserver on loopback
// ports, with kubectl and helm of the same pinned versions (test/kube/go.mod,
// built by test/kube/build.sh).
//
// What it is not: there is no kube-controller-manager, scheduler or kubelet.
// So, against this rig:
// - Namespaces can be created, but a deleted one stays Terminating forever
//   (the namespace controller finalizes deletion).
// - ServiceAccount token Secrets are never filled in; use TokenRequest
//   (`kubectl create token`, or serviceAccountKubeconfig() below).
// - Garbage collection does not happen: owner references do not cascade.
// - Pods are stored but never scheduled or run; Services get a ClusterIP but
//   no endpoints.
// Everything the API server does alone is real: schema and CEL validation,
// defaulting, server-side apply, RBAC, watches, the status subresource.
//
// Environment:
//   CCCP_KUBE_BIN_DIR  use prebuilt binaries from this directory (skips build.sh)
//   CCCP_RIG_KEEP=1    keep the data directory (logs, certs, etcd) after stop()
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { finished, runProgram } from '../helpers/processes.ts';
import { createPki, type Pki } from './pki.ts';
import { killAllGroups, logTail, type ServerProcess, startServerProcess } from './server-process.ts';

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (for `-f -`). */
  input?: string;
  /** Act with another identity, e.g. from serviceAccountKubeconfig(). */
  kubeconfig?: string;
}

export interface Rig {
  /** Cluster-admin kubeconfig (client certificate in group system:masters). */
  kubeconfig: string;
  /** https://127.0.0.1:PORT */
  server: string;
  binDir: string;
  dataDir: string;
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** Stops kube-apiserver only (etcd keeps the data), for outage tests. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port and waits until it is ready. */
  startApiServer(): Promise<void>;
  /**
   * A kubeconfig that acts as the ServiceAccount namespace/name (both are
   * created if missing) with a fresh TokenRequest token; returns its path.
   * The account gets no RBAC bindings here.
   */
  serviceAccountKubeconfig(namespace: string, name: string): Promise<string>;
  /** Stops every process of the rig; safe to call more than once. */
  stop(): Promise<void>;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const etcdReadyTimeoutMs = 30_000;
const apiServerReadyTimeoutMs = 90_000;
const kubectlTimeoutMs = 120_000;

export async function startRig(): Promise<Rig> {
  const binDir = process.env.CCCP_KUBE_BIN_DIR || (await buildBinaries());
  const dataDir = mkdtempSync(join(tmpdir(), 'cccp-rig-'));
  trackDataDir(dataDir);
  const servers: ServerProcess[] = [];
  try {
    return await startIn(binDir, dataDir, servers);
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop(2_000)));
    removeDataDir(dataDir);
    throw err;
  }
}

// Data directories of rigs not yet stopped: etcd's alone is over 100 MB, so
// they are removed even when the process exits without stop() (a failed
// test, SIGINT, SIGTERM; only SIGKILL leaves one behind).
const liveDataDirs = new Set<string>();

function trackDataDir(dataDir: string): void {
  if (liveDataDirs.size === 0) process.on('exit', removeLiveDataDirs);
  liveDataDirs.add(dataDir);
}

function removeDataDir(dataDir: string): void {
  liveDataDirs.delete(dataDir);
  if (liveDataDirs.size === 0) process.off('exit', removeLiveDataDirs);
  if (!process.env.CCCP_RIG_KEEP) rmSync(dataDir, { recursive: true, force: true });
}

function removeLiveDataDirs(): void {
  // The servers first, so that none writes into a directory being removed.
  killAllGroups();
  for (const dataDir of [...liveDataDirs]) removeDataDir(dataDir);
}

async function startIn(binDir: string, dataDir: string, servers: ServerProcess[]): Promise<Rig> {
  const pki = await createPki(dataDir);
  const [etcdClientPort, etcdPeerPort, apiServerPort] = (await freePorts(3)) as [number, number, number];
  const server = `https://127.0.0.1:${apiServerPort}`;

  const etcd = startServerProcess(
    'etcd',
    join(binDir, 'etcd'),
    etcdArgs(join(dataDir, 'etcd'), etcdClientPort, etcdPeerPort),
    join(dataDir, 'etcd.log'),
  );
  servers.push(etcd);
  await waitUntil(etcd, etcdReadyTimeoutMs, () => httpOk(`http://127.0.0.1:${etcdClientPort}/health`));

  const apiServerCommand = apiServerArgs(pki, apiServerPort, `http://127.0.0.1:${etcdClientPort}`);
  const apiServerLog = join(dataDir, 'kube-apiserver.log');
  let apiServer = await startApiServerProcess(binDir, apiServerCommand, apiServerLog, pki, apiServerPort);
  servers.push(apiServer);

  const kubeconfig = join(dataDir, 'admin.kubeconfig');
  writeKubeconfig(kubeconfig, server, pki.caCert, {
    'client-certificate-data': base64File(pki.adminCert),
    'client-key-data': base64File(pki.adminKey),
  });

  const kubectl = (args: string[], opts: KubectlOptions = {}) =>
    runKubectl(binDir, dataDir, opts.kubeconfig ?? kubeconfig, args, opts.input);

  let stopped = false;
  return {
    kubeconfig,
    server,
    binDir,
    dataDir,
    kubectl,
    async stopApiServer() {
      await apiServer.stop();
    },
    async startApiServer() {
      if (apiServer.running()) return;
      apiServer = await startApiServerProcess(binDir, apiServerCommand, apiServerLog, pki, apiServerPort);
      servers.push(apiServer);
    },
    serviceAccountKubeconfig: (namespace, name) => writeServiceAccountKubeconfig(kubectl, dataDir, server, pki.caCert, namespace, name),
    async stop() {
      if (stopped) return;
      stopped = true;
      // The apiserver first: it would log etcd errors while shutting down.
      await apiServer.stop();
      await Promise.all(servers.map((s) => s.stop()));
      removeDataDir(dataDir);
    },
  };
}

/** Runs build.sh (a no-op when the binaries are cached) and returns its bin dir. */
async function buildBinaries(): Promise<string> {
  const child = spawn('bash', [join(here, 'build.sh')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const binDir = stdout.trim().split('\n').pop();
  if (code !== 0 || !binDir) throw new Error(`test/kube/build.sh failed (exit ${code})`);
  return binDir;
}

function etcdArgs(dataDir: string, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name=rig',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=rig=${peer}`,
    // Test data is thrown away: durability only costs time.
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
}

function apiServerArgs(pki: Pki, port: number, etcdUrl: string): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    // Without it the apiserver advertises the host's default-route address.
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--tls-cert-file=${pki.serverCert}`,
    `--tls-private-key-file=${pki.serverKey}`,
    `--client-ca-file=${pki.caCert}`,
    '--authorization-mode=RBAC',
    '--anonymous-auth=false',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki.serviceAccountPublicKey}`,
    `--service-account-signing-key-file=${pki.serviceAccountPrivateKey}`,
    // Only an allocation range for ClusterIPs: nothing routes to it.
    '--service-cluster-ip-range=10.96.0.0/16',
    // No endpoints for the "kubernetes" Service: 127.0.0.1 is not a valid
    // endpoint address, and nothing in the rig needs them.
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    '--v=1',
  ];
}

async function startApiServerProcess(binDir: string, args: string[], logFile: string, pki: Pki, port: number): Promise<ServerProcess> {
  const apiServer = startServerProcess('kube-apiserver', join(binDir, 'kube-apiserver'), args, logFile);
  try {
    await waitUntil(apiServer, apiServerReadyTimeoutMs, () => apiServerReady(pki, port));
  } catch (err) {
    await apiServer.stop(2_000);
    throw err;
  }
  return apiServer;
}

/** Polls ready() until true; fails early if the server exits, with its log tail. */
async function waitUntil(server: ServerProcess, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!server.running()) {
      const how = await server.exited;
      throw new Error(`${server.name} exited (${how}) before it was ready; log tail:\n${logTail(server.logFile)}`);
    }
    if (await ready()) return;
    await sleep(200);
  }
  throw new Error(`${server.name} not ready within ${timeoutMs / 1000} s; log tail:\n${logTail(server.logFile)}`);
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function apiServerReady(pki: Pki, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/readyz',
        ca: readFileSync(pki.caCert),
        cert: readFileSync(pki.adminCert),
        key: readFileSync(pki.adminKey),
        timeout: 2_000,
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

async function runKubectl(binDir: string, dataDir: string, kubeconfig: string, args: string[], input?: string): Promise<KubectlResult> {
  // A discovery cache per rig: the port, and so the cache key, is new each run.
  const env = { KUBECACHEDIR: join(dataDir, 'kube-cache') };
  const run = await runProgram(join(binDir, 'kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], {
    env,
    timeoutMs: kubectlTimeoutMs,
    ...(input === undefined ? {} : { input }),
  });
  return finished(`kubectl ${args.join(' ')}`, run);
}

type KubectlFn = (args: string[], opts?: KubectlOptions) => Promise<KubectlResult>;

async function writeServiceAccountKubeconfig(
  kubectl: KubectlFn,
  dataDir: string,
  server: string,
  caCert: string,
  namespace: string,
  name: string,
): Promise<string> {
  const objects = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { namespace, name } },
    ],
  };
  await mustKubectl(kubectl, ['apply', '--server-side', '--field-manager=cccp-test-rig', '-f', '-'], JSON.stringify(objects));
  // TokenRequest works without kube-controller-manager, unlike token Secrets.
  const token = (await mustKubectl(kubectl, ['create', 'token', name, '-n', namespace, '--duration=2h'])).trim();
  const path = join(dataDir, `sa-${namespace}-${name}.kubeconfig`);
  writeKubeconfig(path, server, caCert, { token });
  return path;
}

async function mustKubectl(kubectl: KubectlFn, args: string[], input?: string): Promise<string> {
  const result = await kubectl(args, { input });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr.trim()}`);
  return result.stdout;
}

/** A kubeconfig is YAML, and JSON is YAML: no YAML library needed. */
function writeKubeconfig(path: string, server: string, caCert: string, user: Record<string, string>): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'rig', cluster: { server, 'certificate-authority-data': base64File(caCert) } }],
    users: [{ name: 'rig-user', user }],
    contexts: [{ name: 'rig', context: { cluster: 'rig', user: 'rig-user' } }],
    'current-context': 'rig',
  };
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 });
}

function base64File(path: string): string {
  return readFileSync(path).toString('base64');
}

/** Distinct free loopback ports (held open together so they differ). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => listenOnFreePort()));
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('unexpected listen address');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function listenOnFreePort(): Promise<ReturnType<typeof createServer>> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
