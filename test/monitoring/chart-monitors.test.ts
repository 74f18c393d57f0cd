// The chart's monitoring objects as rendered by the real `helm`: metrics
// Services by default, the Prometheus Operator objects and the dashboard
// only when asked, and the values the schema or the templates refuse.
import { readFileSync } from 'node:fs';
import type { V1ConfigMap, V1Service } from '@kubernetes/client-node';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { suiteFixture } from '../helpers/fixture.ts';
import { chartDir, type KubeObject, kubeBinDir, ofKind, render, requiredValues, runHelm, template, valuesFile } from '../helpers/helm.ts';
import { dashboardFile } from '../helpers/monitoring.ts';

const test = suite('helm chart monitoring');

const bin = suiteFixture(test, kubeBinDir);

const MONITORING_KINDS = ['ServiceMonitor', 'PodMonitor', 'PrometheusRule', 'ConfigMap'];

test('by default: a headless metrics Service per part with the job label and prometheus.io annotations, nothing else', async () => {
  const { objects } = await render(bin(), requiredValues);
  assert.equal(
    objects.filter((o) => MONITORING_KINDS.includes(o.kind)),
    [],
  );
  const metrics = ofKind<V1Service>(objects, 'Service').filter((s) => s.metadata?.name?.endsWith('-metrics'));
  const seen = metrics.map((s) => ({
    name: s.metadata!.name,
    job: s.metadata!.labels!['cccp.tcxn.net/metrics-job'],
    component: s.spec!.selector!['app.kubernetes.io/component'],
    clusterIP: s.spec!.clusterIP,
    port: s.spec!.ports!.map((p) => [p.name, p.port, p.targetPort]),
    annotations: s.metadata!.annotations,
  }));
  assert.equal(seen, [
    {
      name: 'cust-cccp-proxy-operator-metrics',
      job: 'cccp-operator',
      component: 'operator',
      clusterIP: 'None',
      port: [['metrics', 8080, 'control']],
      annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080', 'prometheus.io/path': '/metrics' },
    },
    {
      name: 'cust-cccp-proxy-proxy-metrics',
      job: 'cccp-proxy',
      component: 'proxy',
      clusterIP: 'None',
      port: [['metrics', 9090, 'health']],
      annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090', 'prometheus.io/path': '/metrics' },
    },
  ]);
});

test('the metrics Services name container ports the Deployments declare', async () => {
  const { objects } = await render(bin(), requiredValues);
  for (const service of ofKind<V1Service>(objects, 'Service').filter((s) => s.metadata?.name?.endsWith('-metrics'))) {
    const component = service.spec!.selector!['app.kubernetes.io/component'];
    const workload = objects.find(
      (o) => (o.kind === 'Deployment' || o.kind === 'StatefulSet') && o.metadata.labels?.['app.kubernetes.io/component'] === component,
    ) as { spec: { template: { spec: { containers: Array<{ ports?: Array<{ name: string }> }> } } } } | undefined;
    const names = workload?.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)) ?? [];
    assert.ok(
      names.includes(String(service.spec!.ports![0]!.targetPort)),
      `${component} declares port ${service.spec!.ports![0]!.targetPort}`,
    );
  }
});

test('enabled: ServiceMonitor with labels and intervals, PrometheusRule with seven alerts, the dashboard ConfigMap carrying the file', async () => {
  const values = {
    ...requiredValues,
    metrics: {
      serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'kube-prometheus-stack' } },
      prometheusRule: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
      dashboard: { enabled: true, annotations: { grafana_folder: 'CCCP' } },
    },
  };
  const { objects } = await render(bin(), values);
  const monitor = objects.find((o) => o.kind === 'ServiceMonitor') as unknown as {
    metadata: { labels: Record<string, string> };
    spec: { endpoints: Array<{ interval: string; port: string }> };
  };
  assert.is(monitor.metadata.labels.release, 'kube-prometheus-stack');
  assert.equal(
    monitor.spec.endpoints.map((e) => [e.port, e.interval]),
    [['metrics', '15s']],
  );
  const rule = objects.find((o) => o.kind === 'PrometheusRule') as unknown as {
    metadata: { labels: Record<string, string> };
    spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  };
  assert.is(rule.metadata.labels.release, 'kube-prometheus-stack');
  const alerts = rule.spec.groups.flatMap((g) => g.rules);
  assert.equal(
    alerts.map((a) => a.alert),
    [
      'CCCPProxyUnreachable',
      'CCCPNoLeader',
      'CCCPPortsNearlyExhausted',
      'CCCPSessionsStuckPending',
      'CCCPSessionsFailed',
      'CCCPRegistrationRefusalsSpiking',
      'CCCPStatusWritesFailing',
    ],
  );
  // Scoped to the release's namespace, so several releases never alert twice.
  for (const a of alerts) for (const selector of a.expr.match(/\{[^}]*\}/g) ?? []) assert.match(selector, 'namespace="cust"', a.alert);
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const a of alerts) assert.match(readme, `#### Runbook: ${a.alert}`, `README runbook for ${a.alert}`);
  const dashboard = ofKind<V1ConfigMap>(objects, 'ConfigMap')[0]!;
  assert.is(dashboard.metadata!.labels!.grafana_dashboard, '1');
  assert.is(dashboard.metadata!.annotations!.grafana_folder, 'CCCP');
  assert.is(dashboard.data!['cccp-proxy.json'], readFileSync(dashboardFile, 'utf8').trimEnd());
});

test('helm lint --strict passes with every monitoring object enabled', async () => {
  const values = {
    ...requiredValues,
    metrics: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true }, dashboard: { enabled: true } },
  };
  const lint = await runHelm(bin(), ['lint', '--strict', chartDir, '-f', valuesFile(values)]);
  assert.is(lint.code, 0, lint.stdout + lint.stderr);
});

test('the PodMonitor alternative: one per part, job set by relabelling', async () => {
  const { objects } = await render(bin(), { ...requiredValues, metrics: { podMonitor: { enabled: true } } });
  const monitors = objects.filter((o) => o.kind === 'PodMonitor') as unknown as Array<{
    spec: {
      selector: { matchLabels: Record<string, string> };
      podMetricsEndpoints: Array<{ port: string; relabelings: Array<{ replacement: string }> }>;
    };
  }>;
  assert.equal(
    monitors.map((m) => [
      m.spec.selector.matchLabels['app.kubernetes.io/component'],
      m.spec.podMetricsEndpoints[0]!.port,
      m.spec.podMetricsEndpoints[0]!.relabelings[0]!.replacement,
    ]),
    [
      ['operator', 'control', 'cccp-operator'],
      ['proxy', 'health', 'cccp-proxy'],
    ],
  );
});

test('the ServiceMonitor, PodMonitors and PrometheusRule satisfy the Prometheus Operator CRD schemas', async () => {
  // @kubernetes-models/prometheus-operator ships validators generated from the CRDs' OpenAPI schemas.
  const models = { ServiceMonitor, PodMonitor, PrometheusRule } as const;
  const validate = (o: KubeObject) => new models[o.kind as keyof typeof models](o as never).validate();
  const all = [
    ...(
      await render(bin(), {
        ...requiredValues,
        metrics: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true, interval: '30s' } },
      })
    ).objects,
    ...(await render(bin(), { ...requiredValues, metrics: { podMonitor: { enabled: true } } })).objects,
  ].filter((o) => o.kind in models);
  assert.equal(all.map((o) => o.kind).sort(), ['PodMonitor', 'PodMonitor', 'PrometheusRule', 'ServiceMonitor']);
  for (const o of all) validate(o);
  // The check can fail: a duration Prometheus would not parse.
  const broken = JSON.parse(JSON.stringify(all.find((o) => o.kind === 'ServiceMonitor'))) as KubeObject & {
    spec: { endpoints: Array<{ interval: string }> };
  };
  broken.spec.endpoints[0]!.interval = '30 seconds';
  assert.throws(() => validate(broken), /interval/);
});

test('refused: both monitors at once, a ServiceMonitor without the Services, a malformed duration, a ratio above 1', async () => {
  const refusals: Array<[object, RegExp]> = [
    [{ podMonitor: { enabled: true }, serviceMonitor: { enabled: true } }, /choose one/],
    [{ serviceMonitor: { enabled: true }, services: { enabled: false } }, /needs metrics.services.enabled/],
    [{ serviceMonitor: { enabled: true, interval: '30 seconds' } }, /interval/],
    [{ prometheusRule: { alerts: { portsNearlyExhausted: { for: '5m', severity: 'warning', ratio: 90 } } } }, /ratio/],
    [{ prometheusRule: { alerts: { noLeader: { for: '2m', severity: 'critical', ratio: 1 } } } }, /noLeader|ratio|additional/i],
    [{ dashbord: { enabled: true } }, /dashbord/],
  ];
  for (const [metrics, message] of refusals) {
    const result = await template(bin(), { ...requiredValues, metrics });
    assert.is.not(result.code, 0, `accepted ${JSON.stringify(metrics)}`);
    assert.match(result.stderr, message);
  }
});

test.run();
