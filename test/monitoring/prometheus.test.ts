// Monitoring proven against a real Prometheus: the cluster mode (two
// operator replicas and the proxy as real processes against the rig's
// kube-apiserver) is scraped with the README's scrape config, whose
// relabelling the chart's ServiceMonitor and PodMonitor mirror; the chart's
// alert rules are loaded as rendered (with short `for:` values for the two
// alerts this test fires), sessions are driven through the Control API and
// the data plane, and then every dashboard query and every alert expression
// must find series. "Ports nearly exhausted" and "proxy unreachable" fire
// when the test causes them and resolve when it stops. promtool checks the
// rules and runs their unit tests (test/monitoring/alerts.promtool.yaml).
//
// CCCP_DASHBOARD_DATA=<file> also writes every panel's data over the run to
// that file, for docs/monitoring/render-dashboard.py.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Service } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse, stringify } from 'yaml';
import { startRigWithCrd, TestCluster } from '../helpers/cluster.ts';
import { type KubeObject, kubeBinDir, named, ofKind, render, requiredValues } from '../helpers/helm.ts';
import {
  type AlertRule,
  type DashboardJson,
  dashboardFile,
  metricNames,
  promtool,
  resolveVariables,
  scrapeConfigFile,
  TestPrometheus,
  withBoolComparisons,
} from '../helpers/monitoring.ts';
import { connect, connectDevice, freePortRange, Received, sleep, waitFor } from '../helpers/net.ts';
import type { Rig } from '../kube/rig.ts';

const test = suite('monitoring with a real Prometheus');
const NAMESPACE = 'cccp-mon';
const RELEASE = 'mon';
const RANGE_SIZE = 10;
const OPERATORS = ['operator-a', 'operator-b'];
const promtoolTests = fileURLToPath(new URL('./alerts.promtool.yaml', import.meta.url));
const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as DashboardJson;

/** Values of the release under test: every monitoring object on, the two alerts the test fires quick. */
const monitoringValues = {
  ...requiredValues,
  metrics: {
    serviceMonitor: { enabled: true },
    prometheusRule: {
      enabled: true,
      interval: '1s',
      alerts: {
        portsNearlyExhausted: { for: '3s', severity: 'warning', ratio: 0.9 },
        proxyUnreachable: { for: '3s', severity: 'critical' },
      },
    },
    dashboard: { enabled: true },
  },
};

let rig: Rig | undefined;
let cluster: TestCluster | undefined;
let prometheus: TestPrometheus | undefined;
let objects: KubeObject[] = [];
let rules: AlertRule[] = [];
let startError: unknown;
/** When Prometheus started scraping: the start of the dashboard picture. */
let startedAt = Date.now() / 1000;
const sockets: net.Socket[] = [];
const pairs: Array<{ device: Received; client: Received }> = [];
let lonely: net.Socket | undefined;

interface PrometheusRuleObject {
  spec: { groups: Array<{ name: string; interval?: string; rules: AlertRule[] }> };
}
interface RelabelConfig {
  action?: string;
  source_labels?: string[];
  regex?: string;
  target_label?: string;
}
interface ScrapeConfig {
  job_name: string;
  kubernetes_sd_configs?: unknown;
  static_configs?: unknown;
  relabel_configs: RelabelConfig[];
}

/** A Kubernetes label name as Prometheus service discovery spells it in __meta_* labels. */
const metaLabel = (name: string) => name.replace(/[^a-zA-Z0-9_]/g, '_');

/**
 * The README's scrape job with Kubernetes discovery replaced by static
 * targets that carry the __meta_* labels Kubernetes discovery would give the
 * rendered metrics Services' endpoints: the relabelling itself is unchanged.
 */
function scrapeConfigFor(c: TestCluster): ScrapeConfig[] {
  const jobs = parse(readFileSync(scrapeConfigFile, 'utf8')) as ScrapeConfig[];
  const services = ofKind<V1Service>(objects, 'Service').filter((s) => s.metadata?.name?.endsWith('-metrics'));
  const endpoints = (component: string) => {
    const service = services.find((s) => s.metadata?.labels?.['app.kubernetes.io/component'] === component)!;
    const pods =
      component === 'operator'
        ? OPERATORS.map((name) => ({ name, port: c.controlPorts.get(name)! }))
        : [{ name: `${RELEASE}-proxy-0`, port: c.proxyHealthPort }];
    return pods.map((pod) => ({
      targets: [`127.0.0.1:${pod.port}`],
      labels: {
        __meta_kubernetes_namespace: NAMESPACE,
        __meta_kubernetes_service_name: service.metadata!.name!,
        __meta_kubernetes_pod_name: pod.name,
        __meta_kubernetes_endpoint_port_name: service.spec!.ports![0]!.name!,
        ...Object.fromEntries(
          Object.entries(service.metadata!.labels!).map(([k, v]) => [`__meta_kubernetes_service_label_${metaLabel(k)}`, v]),
        ),
      },
    }));
  };
  return jobs.map(({ kubernetes_sd_configs: _sd, ...job }) => ({
    ...job,
    static_configs: [...endpoints('operator'), ...endpoints('proxy')],
  }));
}

test.before(async () => {
  try {
    const binDir = await kubeBinDir();
    objects = (await render(binDir, monitoringValues, { release: RELEASE, namespace: NAMESPACE })).objects;
    rules = ofKind<PrometheusRuleObject>(objects, 'PrometheusRule')[0]!.spec.groups.flatMap((g) => g.rules);
    rig = await startRigWithCrd();
    cluster = await TestCluster.start(rig, { namespace: NAMESPACE, portRange: await freePortRange(RANGE_SIZE), proxyMetrics: true });
    for (const name of OPERATORS) await cluster.startOperator(name);
    await cluster.waitForOperatorLeader();
    const groups = ofKind<PrometheusRuleObject>(objects, 'PrometheusRule')[0]!.spec.groups;
    prometheus = await TestPrometheus.start({
      scrapeConfigs: scrapeConfigFor(cluster),
      rules: { groups },
      scrapeInterval: '1s',
      evaluationInterval: '1s',
    });
    startedAt = Date.now() / 1000;
  } catch (err) {
    startError = err;
  }
});

test.after(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  if (process.env.CCCP_DASHBOARD_DATA && prometheus)
    await writeDashboardData(prometheus, process.env.CCCP_DASHBOARD_DATA).catch((err: unknown) => console.error(err));
  await prometheus?.stop();
  await cluster?.stop();
  await rig?.stop();
});

function running(): { c: TestCluster; p: TestPrometheus } {
  if (!cluster || !prometheus || startError) throw startError ?? new Error('not started');
  return { c: cluster, p: prometheus };
}

async function on(serial: string, query = ''): Promise<number> {
  const answer = await running().c.control<{ port: number }>(`/on?serial=${serial}${query}`);
  assert.is(answer.status, 200, `/on ${serial}: ${JSON.stringify(answer.body)}`);
  return answer.body.port;
}

async function firing(alertname: string): Promise<boolean> {
  return (await running().p.alerts()).some(
    (a) => a.labels.alertname === alertname && a.state === 'firing' && a.labels.namespace === NAMESPACE,
  );
}

async function active(alertname: string): Promise<boolean> {
  return (await running().p.alerts()).some((a) => a.labels.alertname === alertname);
}

test('promtool accepts the rendered rules, and their unit tests pass with the default values', async () => {
  const binDir = await kubeBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'cccp-promtool-'));
  try {
    const defaults = await render(binDir, { ...requiredValues, metrics: { prometheusRule: { enabled: true } } }, { namespace: 'ns1' });
    const groups = ofKind<PrometheusRuleObject>(defaults.objects, 'PrometheusRule')[0]!.spec.groups;
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups }));
    copyFileSync(promtoolTests, join(dir, 'alerts.promtool.yaml'));
    const check = await promtool(['check', 'rules', 'rules.yaml'], dir);
    assert.is(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, 'SUCCESS: 7 rules found');
    const unit = await promtool(['test', 'rules', 'alerts.promtool.yaml'], dir);
    assert.is(unit.code, 0, unit.stdout + unit.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the ServiceMonitor, PodMonitor and README scrape config agree on jobs, port and labels', async () => {
  const { c } = running();
  const jobs = parse(readFileSync(scrapeConfigFile, 'utf8')) as ScrapeConfig[];
  const relabel = jobs[0]!.relabel_configs;
  const serviceMonitor = named<KubeObject & { spec: { jobLabel: string; endpoints: Array<{ port: string }> } }>(
    objects,
    'ServiceMonitor',
    `${RELEASE}-cccp-proxy`,
  );
  const jobSource = `__meta_kubernetes_service_label_${metaLabel(serviceMonitor.spec.jobLabel)}`;
  assert.ok(
    relabel.some((r) => r.target_label === 'job' && r.source_labels?.[0] === jobSource),
    'the scrape config takes job from the ServiceMonitor jobLabel',
  );
  assert.ok(
    relabel.some(
      (r) =>
        r.action === 'keep' &&
        r.source_labels?.[0] === '__meta_kubernetes_endpoint_port_name' &&
        r.regex === serviceMonitor.spec.endpoints[0]!.port,
    ),
  );
  const services = ofKind<V1Service>(objects, 'Service').filter((s) => s.metadata?.labels?.[serviceMonitor.spec.jobLabel]);
  assert.equal(services.map((s) => s.metadata!.labels![serviceMonitor.spec.jobLabel]).sort(), ['cccp-operator', 'cccp-proxy']);
  const podMonitors = (
    await render(
      await kubeBinDir(),
      { ...requiredValues, metrics: { podMonitor: { enabled: true } } },
      { release: RELEASE, namespace: NAMESPACE },
    )
  ).objects.filter((o) => o.kind === 'PodMonitor') as Array<
    KubeObject & { spec: { podMetricsEndpoints: Array<{ relabelings: Array<{ targetLabel: string; replacement: string }> }> } }
  >;
  assert.equal(
    podMonitors.map((m) => m.spec.podMetricsEndpoints[0]!.relabelings.find((r) => r.targetLabel === 'job')!.replacement).sort(),
    ['cccp-operator', 'cccp-proxy'],
  );
  // What Prometheus made of it: the chart's job names, namespace and pod on every target, all up.
  await waitFor(async () => (await running().p.targets()).filter((t) => t.health === 'up').length === 3, 20_000, 'three targets up');
  const targets = (await running().p.targets()).map((t) => `${t.labels.job} ${t.labels.namespace} ${t.labels.pod}`).sort();
  assert.equal(targets, [
    `cccp-operator ${NAMESPACE} operator-a`,
    `cccp-operator ${NAMESPACE} operator-b`,
    `cccp-proxy ${NAMESPACE} ${RELEASE}-proxy-0`,
  ]);
  assert.ok(c.proxyHealthPort > 0);
});

test('driving sessions through the cluster: traffic, refusals, pending devices, errors', async () => {
  const { c } = running();
  // Persistent sessions with a device and a client exchanging bytes; they stay connected.
  for (const serial of ['MON-1', 'MON-2']) {
    const port = await on(serial, '&persistent=true');
    const client = new Received(await connect(port));
    const device = new Received(await connectDevice(c.devicePort, serial));
    sockets.push(client.socket, device.socket);
    pairs.push({ device, client });
    device.socket.write('x'.repeat(2000));
    await client.untilLength(2000, 5000);
    client.socket.write('y'.repeat(500));
    await device.untilLength(500, 5000);
  }
  // A device without its client: its bytes are dropped.
  lonely = await connectDevice(c.devicePort, 'MON-3');
  sockets.push(lonely);
  await on('MON-3', '&persistent=true');
  await waitFor(async () => (await c.session('MON-3'))?.status?.deviceConnected === true, 5000, 'MON-3 device attached');
  lonely.write('z'.repeat(100));
  // A non-persistent session that ends when its client leaves.
  const endingPort = await on('MON-4');
  const endingClient = await connect(endingPort);
  endingClient.end();
  await waitFor(async () => (await c.session('MON-4'))?.status?.phase === 'Ended', 10_000, 'MON-4 ended');
  // A client the whitelist refuses.
  const guarded = await on('MON-WL', '&ip_whitelist=192.0.2.1');
  const refused = await connect(guarded);
  sockets.push(refused);
  // Registrations refused: a serial with a space, an empty one; and a pending device.
  for (const bad of ['bad serial\r', '\r']) {
    const s = await connect(c.devicePort);
    sockets.push(s);
    s.write(bad);
  }
  sockets.push(await connectDevice(c.devicePort, 'MON-PENDING'));
  // Control API answers other than 200.
  assert.is((await c.control('/on?serial=MON-X&timeout=soon')).status, 400);
  assert.is((await c.control('/status?serial=MON-NONE')).status, 404);
  assert.is((await c.control('/status?serial=MON-1')).status, 200);
  // Let Prometheus see the movement over a few scrapes.
  await sleep(3000);
  if (process.env.CCCP_DASHBOARD_DATA) await variedTraffic(60);
});

/** A minute of changing load for the dashboard picture (only with CCCP_DASHBOARD_DATA). */
async function variedTraffic(seconds: number): Promise<void> {
  const { c } = running();
  for (let i = 0; i < seconds; i++) {
    const burst = Math.round(20_000 * (1 + Math.sin(i / 6)));
    for (const { device, client } of pairs) {
      device.socket.write('d'.repeat(burst));
      client.socket.write('c'.repeat(Math.round(burst / 4)));
    }
    if (i % 3 === 0) sockets.push(await connect(await on(`MON-SHORT-${i}`)));
    lonely?.write('z'.repeat(burst / 10));
    if (i % 3 === 2) await c.control(`/off?serial=MON-SHORT-${i - 2}`);
    if (i % 5 === 0) {
      const s = await connect(c.devicePort);
      s.end('no space allowed\r');
    }
    await c.control('/status?serial=MON-1');
    await sleep(1000);
  }
}

test('"ports nearly exhausted" fires when the range fills and resolves when sessions end', async () => {
  const { c } = running();
  assert.not.ok(await active('CCCPPortsNearlyExhausted'));
  // Four sessions hold ports (MON-1, -2, -3, -WL); fill the rest of the ten.
  const fillers = Array.from({ length: RANGE_SIZE - 4 }, (_, i) => `MON-FILL-${i}`);
  for (const serial of fillers) await on(serial);
  assert.is((await c.control('/on?serial=MON-TOO-MANY')).status, 503);
  await waitFor(() => firing('CCCPPortsNearlyExhausted'), 30_000, 'CCCPPortsNearlyExhausted to fire');
  for (const serial of fillers) assert.is((await c.control(`/off?serial=${serial}`)).status, 200);
  await waitFor(async () => !(await active('CCCPPortsNearlyExhausted')), 30_000, 'CCCPPortsNearlyExhausted to resolve');
  // No replica keeps a deleted session in its cache (it would count as Deleting for ever).
  await waitFor(
    async () => (await gauge(`max(cccp_sessions{phase="Deleting",namespace="${NAMESPACE}"})`)) === 0,
    10_000,
    'no session left Deleting',
  );
});

test('every dashboard panel query returns series', async () => {
  const { p } = running();
  const empty: string[] = [];
  for (const panel of dashboard.panels.filter((x) => x.type !== 'row')) {
    for (const target of panel.targets) {
      const expr = resolveVariables(target.expr, { namespace: NAMESPACE, rateInterval: '1m' });
      if ((await p.query(expr)).length === 0) empty.push(`${panel.title}: ${expr}`);
    }
  }
  assert.equal(empty, [], 'queries without series');
  const variable = await p.query('count by (namespace) (cccp_operator_leader)');
  assert.equal(
    variable.map((s) => s.metric.namespace),
    [NAMESPACE],
    'the namespace variable finds the project',
  );
});

test('every alert expression and every metric it reads returns series, and every rule evaluates without error', async () => {
  const { p } = running();
  assert.is(rules.length, 7);
  const empty: string[] = [];
  for (const rule of rules) {
    if ((await p.query(withBoolComparisons(rule.expr))).length === 0) empty.push(`${rule.alert}: ${rule.expr}`);
    for (const name of metricNames(rule.expr)) {
      if ((await p.query(`count(${name}{namespace="${NAMESPACE}"})`)).length === 0) empty.push(`${rule.alert}: ${name}`);
    }
  }
  assert.equal(empty, [], 'alert expressions or metrics without series');
  const res = (await (await fetch(`${p.url}/api/v1/rules`)).json()) as {
    data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> };
  };
  const unhealthy = res.data.groups.flatMap((g) => g.rules).filter((r) => r.health !== 'ok');
  assert.equal(unhealthy, []);
});

test('"proxy unreachable" fires while the proxy is down and resolves when it is back', async () => {
  const { c } = running();
  for (const s of sockets.splice(0)) s.destroy();
  assert.not.ok(await active('CCCPProxyUnreachable'));
  await c.proxy!.stop();
  await waitFor(() => firing('CCCPProxyUnreachable'), 40_000, 'CCCPProxyUnreachable to fire');
  // Both views of the outage: Prometheus's scrape and the operator's admin API.
  await waitFor(
    async () => (await gauge(`max(cccp_operator_proxy_reachable{namespace="${NAMESPACE}"})`)) === 0,
    20_000,
    'the operator to report the proxy unreachable',
  );
  assert.is(await gauge(`max(up{job="cccp-proxy",namespace="${NAMESPACE}"})`), 0);
  const restarted = Date.now();
  await c.startProxy();
  await waitFor(
    async () => (await gauge(`max(cccp_operator_proxy_reachable{namespace="${NAMESPACE}"})`)) === 1,
    20_000,
    'the operator to reach the proxy again',
  );
  await waitFor(async () => !(await active('CCCPProxyUnreachable')), 40_000, 'CCCPProxyUnreachable to resolve');
  console.log(`proxy unreachable: resolved ${((Date.now() - restarted) / 1000).toFixed(1)} s after the restart`);
  // Resolved for good, not between two evaluations.
  for (let i = 0; i < 5; i++) {
    await sleep(1000);
    assert.not.ok(await active('CCCPProxyUnreachable'), 'CCCPProxyUnreachable came back');
  }
});

async function gauge(expr: string): Promise<number | undefined> {
  const [sample] = await running().p.query(expr);
  return sample ? Number(sample.value[1]) : undefined;
}

/** Every panel's series over the whole run, for the dashboard picture. */
async function writeDashboardData(p: TestPrometheus, file: string): Promise<void> {
  const end = Date.now() / 1000;
  const panels = [];
  for (const panel of dashboard.panels) {
    if (panel.type === 'row') {
      panels.push({ type: 'row', title: panel.title, gridPos: panel.gridPos });
      continue;
    }
    const series = [];
    for (const target of panel.targets) {
      const expr = resolveVariables(target.expr, { namespace: NAMESPACE, rateInterval: '10s' });
      for (const s of await p.queryRange(expr, startedAt, end, 1)) {
        const legend = (target.legendFormat ?? '').replace(/\{\{\s*(\w+)\s*\}\}/g, (_, label: string) => s.metric[label] ?? '');
        series.push({ legend: legend || expr, values: s.values.map(([t, v]) => [t - startedAt, Number(v)]) });
      }
    }
    panels.push({ type: panel.type, title: panel.title, unit: panel.fieldConfig?.defaults?.unit ?? '', gridPos: panel.gridPos, series });
  }
  writeFileSync(file, JSON.stringify({ title: dashboard.title, namespace: NAMESPACE, seconds: end - startedAt, panels }));
}

test.run();
