// The Helm chart under test: the real `helm` binary (built with the rig,
// test/kube/build.sh), rendering helm/cccp-proxy with values given as JSON,
// and the rendered objects parsed as plain JSON (typed with the client
// library's models where a test reads them).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  KubeConfig,
  type V1Deployment,
  type V1EnvVar,
  type V1PodTemplateSpec,
  type V1Secret,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { ensureAdminToken } from '../../operator/kube/admin-token-secret.ts';
import type { Rig } from '../kube/rig.ts';
import { mustKubectl } from './cluster.ts';
import { freePorts } from './net.ts';
import { finished, runProgram, type Started, startNodeProcess } from './processes.ts';

export const chartDir = fileURLToPath(new URL('../../helm/cccp-proxy', import.meta.url));
export const topLevelCrdFile = fileURLToPath(new URL('../../crds/proxysession.yaml', import.meta.url));
export const chartCrdFile = join(chartDir, 'crds', 'proxysession.yaml');

/** Values every render needs: publicHost has no default on purpose. */
export const requiredValues = { publicHost: 'proxy.customer.example' };

/** loadBalancer exposure whose pods' slices fill `range` exactly (the chart refuses anything else). */
export function slicedRange(range: { min: number; max: number }, replicas = 1): object {
  const size = range.max - range.min + 1;
  if (size % replicas !== 0) throw new Error(`${size} ports do not split into ${replicas} slices`);
  return {
    portRange: range,
    proxy: { replicas },
    exposure: { mode: 'loadBalancer', loadBalancer: { portsPerPod: size / replicas } },
  };
}

// Helm keeps caches and repository config in these; a scratch home per process
// keeps the tests off the user's own Helm setup.
const helmHome = mkdtempSync(join(tmpdir(), 'cccp-helm-'));
process.on('exit', () => rmSync(helmHome, { recursive: true, force: true }));

export interface HelmResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** The directory with helm and kubectl: CCCP_KUBE_BIN_DIR, else build.sh (instant when cached). */
export async function kubeBinDir(): Promise<string> {
  if (process.env.CCCP_KUBE_BIN_DIR) return process.env.CCCP_KUBE_BIN_DIR;
  const script = fileURLToPath(new URL('../kube/build.sh', import.meta.url));
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => child.on('error', reject).on('close', resolve));
  const dir = stdout.trim().split('\n').pop();
  if (code !== 0 || !dir) throw new Error(`test/kube/build.sh failed (exit ${code})`);
  return dir;
}

export async function runHelm(binDir: string, args: string[], kubeconfig?: string): Promise<HelmResult> {
  const env: Record<string, string> = {
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_DATA_HOME: join(helmHome, 'data'),
    ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
  };
  return finished(`helm ${args.join(' ')}`, await runProgram(join(binDir, 'helm'), args, { env, timeoutMs: 120_000 }));
}

let valuesFiles = 0;

/** Writes values to a file for `-f` (JSON is YAML), so types survive unlike with --set. */
export function valuesFile(values: object): string {
  const path = join(helmHome, `values-${++valuesFiles}.json`);
  writeFileSync(path, JSON.stringify(values));
  return path;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** Another chart directory (a modified copy, an umbrella chart). */
  chart?: string;
  /** More helm arguments, e.g. --kube-version. */
  args?: string[];
}

/** `helm template` with these values; the result carries helm's exit code and stderr. */
export function template(binDir: string, values: object, opts: RenderOptions = {}): Promise<HelmResult> {
  return runHelm(binDir, [
    'template',
    opts.release ?? 'cust',
    opts.chart ?? chartDir,
    '-n',
    opts.namespace ?? 'cust',
    '-f',
    valuesFile(values),
    ...(opts.args ?? []),
  ]);
}

/** Any Kubernetes object as rendered; typed models come from `ofKind`. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface Rendered {
  yaml: string;
  objects: KubeObject[];
}

/** Renders and parses; throws with helm's message when rendering fails. */
export async function render(binDir: string, values: object, opts: RenderOptions = {}): Promise<Rendered> {
  const result = await template(binDir, values, opts);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return { yaml: result.stdout, objects: parseManifests(result.stdout) };
}

export function parseManifests(yaml: string): KubeObject[] {
  const documents = parseAllDocuments(yaml).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    return doc.toJS() as KubeObject | null;
  });
  return documents.filter((o): o is KubeObject => o !== null && typeof o === 'object');
}

/** Helm hooks (helm.sh/hook): created at their event (uninstall, `helm test`), not with the release. */
export function isHook(o: KubeObject): boolean {
  return o.metadata.annotations?.['helm.sh/hook'] !== undefined;
}

/** The rendered objects without the hooks, i.e. what `helm install` creates. */
export function releaseObjects(objects: KubeObject[]): KubeObject[] {
  return objects.filter((o) => !isHook(o));
}

/** YAML of the objects (JSON is YAML), for kubectl apply. */
export function toYamlStream(objects: KubeObject[]): string {
  return objects.map((o) => JSON.stringify(o)).join('\n---\n');
}

/**
 * Writes a Secret's keys the way the kubelet projects a Secret volume: the
 * files live in a timestamped directory behind the `..data` symlink, and an
 * update swaps that symlink atomically. Returns the mount directory.
 */
export function projectSecretVolume(dir: string, data: Record<string, string>): string {
  mkdirSync(dir, { recursive: true });
  const version = join(dir, `..${Date.now()}_${Math.random().toString(36).slice(2)}`);
  mkdirSync(version);
  for (const [key, value] of Object.entries(data)) writeFileSync(join(version, key), value, { mode: 0o440 });
  const next = join(dir, '..data_tmp');
  rmSync(next, { force: true });
  symlinkSync(version.slice(dir.length + 1), next);
  renameSync(next, join(dir, '..data'));
  for (const key of Object.keys(data)) {
    try {
      symlinkSync(join('..data', key), join(dir, key));
    } catch {}
  }
  return dir;
}

/** The decoded keys of a Secret as the API server holds it. */
export async function secretFromCluster(rig: Rig, namespace: string, name: string): Promise<Record<string, string>> {
  const { stdout } = await mustKubectl(rig, ['get', 'secret', name, '-n', namespace, '-o', 'json']);
  const secret = JSON.parse(stdout) as V1Secret;
  return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

export function ofKind<T = KubeObject>(objects: KubeObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[];
}

export function named<T = KubeObject>(objects: KubeObject[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found as unknown as T;
}

/** The operator's Deployment (app.kubernetes.io/component operator). */
export function deploymentOf(objects: KubeObject[], component: 'operator'): V1Deployment {
  const found = ofKind<V1Deployment>(objects, 'Deployment').find((d) => d.metadata?.labels?.['app.kubernetes.io/component'] === component);
  if (!found) throw new Error(`no ${component} Deployment rendered`);
  return found;
}

/** The proxy pods' StatefulSet. */
export function statefulSetOf(objects: KubeObject[]): V1StatefulSet {
  const found = ofKind<V1StatefulSet>(objects, 'StatefulSet').find((d) => d.metadata?.labels?.['app.kubernetes.io/component'] === 'proxy');
  if (!found) throw new Error('no proxy StatefulSet rendered');
  return found;
}

/** The workload of one part of the chart: the operator's Deployment or the proxy's StatefulSet. */
export function workloadOf(objects: KubeObject[], component: 'operator' | 'proxy'): V1Deployment | V1StatefulSet {
  return component === 'operator' ? deploymentOf(objects, component) : statefulSetOf(objects);
}

/** Anything with a pod template: a Deployment, a Job. */
export interface Workload {
  spec?: { template: V1PodTemplateSpec };
}

export function containerEnv(deployment: Workload): V1EnvVar[] {
  return deployment.spec?.template.spec?.containers[0]?.env ?? [];
}

/** The value of a Secret's key, whether rendered as data (base64) or stringData. */
export function secretValue(secret: V1Secret, key: string): string | undefined {
  const plain = secret.stringData?.[key];
  if (plain !== undefined) return plain;
  const encoded = secret.data?.[key];
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
}

/** What the downward API reads of a pod: its name and namespace, and for a StatefulSet's pod its index label and node. */
export interface PodIdentity {
  name: string;
  namespace: string;
  labels?: Record<string, string>;
  hostIP?: string;
}

/**
 * The process environment a container of the chart would get, as far as it
 * can be known outside a cluster: literal values, the downward API from
 * `pod`, and Secret keys from the rendered Secrets.
 */
export function resolveEnv(objects: KubeObject[], deployment: Workload, pod: PodIdentity): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of containerEnv(deployment)) {
    const from = variable.valueFrom;
    const label = /^metadata\.labels\['(.+)'\]$/.exec(from?.fieldRef?.fieldPath ?? '')?.[1];
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (from?.fieldRef?.fieldPath === 'metadata.name') env[variable.name] = pod.name;
    else if (from?.fieldRef?.fieldPath === 'metadata.namespace') env[variable.name] = pod.namespace;
    else if (label !== undefined && pod.labels?.[label] !== undefined) env[variable.name] = pod.labels[label];
    else if (from?.fieldRef?.fieldPath === 'status.hostIP' && pod.hostIP) env[variable.name] = pod.hostIP;
    else if (from?.secretKeyRef) {
      const { name, key } = from.secretKeyRef;
      const value = secretValue(named<V1Secret>(objects, 'Secret', name ?? ''), key);
      if (value === undefined) throw new Error(`Secret ${name} has no key ${key}`);
      env[variable.name] = value;
    } else throw new Error(`cannot resolve env ${variable.name} outside a cluster`);
  }
  return env;
}

/** One release of the chart run as local processes against the rig, as its own ServiceAccount. */
export interface LocalRelease {
  release: string;
  namespace: string;
  portRange: { min: number; max: number };
  devicePort: number;
  serviceAccount: string;
  leaseName: string;
  operatorIdentity: string;
  objects: KubeObject[];
  /** The values file the release was rendered (or installed) with. */
  valuesFile: string;
  kubeconfig: string;
  operator: Started;
  proxy: Started;
  control<T = Record<string, unknown>>(path: string, token?: string): Promise<{ status: number; body: T }>;
  /** Does what the kubelet does after a Secret changed: projects the control tokens Secret anew into the mounted directory. */
  syncControlTokens(): Promise<void>;
  stop(): Promise<void>;
}

export interface LocalReleaseOptions {
  release: string;
  namespace: string;
  portRange: { min: number; max: number };
  /** More chart values (e.g. controlTokens). */
  values?: object;
  /** `helm install` the release (else the rendered objects are applied with kubectl). */
  helmInstall?: boolean;
}

/**
 * Renders the chart for a namespace, creates what `helm install` creates
 * (pods never run in the rig), then starts one operator replica and the proxy
 * as local processes with the environment of the rendered Deployments. Only
 * what points into the pod is redirected to loopback: the mounted Secret
 * files (projected from the Secrets in the API server, as the kubelet does),
 * the admin Service address and the bind addresses. The operator acts with a
 * TokenRequest token of the chart's own ServiceAccount.
 */
export async function startLocalRelease(rig: Rig, opts: LocalReleaseOptions): Promise<LocalRelease> {
  const { release, namespace, portRange } = opts;
  const [devicePort, adminPort, controlPort, healthPort, peerPort] = (await freePorts(5)) as [number, number, number, number, number];
  const values = {
    publicHost: '127.0.0.1',
    devicePort,
    exposure: { mode: 'loadBalancer', loadBalancer: { portsPerPod: portRange.max - portRange.min + 1 } },
    portRange,
    ...opts.values,
    operator: { controlPort, leaseDurationSeconds: 4 },
    proxy: { adminPort, healthPort, peerPort },
  };
  const file = valuesFile(values);
  const rendered = await render(rig.binDir, values, { release, namespace });
  await mustKubectl(rig, ['create', 'namespace', namespace], true);
  if (opts.helmInstall) {
    const install = await runHelm(rig.binDir, ['install', release, chartDir, '-n', namespace, '-f', file], rig.kubeconfig);
    if (install.code !== 0) throw new Error(`helm install ${release} failed: ${install.stderr}`);
  } else {
    await mustKubectl(
      rig,
      ['apply', '--server-side', '--field-manager=helm-test', '-f', '-'],
      false,
      toYamlStream(releaseObjects(rendered.objects)),
    );
  }

  const operatorDeployment = deploymentOf(rendered.objects, 'operator');
  const serviceAccount = operatorDeployment.spec?.template.spec?.serviceAccountName ?? '';
  const kubeconfig = await rig.serviceAccountKubeconfig(namespace, serviceAccount);
  const mounts = join(helmHome, `${namespace}-${release}-mounts`);

  const operatorIdentity = `${release}-operator-7f9c-0`;
  const pod = { name: operatorIdentity, namespace };
  const proxySet = statefulSetOf(rendered.objects);
  const proxyPod = {
    name: `${proxySet.metadata?.name}-0`,
    namespace,
    labels: { 'apps.kubernetes.io/pod-index': '0' },
    hostIP: '127.0.0.1',
  };
  const proxyEnv = resolveEnv(rendered.objects, proxySet, proxyPod);
  const operatorEnv = resolveEnv(rendered.objects, operatorDeployment, pod);
  const adminAddress = operatorEnv.CCCP_ADMIN_ADDRESS ?? '';
  if (!adminAddress.endsWith(`.${namespace}.svc:${adminPort}`)) throw new Error(`unexpected CCCP_ADMIN_ADDRESS ${adminAddress}`);
  const tokensSecret = operatorDeployment.spec?.template.spec?.volumes?.find((v) => v.name === 'control-tokens')?.secret?.secretName;
  const tokensDir = join(mounts, 'control-tokens');
  const syncControlTokens = async () => {
    if (tokensSecret) projectSecretVolume(tokensDir, await secretFromCluster(rig, namespace, tokensSecret));
  };
  await syncControlTokens();

  // The operator's own code fills the admin token Secret first (as the first
  // replica would); the proxy then starts with it, as its pod does once the key
  // exists, and the operator process reads it back through the API.
  const adminSecret = proxySet.spec?.template.spec?.volumes?.find((v) => v.name === 'admin-token')?.secret?.secretName ?? '';
  if (operatorEnv.CCCP_ADMIN_TOKEN_SECRET) {
    const asOperator = new KubeConfig();
    asOperator.loadFromFile(kubeconfig);
    await ensureAdminToken(asOperator, namespace, operatorEnv.CCCP_ADMIN_TOKEN_SECRET);
  }
  const adminDir = projectSecretVolume(join(mounts, 'admin-token'), await secretFromCluster(rig, namespace, adminSecret));
  const proxy = await startNodeProcess(
    'proxy-pod/main.ts',
    {
      ...proxyEnv,
      CCCP_ADMIN_TOKEN_FILE: join(adminDir, 'token'),
      CCCP_BIND_HOST: '127.0.0.1',
      CCCP_ADMIN_BIND_HOST: '127.0.0.1',
    },
    /proxy pod ready/,
  );
  let operator: Started;
  try {
    operator = await startNodeProcess(
      'operator/main.ts',
      {
        ...operatorEnv,
        KUBECONFIG: kubeconfig,
        CCCP_NAMESPACE: '',
        CCCP_ADMIN_ADDRESS: `127.0.0.1:${adminPort}`,
        CCCP_CONTROL_BIND_HOST: '127.0.0.1',
        ...(operatorEnv.CCCP_CONTROL_TOKENS_FILE ? { CCCP_CONTROL_TOKENS_FILE: join(tokensDir, 'tokens') } : {}),
      },
      /operator ready/,
    );
  } catch (err) {
    await proxy.stop();
    throw err;
  }
  return {
    release,
    namespace,
    portRange,
    devicePort,
    serviceAccount,
    leaseName: operatorEnv.CCCP_LEASE_NAME ?? '',
    operatorIdentity,
    objects: rendered.objects,
    valuesFile: file,
    kubeconfig,
    operator,
    proxy,
    async control<T>(path: string, token?: string) {
      const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const res = await fetch(`http://127.0.0.1:${controlPort}${path}`, { headers, signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
    syncControlTokens,
    async stop() {
      await operator.stop();
      await proxy.stop();
    },
  };
}
