// The chart after the first install, rendered by the real `helm` (no
// cluster): renders that GitOps tools can compare, use as a subchart, value
// checks with messages a person can act on, pod templates that a chart bump
// leaves alone, the Kubernetes version the CRD needs, resources from the
// bench, and the conventions of well-kept charts. What needs the API server
// is in helm-day-two-cluster.test.ts.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Deployment, V1Ingress, V1Job, V1Pod, V1Service } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { addressEntryError } from '../../proxy-pod/address-matcher.ts';
import { suiteFixture } from '../helpers/fixture.ts';
import {
  chartDir,
  containerEnv,
  deploymentOf,
  kubeBinDir,
  named,
  ofKind,
  render,
  requiredValues,
  runHelm,
  statefulSetOf,
  template,
  topLevelCrdFile,
  workloadOf,
} from '../helpers/helm.ts';
import { startStandalone } from '../helpers/standalone.ts';

const test = suite('helm chart, day two');

const hostNetworkValues = { ...requiredValues, exposure: { mode: 'hostNetwork', hostNetwork: { nodeName: 'edge-node-1' } } };

const bin = suiteFixture(test, kubeBinDir);

async function refused(values: object): Promise<string> {
  const result = await template(bin(), values);
  assert.is.not(result.code, 0, `helm template should have failed for ${JSON.stringify(values)}`);
  return result.stderr;
}

/** A copy of the chart to modify (Chart.yaml, or as an umbrella's dependency). */
function chartCopy(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'cccp-chart-')), 'cccp-proxy');
  cpSync(chartDir, dir, { recursive: true });
  return dir;
}

test('two helm template renders are byte-identical, in each mode and with tokens (nothing random is rendered)', async () => {
  for (const values of [requiredValues, hostNetworkValues, { ...requiredValues, controlTokens: ['control-token-0123456789'] }]) {
    const [a, b] = await Promise.all([template(bin(), values), template(bin(), values)]);
    assert.is(a.code, 0, a.stderr);
    assert.ok(a.stdout === b.stdout, `renders differ for ${JSON.stringify(values)}`);
  }
});

test('the chart renders as a subchart of an umbrella chart, with global values and an enabled condition', async () => {
  const umbrella = mkdtempSync(join(tmpdir(), 'cccp-umbrella-'));
  writeFileSync(
    join(umbrella, 'Chart.yaml'),
    [
      'apiVersion: v2',
      'name: customer-stack',
      'version: 1.0.0',
      'dependencies:',
      '  - name: cccp-proxy',
      '    version: 0.1.0',
      '    condition: cccp-proxy.enabled',
      '',
    ].join('\n'),
  );
  cpSync(chartDir, join(umbrella, 'charts', 'cccp-proxy'), { recursive: true });
  const values = { global: { imageRegistry: 'registry.example' }, 'cccp-proxy': { enabled: true, publicHost: 'proxy.acme.example' } };
  const { objects } = await render(bin(), values, { chart: umbrella, release: 'acme', namespace: 'acme' });
  const operator = deploymentOf(objects, 'operator');
  assert.is(operator.metadata?.name, 'acme-cccp-proxy-operator');
  assert.is(containerEnv(operator).find((e) => e.name === 'CCCP_PUBLIC_HOST')?.value, 'proxy.acme.example');

  const off = await render(
    bin(),
    { ...values, 'cccp-proxy': { enabled: false, publicHost: 'proxy.acme.example' } },
    { chart: umbrella, release: 'acme', namespace: 'acme' },
  );
  assert.equal(off.objects, [], 'enabled: false leaves the subchart out');
  // Unknown keys are still refused inside the subchart.
  const typo = await template(bin(), { 'cccp-proxy': { publicHost: 'proxy.acme.example', portrange: {} } }, { chart: umbrella });
  assert.is.not(typo.code, 0);
  assert.match(typo.stderr, "additional properties 'portrange' not allowed");
});

// Finding 5: each of these rendered before and crash-looped the proxy.
const badAddresses = [
  '999.1.1.1/8',
  '10.0.0.0/33',
  'cafe',
  '10.0.0.1/',
  '10.0.0.0/08',
  '2001:db8::/129',
  '1.2.3',
  '01.2.3.4',
  'fe80::1%eth0',
  '10.0.0.0/8/8',
  ':::',
  '1:2:3:4:5:6:7:8:9',
  'gggg::1',
  '192.168.1.0/24,10.0.0.0/8',
  '10.0.0.0 /8',
  '::ffff:10.0.0.0/8',
];
// The forms README.md and the chart README give as examples, and more the proxy reads.
const goodAddresses = [
  '192.168.1.7/24',
  '::ffff:10.0.0.1',
  '192.0.2.0/24',
  '2001:db8::/32',
  '10.0.0.0/8',
  '192.0.2.7',
  '::1',
  '::/0',
  '0.0.0.0/0',
  'fe80::1',
  '1:2:3:4:5:6:7:8',
  '1::8/128',
  '::ffff:10.0.0.0/104',
  '2001:db8:0:0:0:0:2:1',
];

test('bad CIDRs in proxy.deviceAllowlist are refused by helm template with a message naming the value, not a regex', async () => {
  for (const entry of badAddresses) {
    const message = await refused({ ...requiredValues, proxy: { deviceAllowlist: ['192.0.2.0/24', entry] } });
    assert.match(message, `proxy.deviceAllowlist[1] ${JSON.stringify(entry)} is `);
    assert.match(message, /such as (192\.0\.2\.0\/24 or 2001:db8::\/32|10\.0\.0\.0\/8)/);
    assert.not.match(message, /\[0-9|\{1,4\}|\^|\$'/, 'no regular expression in the message');
  }
});

test('the chart accepts exactly the allowlist entries the proxy pod accepts', async () => {
  const verdicts = await Promise.all(
    [...badAddresses, ...goodAddresses].map(async (entry) => {
      const result = await template(bin(), { ...requiredValues, proxy: { deviceAllowlist: [entry] } });
      return { entry, chart: result.code === 0, proxy: addressEntryError(entry) === undefined };
    }),
  );
  for (const { entry, chart, proxy } of verdicts)
    assert.is(chart, proxy, `${entry}: chart ${chart ? 'accepts' : 'refuses'}, proxy ${proxy ? 'accepts' : 'refuses'}`);
  assert.ok(verdicts.filter((v) => v.proxy).length === goodAddresses.length, 'the good examples are good for the proxy too');
});

test('loadBalancerSourceRanges must be CIDRs: a bare address or a bad CIDR is refused, naming the value', async () => {
  const lb = (ranges: string[]) => ({
    ...requiredValues,
    exposure: { mode: 'loadBalancer', loadBalancer: { loadBalancerSourceRanges: ranges } },
  });
  assert.match(await refused(lb(['192.0.2.7'])), 'exposure.loadBalancer.loadBalancerSourceRanges[0] "192.0.2.7" needs a prefix length');
  assert.match(
    await refused(lb(['10.0.0.0/33'])),
    'exposure.loadBalancer.loadBalancerSourceRanges[0] "10.0.0.0/33" is not an IP address or CIDR',
  );
  assert.match(
    await refused({ ...requiredValues, operator: { service: { type: 'LoadBalancer', loadBalancerSourceRanges: ['cafe'] } } }),
    'operator.service.loadBalancerSourceRanges[0] "cafe" is not an IP address or CIDR',
  );
  await render(bin(), lb(['192.0.2.0/24', '2001:db8::/32']));
});

test('a chart version bump leaves both pod templates unchanged (no restart, no dropped session)', async () => {
  const bumped = chartCopy();
  const chartYaml = join(bumped, 'Chart.yaml');
  writeFileSync(chartYaml, readFileSync(chartYaml, 'utf8').replace(/^version: .*$/m, 'version: 0.9.7'));
  const [before, after] = await Promise.all([render(bin(), requiredValues), render(bin(), requiredValues, { chart: bumped })]);
  for (const component of ['proxy', 'operator'] as const) {
    const [a, b] = [workloadOf(before.objects, component), workloadOf(after.objects, component)];
    assert.is.not(a.metadata?.labels?.['helm.sh/chart'], b.metadata?.labels?.['helm.sh/chart'], 'the bump shows on the Deployment itself');
    assert.equal(b.spec?.template, a.spec?.template, `${component} pod template unchanged`);
    const podLabels = Object.keys(a.spec?.template.metadata?.labels ?? {});
    assert.not.ok(
      podLabels.includes('helm.sh/chart') || podLabels.includes('app.kubernetes.io/version'),
      `${component} pod labels carry no version`,
    );
  }
});

test("the chart's kubeVersion admits no cluster older than the CRD's CEL functions need", async () => {
  const crd = readFileSync(topLevelCrdFile, 'utf8');
  // isIP/isCIDR in new CRD validation rules: Kubernetes 1.31 (the library arrived in 1.30, usable in new rules one release later).
  const needed = /\b(isIP|isCIDR)\(/.test(crd) ? 31 : 25;
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as { kubeVersion: string };
  const minor = Number(/^>=\s*1\.(\d+)\./.exec(chart.kubeVersion)?.[1]);
  assert.ok(minor >= needed, `kubeVersion ${chart.kubeVersion} must start at 1.${needed} or later`);
  const older = await template(bin(), requiredValues, { args: ['--kube-version', `1.${needed - 1}.9`] });
  assert.is.not(older.code, 0, 'helm refuses a cluster older than the CRD needs');
  assert.match(older.stderr, 'is incompatible with Kubernetes');
  const enough = await template(bin(), requiredValues, { args: ['--kube-version', `1.${needed}.0`] });
  assert.is(enough.code, 0, enough.stderr);
});

/** A quantity such as 256Mi or 500m in MiB or cores. */
function quantity(text: string | undefined, unit: 'MiB' | 'cores'): number {
  const match = /^(\d+(?:\.\d+)?)(Mi|Gi|m)?$/.exec(text ?? '');
  if (!match) throw new Error(`unreadable quantity ${text}`);
  const value = Number(match[1]);
  if (unit === 'MiB') return match[2] === 'Gi' ? value * 1024 : value;
  return match[2] === 'm' ? value / 1000 : value;
}

/** The proxy column of a row of bench/results/latest.md. */
function benchFigure(table: string, row: RegExp): number {
  const line = table.split('\n').find((l) => row.test(l));
  if (!line) throw new Error(`no bench row ${row}`);
  return Number(line.split('|')[4]!.trim().replace(/,/g, ''));
}

test("the proxy's default resources cover the bench's 1,000 sessions, and its memory limit the 5,000", async () => {
  const table = readFileSync(fileURLToPath(new URL('../../bench/results/latest.md', import.meta.url)), 'utf8');
  // The chart's proxy container runs the proxy pod process: the cluster rows measure that process alone.
  const rss1000 = benchFigure(table, /^\| cluster: 1,000 sessions.*: RSS at the end \(proxy pod process\) \|/);
  const cpu1000 = benchFigure(table, /^\| cluster: 1,000 sessions.*: CPU \(proxy pod process\) \|/) / 100;
  const rss5000 = benchFigure(table, /^\| cluster: 5,000 sessions.*: RSS at the end \(proxy pod process\) \|/);
  const proxy = statefulSetOf((await render(bin(), requiredValues)).objects).spec!.template.spec!.containers[0]!.resources!;
  assert.ok(
    quantity(proxy.requests?.memory, 'MiB') >= rss1000,
    `memory request ${proxy.requests?.memory} below the measured ${rss1000} MiB`,
  );
  assert.ok(quantity(proxy.requests?.cpu, 'cores') >= cpu1000, `cpu request ${proxy.requests?.cpu} below the measured ${cpu1000} cores`);
  assert.ok(quantity(proxy.limits?.memory, 'MiB') >= rss5000, `memory limit ${proxy.limits?.memory} below the measured ${rss5000} MiB`);
});

test('nameOverride and fullnameOverride name every object; the selector follows nameOverride', async () => {
  const named_ = (await render(bin(), { ...requiredValues, nameOverride: 'edge' })).objects;
  assert.is(statefulSetOf(named_).metadata?.name, 'cust-edge-proxy');
  assert.is(statefulSetOf(named_).spec?.selector.matchLabels?.['app.kubernetes.io/name'], 'edge');
  const full = (await render(bin(), { ...requiredValues, fullnameOverride: 'acme-edge' })).objects;
  const names = full.map((o) => o.metadata.name);
  assert.ok(
    names.every((n) => n.startsWith('acme-edge')),
    names.join(', '),
  );
  assert.is(containerEnv(deploymentOf(full, 'operator')).find((e) => e.name === 'CCCP_LEASE_NAME')?.value, 'acme-edge-operator');
});

test('extraEnv, priorityClassName, topologySpreadConstraints and probe timings reach each Deployment', async () => {
  const spread = [
    {
      maxSkew: 1,
      topologyKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'ScheduleAnyway',
      labelSelector: { matchLabels: { a: 'b' } },
    },
  ];
  const values = {
    ...requiredValues,
    operator: {
      extraEnv: [{ name: 'CCCP_COUNTER_FLUSHES_PER_S', value: '20' }],
      priorityClassName: 'ops',
      topologySpreadConstraints: spread,
      livenessProbe: { periodSeconds: 30 },
    },
    proxy: {
      extraEnv: [{ name: 'CCCP_MAX_UNREGISTERED', value: '5000' }],
      priorityClassName: 'system-cluster-critical',
      startupProbe: { failureThreshold: 60 },
    },
  };
  const { objects } = await render(bin(), values);
  const operator = deploymentOf(objects, 'operator');
  const proxy = statefulSetOf(objects);
  assert.is(containerEnv(operator).find((e) => e.name === 'CCCP_COUNTER_FLUSHES_PER_S')?.value, '20');
  assert.is(containerEnv(proxy).find((e) => e.name === 'CCCP_MAX_UNREGISTERED')?.value, '5000');
  assert.is(operator.spec?.template.spec?.priorityClassName, 'ops');
  assert.is(proxy.spec?.template.spec?.priorityClassName, 'system-cluster-critical');
  assert.equal(operator.spec?.template.spec?.topologySpreadConstraints, spread);
  const operatorContainer = operator.spec!.template.spec!.containers[0]!;
  assert.is(operatorContainer.livenessProbe?.periodSeconds, 30);
  assert.is(operatorContainer.livenessProbe?.failureThreshold, 3, 'unset timings keep their defaults');
  assert.is(operatorContainer.startupProbe?.httpGet?.path, '/healthz');
  assert.is(proxy.spec!.template.spec!.containers[0]!.startupProbe?.failureThreshold, 60);
});

test('an image digest pins both containers and wins over the tag; a malformed digest is refused', async () => {
  const digest = `sha256:${'ab'.repeat(32)}`;
  const { objects } = await render(bin(), {
    ...requiredValues,
    image: { repository: 'ghcr.io/tcxn/cccp-proxy-operator', tag: '9.9.9', digest },
  });
  for (const d of ofKind<V1Deployment>(objects, 'Deployment'))
    assert.is(d.spec?.template.spec?.containers[0]?.image, `ghcr.io/tcxn/cccp-proxy-operator@${digest}`);
  assert.match(await refused({ ...requiredValues, image: { repository: 'x', digest: 'latest' } }), "at '/image/digest'");
});

test('the Control API Service takes a type and annotations; an optional Ingress routes hosts to it', async () => {
  const { objects } = await render(bin(), {
    ...requiredValues,
    operator: {
      service: { type: 'LoadBalancer', annotations: { 'lb.example/internal': 'true' }, loadBalancerSourceRanges: ['198.51.100.0/24'] },
      ingress: {
        enabled: true,
        className: 'nginx',
        hosts: ['control.acme.example'],
        tls: [{ secretName: 'control-tls', hosts: ['control.acme.example'] }],
      },
    },
  });
  const service = named<V1Service>(objects, 'Service', 'cust-cccp-proxy-control');
  assert.is(service.spec?.type, 'LoadBalancer');
  assert.equal(service.spec?.loadBalancerSourceRanges, ['198.51.100.0/24']);
  assert.is(service.metadata?.annotations?.['lb.example/internal'], 'true');
  const ingress = named<V1Ingress>(objects, 'Ingress', 'cust-cccp-proxy-control');
  assert.is(ingress.spec?.ingressClassName, 'nginx');
  assert.is(ingress.spec?.rules?.[0]?.host, 'control.acme.example');
  assert.equal(ingress.spec?.rules?.[0]?.http?.paths[0]?.backend.service, { name: 'cust-cccp-proxy-control', port: { name: 'control' } });
  assert.match(
    await refused({ ...requiredValues, operator: { ingress: { enabled: true } } }),
    'operator.ingress.enabled needs operator.ingress.hosts',
  );
  assert.equal(ofKind((await render(bin(), requiredValues)).objects, 'Ingress'), [], 'no Ingress by default');
});

test('the Control API NetworkPolicy is off by default; enabled, it admits the listed peers and the helm test pod to the control port only', async () => {
  assert.not.ok(
    (await render(bin(), requiredValues)).objects.some((o) => o.kind === 'NetworkPolicy' && o.metadata.name.endsWith('-operator')),
  );
  const from = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'scada' } } }];
  const { objects } = await render(bin(), { ...requiredValues, networkPolicy: { controlApi: { enabled: true, from } } });
  const policy = named<{
    spec: {
      podSelector: { matchLabels: Record<string, string> };
      policyTypes: string[];
      ingress: Array<{ from: unknown[]; ports: unknown }>;
    };
  }>(objects, 'NetworkPolicy', 'cust-cccp-proxy-operator');
  assert.is(policy.spec.podSelector.matchLabels['app.kubernetes.io/component'], 'operator');
  assert.equal(policy.spec.policyTypes, ['Ingress']);
  assert.is(policy.spec.ingress.length, 1);
  assert.equal(policy.spec.ingress[0]!.ports, [{ protocol: 'TCP', port: 8080 }]);
  assert.equal(policy.spec.ingress[0]!.from[0], from[0]);
  const testPod = ofKind<V1Pod>(objects, 'Pod')[0]!;
  assert.equal(policy.spec.ingress[0]!.from[1], {
    podSelector: {
      matchLabels: {
        'app.kubernetes.io/name': 'cccp-proxy',
        'app.kubernetes.io/instance': 'cust',
        'app.kubernetes.io/component': 'test',
      },
    },
  });
  assert.is(testPod.metadata?.labels?.['app.kubernetes.io/component'], 'test', 'the helm test pod matches the policy');
});

test('helm test: a hook pod calls /readyz and /status through the Control Service, expecting 401 when tokens are set', async () => {
  for (const [values, expected] of [
    [requiredValues, 'false'],
    [{ ...requiredValues, controlTokens: ['control-token-0123456789'] }, 'true'],
  ] as const) {
    const pod = ofKind<V1Pod>((await render(bin(), values)).objects, 'Pod')[0]!;
    assert.is(pod.metadata?.annotations?.['helm.sh/hook'], 'test');
    const container = pod.spec!.containers[0]!;
    assert.is(container.env?.find((e) => e.name === 'CONTROL_URL')?.value, 'http://cust-cccp-proxy-control.cust.svc:8080');
    assert.is(container.env?.find((e) => e.name === 'TOKENS_REQUIRED')?.value, expected);
    assert.equal(container.args?.slice(0, 2), ['--input-type=module', '-e']);
    assert.is(container.securityContext?.readOnlyRootFilesystem, true);
    assert.is(pod.spec?.automountServiceAccountToken, false);
  }
});

/** Runs the helm test pod's container command with node, as the image would, against a real Control API. */
function runTestPod(pod: V1Pod, controlUrl: string): Promise<{ code: number | null; output: string }> {
  const container = pod.spec!.containers[0]!;
  const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, container.args ?? [], {
      env: { ...process.env, ...env, CONTROL_URL: controlUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

test("helm test's command passes against a real Control API, with and without tokens, and fails when the tokens setting disagrees", async () => {
  const open = await startStandalone({ rangeSize: 1 });
  const guarded = await startStandalone({ rangeSize: 1, env: { CCCP_CONTROL_TOKENS: 'control-token-0123456789' } });
  try {
    const openPod = ofKind<V1Pod>((await render(bin(), requiredValues)).objects, 'Pod')[0]!;
    const guardedPod = ofKind<V1Pod>(
      (await render(bin(), { ...requiredValues, controlTokens: ['control-token-0123456789'] })).objects,
      'Pod',
    )[0]!;
    const pass = await runTestPod(openPod, open.url);
    assert.is(pass.code, 0, pass.output);
    assert.match(pass.output, 'is ready and answers as expected');
    const passGuarded = await runTestPod(guardedPod, guarded.url);
    assert.is(passGuarded.code, 0, passGuarded.output);
    const wrong = await runTestPod(openPod, guarded.url);
    assert.is.not(wrong.code, 0, 'an open-API expectation against a guarded API fails');
    assert.match(wrong.output, '/status answered 401, expected 404');
  } finally {
    await open.stop();
    await guarded.stop();
  }
});

test('the uninstall cleanup Job is a pre-delete hook running release-cleanup as the operator ServiceAccount; it can be turned off', async () => {
  const { objects } = await render(bin(), { ...requiredValues, uninstallCleanup: { waitSeconds: 45 } });
  const job = named<V1Job>(objects, 'Job', 'cust-cccp-proxy-uninstall-cleanup');
  assert.is(job.metadata?.annotations?.['helm.sh/hook'], 'pre-delete');
  assert.match(job.metadata?.annotations?.['helm.sh/hook-delete-policy'] ?? '', 'hook-succeeded');
  const pod = job.spec!.template.spec!;
  assert.is(pod.serviceAccountName, 'cust-cccp-proxy-operator');
  assert.equal(pod.containers[0]!.args, ['dist/operator/release-cleanup.js']);
  assert.is(pod.containers[0]!.env?.find((e) => e.name === 'CCCP_CLEANUP_WAIT_S')?.value, '45');
  assert.ok((job.spec?.activeDeadlineSeconds ?? 0) > 45, 'the deadline leaves room for the wait');
  const off = (await render(bin(), { ...requiredValues, uninstallCleanup: { enabled: false } })).objects;
  assert.equal(ofKind(off, 'Job'), []);
});

test('Chart.yaml carries home, icon, sources and maintainers', () => {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  for (const key of ['home', 'icon', 'sources', 'maintainers']) assert.ok(chart[key], `Chart.yaml lacks ${key}`);
  assert.match(String(chart.icon), /^https:\/\/.*\.svg$/);
});

test('every ci/*-values.yaml file passes helm lint --strict and renders', async () => {
  const ciDir = join(chartDir, 'ci');
  const files = readdirSync(ciDir).filter((f) => f.endsWith('-values.yaml'));
  assert.ok(files.length >= 3, `ci/ holds ${files.join(', ')}`);
  for (const file of files) {
    const lint = await runHelm(bin(), ['lint', '--strict', chartDir, '-f', join(ciDir, file)]);
    assert.is(lint.code, 0, `${file}: ${lint.stdout}${lint.stderr}`);
    const rendered = await runHelm(bin(), ['template', 'ci', chartDir, '-f', join(ciDir, file)]);
    assert.is(rendered.code, 0, `${file}: ${rendered.stderr}`);
  }
});

/** Every leaf path of values.yaml (maps descend; lists and empty maps are leaves). */
function leafPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.keys(value).length === 0) return [prefix];
  const object = value as Record<string, unknown>;
  // requests/limits are documented as `resources`.
  if (prefix.endsWith('.resources') || /Probe$/.test(prefix)) return [prefix];
  return Object.entries(object).flatMap(([key, child]) => leafPaths(child, prefix ? `${prefix}.${key}` : key));
}

test('the chart README documents every value of values.yaml', () => {
  const readme = readFileSync(join(chartDir, 'README.md'), 'utf8');
  const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  const missing = [...leafPaths(values), 'publicHost'].filter((path) => !readme.includes(`\`${path}\``));
  assert.equal(missing, [], `not in helm/cccp-proxy/README.md: ${missing.join(', ')}`);
});

test.run();
