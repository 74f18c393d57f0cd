// The Helm chart rendered by the real `helm` (no cluster): lint, what each
// exposure mode renders, least privilege, the pod hardening, and the values
// the schema or the templates refuse, each with the message a user sees.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  V1Deployment,
  V1PodDisruptionBudget,
  V1Role,
  V1RoleBinding,
  V1Secret,
  V1Service,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { operatorConfigFromEnv } from '../../operator/config.ts';
import { proxyPodsFromEnv } from '../../operator/main.ts';
import { PROXY_SEMI_SPACE_FLAG } from '../../operator/proxy-process.ts';
import { proxyOptionsFromEnv } from '../../proxy-pod/config.ts';
import { suiteFixture } from '../helpers/fixture.ts';
import {
  chartCrdFile,
  chartDir,
  containerEnv,
  deploymentOf,
  isHook,
  kubeBinDir,
  named,
  ofKind,
  projectSecretVolume,
  render,
  requiredValues,
  resolveEnv,
  runHelm,
  secretValue,
  slicedRange,
  statefulSetOf,
  template,
  topLevelCrdFile,
  workloadOf,
} from '../helpers/helm.ts';

const test = suite('helm chart');

const hostNetworkValues = { ...requiredValues, exposure: { mode: 'hostNetwork', hostNetwork: { nodeName: 'edge-node-1' } } };

const bin = suiteFixture(test, kubeBinDir);

async function refused(values: object): Promise<string> {
  const result = await template(bin(), values);
  assert.is.not(result.code, 0, 'helm template should have failed');
  return result.stderr;
}

test('helm lint passes in each exposure mode', async () => {
  for (const values of [requiredValues, hostNetworkValues]) {
    const dir = mkdtempSync(join(tmpdir(), 'cccp-lint-'));
    const file = join(dir, 'values.json');
    writeFileSync(file, JSON.stringify(values));
    const lint = await runHelm(bin(), ['lint', '--strict', chartDir, '-f', file]);
    assert.is(lint.code, 0, lint.stdout + lint.stderr);
    assert.match(lint.stdout, '1 chart(s) linted, 0 chart(s) failed');
  }
});

test('the chart CRD is byte-identical to crds/proxysession.yaml', () => {
  assert.ok(readFileSync(chartCrdFile).equals(readFileSync(topLevelCrdFile)), 'copy crds/proxysession.yaml to helm/cccp-proxy/crds/');
});

test('the default values render the operator Deployment, the proxy StatefulSet, the Services, RBAC, NetworkPolicy, PDB, the admin token Secret and two hooks', async () => {
  const { objects } = await render(bin(), requiredValues);
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  assert.equal(kinds, [
    'Deployment/cust-cccp-proxy-operator',
    'Job/cust-cccp-proxy-uninstall-cleanup',
    'NetworkPolicy/cust-cccp-proxy-proxy',
    'Pod/cust-cccp-proxy-test-control-api',
    'PodDisruptionBudget/cust-cccp-proxy-operator',
    'PodDisruptionBudget/cust-cccp-proxy-proxy',
    'Role/cust-cccp-proxy-operator',
    'RoleBinding/cust-cccp-proxy-operator',
    'Secret/cust-cccp-proxy-admin-token',
    'Service/cust-cccp-proxy-control',
    'Service/cust-cccp-proxy-operator-metrics',
    'Service/cust-cccp-proxy-proxy',
    'Service/cust-cccp-proxy-proxy-0',
    'Service/cust-cccp-proxy-proxy-metrics',
    'Service/cust-cccp-proxy-proxy-pods',
    'ServiceAccount/cust-cccp-proxy-operator',
    'ServiceAccount/cust-cccp-proxy-proxy',
    'StatefulSet/cust-cccp-proxy-proxy',
  ]);
  for (const o of objects) assert.is(o.metadata.namespace, 'cust', `${o.kind} ${o.metadata.name} is namespaced to the release`);
  assert.equal(
    objects.filter(isHook).map((o) => [o.kind, o.metadata.annotations?.['helm.sh/hook']]),
    [
      ['Pod', 'test'],
      ['Job', 'pre-delete'],
    ],
  );
});

test("each PodDisruptionBudget selects its own workload's pods and no other, one pod unavailable at a time", async () => {
  const { objects } = await render(bin(), { ...requiredValues, proxy: { replicas: 3 }, ...slicedRange({ min: 20000, max: 20149 }, 3) });
  const podLabels = {
    operator: deploymentOf(objects, 'operator').spec?.template.metadata?.labels ?? {},
    proxy: statefulSetOf(objects).spec?.template.metadata?.labels ?? {},
  };
  const budgets = objects.filter((o) => o.kind === 'PodDisruptionBudget') as unknown as V1PodDisruptionBudget[];
  assert.equal(budgets.map((b) => b.metadata?.name).sort(), ['cust-cccp-proxy-operator', 'cust-cccp-proxy-proxy']);
  for (const budget of budgets) {
    const own = budget.metadata?.name === 'cust-cccp-proxy-proxy' ? 'proxy' : 'operator';
    const selects = (labels: Record<string, string>) =>
      Object.entries(budget.spec?.selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
    assert.ok(selects(podLabels[own]), `${budget.metadata?.name} selects the ${own} pods`);
    assert.not.ok(selects(podLabels[own === 'proxy' ? 'operator' : 'proxy']), `${budget.metadata?.name} selects only the ${own} pods`);
    assert.is(budget.spec?.maxUnavailable, 1);
  }
  const off = await render(bin(), { ...requiredValues, podDisruptionBudget: { enabled: false } });
  assert.is(off.objects.filter((o) => o.kind === 'PodDisruptionBudget').length, 0);
});

test('the operator runs 2 replicas with POD_NAME and POD_NAMESPACE from the downward API', async () => {
  const operator = deploymentOf((await render(bin(), requiredValues)).objects, 'operator');
  assert.is(operator.spec?.replicas, 2);
  const env = containerEnv(operator);
  assert.equal(env.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
  assert.equal(env.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
  assert.equal(operator.spec?.template.spec?.containers[0]?.args, ['dist/operator/main.js']);
});

test('the proxy is a StatefulSet of 1 pod by default, Parallel, named by the headless Service, with no API token', async () => {
  const { objects } = await render(bin(), requiredValues);
  const proxy = statefulSetOf(objects);
  assert.is(proxy.spec?.replicas, 1);
  assert.is(proxy.spec?.podManagementPolicy, 'Parallel');
  assert.is(proxy.spec?.serviceName, 'cust-cccp-proxy-proxy-pods');
  assert.is(proxy.spec?.template.spec?.automountServiceAccountToken, false);
  assert.equal(proxy.spec?.template.spec?.containers[0]?.args, [PROXY_SEMI_SPACE_FLAG, 'dist/proxy-pod/main.js']);
  const headless = named<V1Service>(objects, 'Service', 'cust-cccp-proxy-proxy-pods');
  assert.is(headless.spec?.clusterIP, 'None');
  assert.is(headless.spec?.publishNotReadyAddresses, true, 'a restarting pod keeps a name that resolves');
  assert.equal(headless.spec?.selector, proxy.spec?.selector.matchLabels);
  assert.equal(
    headless.spec?.ports?.map((p) => [p.name, p.port, p.targetPort]),
    [
      ['admin', 9001, 'admin'],
      ['peer', 9002, 'peer'],
    ],
  );
});

test('the env the chart gives each process is accepted by its own config parser', async () => {
  const values = { ...requiredValues, controlTokens: ['control-token-0123456789'], portRange: { min: 31000, max: 31049 } };
  const { objects } = await render(bin(), values);
  const dir = mkdtempSync(join(tmpdir(), 'cccp-env-'));
  const tokenFile = join(dir, 'token');
  // The operator fills the admin token Secret at run time (helm-cluster.test.ts); any token will do here.
  writeFileSync(tokenFile, 'admin-token-as-the-operator-wrote-it');
  const tokensDir = projectSecretVolume(join(dir, 'control-tokens'), {
    tokens: secretValue(named<V1Secret>(objects, 'Secret', 'cust-cccp-proxy-control-tokens'), 'tokens')!,
  });
  const pod = { name: 'cust-cccp-proxy-operator-abc', namespace: 'cust' };

  const chartOperatorEnv = resolveEnv(objects, deploymentOf(objects, 'operator'), pod);
  assert.is(chartOperatorEnv.CCCP_CONTROL_TOKENS_FILE, '/var/run/cccp/control-tokens/tokens');
  assert.is(chartOperatorEnv.CCCP_ADMIN_TOKEN_SECRET, 'cust-cccp-proxy-admin-token');
  const operatorEnv: NodeJS.ProcessEnv = { ...chartOperatorEnv, CCCP_CONTROL_TOKENS_FILE: join(tokensDir, 'tokens') };
  const operator = operatorConfigFromEnv(operatorEnv);
  assert.equal(operator.portRange, { min: 31000, max: 31049 });
  assert.is(operator.publicHost, 'proxy.customer.example');
  assert.equal(operator.controlTokens, ['control-token-0123456789']);
  assert.equal(proxyPodsFromEnv(operatorEnv), [
    {
      ordinal: 0,
      name: 'cust-cccp-proxy-proxy-0',
      host: 'cust-cccp-proxy-proxy-0.cust-cccp-proxy-proxy-pods.cust.svc',
      port: 9001,
      service: 'cust-cccp-proxy-proxy-0',
    },
  ]);
  assert.is(operatorEnv.POD_NAMESPACE, 'cust');
  assert.is(operatorEnv.POD_NAME, pod.name);
  assert.is(operatorEnv.CCCP_LEASE_NAME, 'cust-cccp-proxy-operator');

  const proxyPod = { name: 'cust-cccp-proxy-proxy-0', namespace: 'cust', labels: { 'apps.kubernetes.io/pod-index': '0' } };
  const proxyEnv = { ...resolveEnv(objects, statefulSetOf(objects), proxyPod), CCCP_ADMIN_TOKEN_FILE: tokenFile };
  const proxy = proxyOptionsFromEnv(proxyEnv);
  assert.is(proxy.devicePort, 9000);
  assert.is(proxy.healthPort, 9090);
  assert.equal(proxy.admin, { host: '0.0.0.0', port: 9001, token: readFileSync(tokenFile, 'utf8') });
});

/** The LoadBalancer Services by name: the device port's, and one per proxy pod. */
function loadBalancers(objects: Parameters<typeof ofKind>[0]): Map<string, V1Service> {
  return new Map(
    ofKind<V1Service>(objects, 'Service')
      .filter((s) => s.spec?.type === 'LoadBalancer')
      .map((s) => [s.metadata!.name!, s]),
  );
}

test('loadBalancer mode, 1 pod: the device port on one Service over all pods, the 50 session ports on the pod-0 Service, externalTrafficPolicy Local', async () => {
  const { objects } = await render(bin(), requiredValues);
  const lb = loadBalancers(objects);
  assert.equal([...lb.keys()], ['cust-cccp-proxy-proxy', 'cust-cccp-proxy-proxy-0']);
  const device = lb.get('cust-cccp-proxy-proxy')!;
  assert.equal(
    device.spec?.ports?.map((p) => [p.name, p.port, p.targetPort]),
    [['device', 9000, 'device']],
  );
  assert.equal(device.spec?.selector, statefulSetOf(objects).spec?.selector.matchLabels, 'every proxy pod');
  const pod0 = lb.get('cust-cccp-proxy-proxy-0')!;
  assert.equal(
    pod0.spec?.ports?.map((p) => p.port),
    Array.from({ length: 50 }, (_, i) => 20000 + i),
  );
  assert.is(pod0.spec?.selector?.['statefulset.kubernetes.io/pod-name'], 'cust-cccp-proxy-proxy-0');
  for (const service of lb.values()) {
    assert.is(service.spec?.externalTrafficPolicy, 'Local');
    assert.ok(service.spec!.ports!.every((p) => p.protocol === 'TCP' && (p.name?.length ?? 0) <= 15));
  }
  const others = ofKind<V1Service>(objects, 'Service')
    .filter((s) => s.spec?.type !== 'LoadBalancer')
    .map((s) => s.spec?.type);
  assert.equal(
    others,
    ['ClusterIP', 'ClusterIP', 'ClusterIP', 'ClusterIP'],
    'the Control API, the pods (admin, peer) and the metrics stay inside the cluster',
  );
});

test('proxy.replicas=3, loadBalancer: each pod its own Service with exactly its own slice, never more than portsPerPod; the operator and the proxies name the same pods', async () => {
  const values = {
    ...requiredValues,
    portRange: { min: 21000, max: 21089 },
    proxy: { replicas: 3 },
    exposure: {
      mode: 'loadBalancer',
      loadBalancer: { portsPerPod: 30, loadBalancerSourceRanges: ['192.0.2.0/24'], annotations: { a: 'b' } },
    },
  };
  const { objects } = await render(bin(), values);
  const set = statefulSetOf(objects);
  assert.is(set.spec?.replicas, 3);
  const lb = loadBalancers(objects);
  assert.equal([...lb.keys()], ['cust-cccp-proxy-proxy', 'cust-cccp-proxy-proxy-0', 'cust-cccp-proxy-proxy-1', 'cust-cccp-proxy-proxy-2']);
  const seen = new Set<number>();
  for (const ordinal of [0, 1, 2]) {
    const service = lb.get(`cust-cccp-proxy-proxy-${ordinal}`)!;
    const ports = service.spec!.ports!.map((p) => p.port);
    assert.ok(ports.length <= 30, `pod ${ordinal}: ${ports.length} ports`);
    assert.equal(
      ports,
      Array.from({ length: 30 }, (_, i) => 21000 + ordinal * 30 + i),
      `pod ${ordinal} carries its own slice`,
    );
    assert.equal(
      service.spec!.ports!.map((p) => p.targetPort),
      ports,
    );
    for (const port of ports) seen.add(port);
    assert.equal(service.spec?.selector, {
      ...set.spec?.selector.matchLabels,
      'statefulset.kubernetes.io/pod-name': `cust-cccp-proxy-proxy-${ordinal}`,
    });
  }
  assert.is(seen.size, 90, 'every port of the range on exactly one Service');
  for (const service of lb.values()) {
    assert.equal(service.spec?.loadBalancerSourceRanges, ['192.0.2.0/24']);
    assert.equal(service.metadata?.annotations, { a: 'b' });
  }
  const cluster = loadBalancers(
    (
      await render(bin(), {
        ...values,
        exposure: { mode: 'loadBalancer', loadBalancer: { portsPerPod: 30, externalTrafficPolicy: 'Cluster' } },
        proxy: { replicas: 3, proxyProtocol: { device: 'v2', sessions: 'v2' } },
      })
    ).objects,
  );
  assert.equal(
    [...cluster.values()].map((s) => s.spec?.externalTrafficPolicy),
    ['Cluster', 'Cluster', 'Cluster', 'Cluster'],
    'the traffic policy applies to every proxy Service',
  );
  const device = lb.get('cust-cccp-proxy-proxy')!;
  assert.equal(device.spec?.selector, set.spec?.selector.matchLabels, 'the device Service selects every proxy pod');
  assert.equal(
    device.spec?.ports?.map((p) => p.port),
    [9000],
  );

  const operatorEnv = resolveEnv(objects, deploymentOf(objects, 'operator'), { name: 'op', namespace: 'cust' });
  assert.is(operatorEnv.CCCP_PROXY_REPLICAS, '3');
  assert.is(operatorEnv.CCCP_PORT_SLICE_SIZE, '30');
  assert.is(operatorEnv.CCCP_PROXY_SERVICE_NAME, 'cust-cccp-proxy-proxy-{ordinal}');
  const pods = proxyPodsFromEnv(operatorEnv);
  assert.equal(
    pods.map((p) => [p.name, p.host, p.port]),
    [0, 1, 2].map((i) => [`cust-cccp-proxy-proxy-${i}`, `cust-cccp-proxy-proxy-${i}.cust-cccp-proxy-proxy-pods.cust.svc`, 9001]),
  );
  for (const pod of pods) assert.ok(lb.has(operatorEnv.CCCP_PROXY_SERVICE_NAME!.replace('{ordinal}', String(pod.ordinal))));

  const proxyEnv = resolveEnv(objects, set, {
    name: 'cust-cccp-proxy-proxy-2',
    namespace: 'cust',
    labels: { 'apps.kubernetes.io/pod-index': '2' },
  });
  assert.is(proxyEnv.CCCP_POD_ORDINAL, '2');
  assert.is(proxyEnv.CCCP_PROXY_REPLICAS, undefined, 'the operator tells each pod the count (PUT /v1/peers)');
  assert.is(proxyEnv.CCCP_PEER_PORT, '9002');
  assert.is(proxyEnv.CCCP_PEER_ADDRESS, 'cust-cccp-proxy-proxy-{ordinal}.cust-cccp-proxy-proxy-pods.cust.svc:9002');
  assert.is(proxyEnv.CCCP_PUBLIC_HOST, undefined, 'in loadBalancer mode the host comes from the pod Service');
  const ordinalEnv = containerEnv(set).find((e) => e.name === 'CCCP_POD_ORDINAL');
  assert.is(ordinalEnv?.valueFrom?.fieldRef?.fieldPath, "metadata.labels['apps.kubernetes.io/pod-index']");
  assert.is(set.spec?.template.spec?.containers[0]?.ports?.find((p) => p.name === 'peer')?.containerPort, 9002);
});

/** The StatefulSet's document as helm wrote it, comments included, from its pod template on. */
function podTemplateText(yaml: string): string {
  const document = yaml.split(/^---$/m).find((doc) => /^kind: StatefulSet$/m.test(doc));
  const start = document?.indexOf('\n  template:\n') ?? -1;
  if (!document || start === -1) throw new Error('no StatefulSet pod template rendered');
  return document.slice(start);
}

test('proxy.replicas 2 → 3 changes only spec.replicas of the StatefulSet: the pod template is byte-identical, so scaling up restarts no pod', async () => {
  const hostNetwork = (replicas: number) => ({
    ...requiredValues,
    proxy: { replicas },
    exposure: { mode: 'hostNetwork', hostNetwork: { nodeSelector: { 'cccp.example/edge': 'true' } } },
  });
  const cases: Array<[string, object, object]> = [
    [
      'loadBalancer',
      { ...requiredValues, ...slicedRange({ min: 20000, max: 20099 }, 2) },
      { ...requiredValues, ...slicedRange({ min: 20000, max: 20149 }, 3) },
    ],
    ['hostNetwork', hostNetwork(2), hostNetwork(3)],
  ];
  for (const [mode, two, three] of cases) {
    const [before, after] = await Promise.all([render(bin(), two), render(bin(), three)]);
    assert.is(podTemplateText(after.yaml), podTemplateText(before.yaml), `${mode}: the rendered pod template`);
    const [setBefore, setAfter] = [statefulSetOf(before.objects), statefulSetOf(after.objects)];
    assert.equal([setBefore.spec?.replicas, setAfter.spec?.replicas], [2, 3]);
    assert.equal({ ...setAfter.spec, replicas: 2 }, setBefore.spec, `${mode}: the rest of the StatefulSet spec`);
  }
});

test('hostNetwork mode: one pod per node (required anti-affinity on the hostname), each reporting its node address, no LoadBalancer Service', async () => {
  const byName = await render(bin(), hostNetworkValues);
  const spec = statefulSetOf(byName.objects).spec!.template.spec!;
  assert.is(spec.hostNetwork, true);
  assert.is(spec.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.is(spec.nodeName, 'edge-node-1');
  assert.not.ok(ofKind<V1Service>(byName.objects, 'Service').some((s) => s.spec?.type === 'LoadBalancer'));

  const nodeAffinity = {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }],
    },
  };
  const bySelector = await render(bin(), {
    ...requiredValues,
    portRange: { min: 40000, max: 40999 },
    proxy: { replicas: 3, affinity: { nodeAffinity } },
    exposure: { mode: 'hostNetwork', hostNetwork: { nodeSelector: { 'cccp.tcxn.net/edge': 'true' } } },
  });
  const set = statefulSetOf(bySelector.objects);
  const selected = set.spec!.template.spec!;
  assert.is(set.spec?.replicas, 3);
  assert.equal(selected.nodeSelector, { 'cccp.tcxn.net/edge': 'true' });
  assert.is(selected.nodeName, undefined);
  assert.equal(selected.affinity?.nodeAffinity, nodeAffinity, "the user's affinity is kept");
  assert.equal(selected.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution, [
    { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: set.spec?.selector.matchLabels } },
  ]);
  const env = containerEnv(set);
  assert.is(env.find((e) => e.name === 'CCCP_PUBLIC_HOST')?.valueFrom?.fieldRef?.fieldPath, 'status.hostIP');
  const operatorEnv = resolveEnv(bySelector.objects, deploymentOf(bySelector.objects, 'operator'), { name: 'op', namespace: 'cust' });
  assert.is(operatorEnv.CCCP_PORT_SLICE_SIZE, '0', 'every pod has the whole range');
  assert.is(operatorEnv.CCCP_PORT_RANGE, '40000-40999');
  assert.is(operatorEnv.CCCP_PROXY_SERVICE_NAME, undefined);

  const fixed = await render(bin(), {
    ...requiredValues,
    exposure: { mode: 'hostNetwork', hostNetwork: { nodeName: 'edge-node-1', publicHost: 'edge.customer.example' } },
  });
  assert.is(containerEnv(statefulSetOf(fixed.objects)).find((e) => e.name === 'CCCP_PUBLIC_HOST')?.value, 'edge.customer.example');
});

test('every container runs non-root, read-only, without privilege escalation or capabilities, with RuntimeDefault seccomp', async () => {
  for (const values of [requiredValues, hostNetworkValues]) {
    const { objects } = await render(bin(), values);
    for (const deployment of [...ofKind<V1Deployment>(objects, 'Deployment'), ...ofKind<V1StatefulSet>(objects, 'StatefulSet')]) {
      const pod = deployment.spec!.template.spec!;
      assert.is(pod.securityContext?.runAsNonRoot, true);
      assert.is(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
      for (const container of pod.containers) {
        const sc = container.securityContext!;
        assert.is(sc.runAsNonRoot, true, container.name);
        assert.is(sc.readOnlyRootFilesystem, true, container.name);
        assert.is(sc.allowPrivilegeEscalation, false, container.name);
        assert.equal(sc.capabilities?.drop, ['ALL'], container.name);
        assert.is(sc.capabilities?.add, undefined, container.name);
        assert.is(sc.seccompProfile?.type, 'RuntimeDefault', container.name);
        assert.ok(
          container.resources?.requests?.memory && container.resources.limits?.memory,
          `${container.name} has memory requests and limits`,
        );
      }
    }
  }
});

test('probes: the operator on /healthz and /readyz of the control port, the proxy on its health port', async () => {
  const { objects } = await render(bin(), requiredValues);
  const operator = deploymentOf(objects, 'operator').spec!.template.spec!.containers[0]!;
  assert.equal([operator.livenessProbe?.httpGet?.path, operator.livenessProbe?.httpGet?.port], ['/healthz', 'control']);
  assert.equal([operator.readinessProbe?.httpGet?.path, operator.readinessProbe?.httpGet?.port], ['/readyz', 'control']);
  assert.is(operator.ports?.find((p) => p.name === 'control')?.containerPort, 8080);
  const proxy = statefulSetOf(objects).spec!.template.spec!.containers[0]!;
  assert.equal([proxy.livenessProbe?.httpGet?.path, proxy.livenessProbe?.httpGet?.port], ['/healthz', 'health']);
  assert.equal([proxy.readinessProbe?.httpGet?.path, proxy.readinessProbe?.httpGet?.port], ['/readyz', 'health']);
  assert.is(proxy.ports?.find((p) => p.name === 'health')?.containerPort, 9090);
});

test('the Role grants exactly the calls the operator makes: namespaced, only its admin token Secret by name, no wildcards', async () => {
  const { objects } = await render(bin(), requiredValues);
  assert.equal(ofKind(objects, 'ClusterRole'), []);
  assert.equal(ofKind(objects, 'ClusterRoleBinding'), []);
  const role = named<V1Role>(objects, 'Role', 'cust-cccp-proxy-operator');
  const rules = role.rules!.map((r) => ({ groups: r.apiGroups, resources: r.resources, names: r.resourceNames, verbs: r.verbs }));
  assert.equal(rules, [
    {
      groups: ['cccp.tcxn.net'],
      resources: ['proxysessions'],
      names: undefined,
      verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    },
    { groups: ['cccp.tcxn.net'], resources: ['proxysessions/status'], names: undefined, verbs: ['patch'] },
    { groups: ['coordination.k8s.io'], resources: ['leases'], names: undefined, verbs: ['create'] },
    { groups: ['coordination.k8s.io'], resources: ['leases'], names: ['cust-cccp-proxy-operator'], verbs: ['get', 'update'] },
    { groups: [''], resources: ['services'], names: ['cust-cccp-proxy-proxy-0'], verbs: ['get'] },
    { groups: [''], resources: ['events'], names: undefined, verbs: ['create'] },
    { groups: [''], resources: ['secrets'], names: ['cust-cccp-proxy-admin-token'], verbs: ['get', 'patch'] },
  ]);
  const threePods = named<V1Role>(
    (await render(bin(), { ...requiredValues, proxy: { replicas: 3 }, portRange: { min: 20000, max: 20149 } })).objects,
    'Role',
    'cust-cccp-proxy-operator',
  );
  assert.equal(
    threePods.rules!.find((r) => r.resources?.includes('services'))?.resourceNames,
    ['cust-cccp-proxy-proxy-0', 'cust-cccp-proxy-proxy-1', 'cust-cccp-proxy-proxy-2'],
    'more proxy pods: get on each pod’s own Service, nothing more',
  );
  assert.equal(
    threePods.rules!.filter((r) => !r.resources?.includes('services')),
    role.rules!.filter((r) => !r.resources?.includes('services')),
  );
  const own = named<V1Role>(
    (await render(bin(), { ...requiredValues, adminToken: { existingSecret: 'mine' } })).objects,
    'Role',
    'cust-cccp-proxy-operator',
  );
  assert.not.ok(
    own.rules!.some((r) => r.resources?.includes('secrets')),
    'with an existing admin Secret, no Secrets rule at all',
  );
  const binding = named<V1RoleBinding>(objects, 'RoleBinding', 'cust-cccp-proxy-operator');
  assert.equal(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cust-cccp-proxy-operator' });
  assert.equal(binding.subjects, [{ kind: 'ServiceAccount', name: 'cust-cccp-proxy-operator', namespace: 'cust' }]);
  assert.is(deploymentOf(objects, 'operator').spec?.template.spec?.serviceAccountName, 'cust-cccp-proxy-operator');
});

test('the NetworkPolicy admits only operator pods to the admin port, only proxy pods to the peer port, and leaves the other proxy ports open', async () => {
  const { objects } = await render(bin(), requiredValues);
  // Typed here: the client's model names `from` as `_from`.
  const policy = named<{
    spec: {
      podSelector: { matchLabels: Record<string, string> };
      policyTypes: string[];
      ingress: Array<{ from?: unknown; ports: unknown }>;
    };
  }>(objects, 'NetworkPolicy', 'cust-cccp-proxy-proxy');
  assert.equal(policy.spec.podSelector.matchLabels['app.kubernetes.io/component'], 'proxy');
  assert.equal(policy.spec.policyTypes, ['Ingress']);
  const [adminRule, peerRule, openRule] = policy.spec.ingress;
  assert.equal(adminRule!.ports, [{ protocol: 'TCP', port: 9001 }]);
  assert.equal(adminRule!.from, [
    {
      podSelector: {
        matchLabels: {
          'app.kubernetes.io/name': 'cccp-proxy',
          'app.kubernetes.io/instance': 'cust',
          'app.kubernetes.io/component': 'operator',
        },
      },
    },
  ]);
  assert.equal(peerRule!.ports, [{ protocol: 'TCP', port: 9002 }]);
  assert.equal(peerRule!.from, [
    {
      podSelector: {
        matchLabels: {
          'app.kubernetes.io/name': 'cccp-proxy',
          'app.kubernetes.io/instance': 'cust',
          'app.kubernetes.io/component': 'proxy',
        },
      },
    },
  ]);
  assert.is(openRule!.from, undefined, 'from anywhere');
  assert.equal(openRule!.ports, [
    { protocol: 'TCP', port: 9000 },
    { protocol: 'TCP', port: 20000, endPort: 20049 },
    { protocol: 'TCP', port: 9090 },
  ]);
});

test('the admin token Secret is rendered empty for the operator to fill, mounted as a file in the proxy; an existing Secret replaces it', async () => {
  const generated = (await render(bin(), requiredValues)).objects;
  const secret = named<V1Secret>(generated, 'Secret', 'cust-cccp-proxy-admin-token');
  assert.is(secret.data, undefined, 'no random value in the render');
  assert.is(secret.stringData, undefined);
  const proxy = statefulSetOf(generated);
  assert.is(proxy.spec!.template.spec!.volumes?.find((v) => v.name === 'admin-token')?.secret?.secretName, 'cust-cccp-proxy-admin-token');
  assert.is(containerEnv(proxy).find((e) => e.name === 'CCCP_ADMIN_TOKEN_FILE')?.value, '/var/run/cccp/admin-token/token');
  const operator = deploymentOf(generated, 'operator');
  assert.is(containerEnv(operator).find((e) => e.name === 'CCCP_ADMIN_TOKEN_SECRET')?.value, 'cust-cccp-proxy-admin-token');
  assert.is(
    operator.spec!.template.spec!.volumes?.find((v) => v.name === 'admin-token'),
    undefined,
    'the operator reads it through the API, it would wait for its own write',
  );
  for (const component of ['operator', 'proxy'] as const) {
    assert.not.ok(
      containerEnv(workloadOf(generated, component)).some((e) => e.name === 'CCCP_ADMIN_TOKEN'),
      'never a plain env value',
    );
  }

  const own = (await render(bin(), { ...requiredValues, adminToken: { existingSecret: 'my-admin-token' } })).objects;
  assert.equal(ofKind(own, 'Secret'), []);
  for (const component of ['operator', 'proxy'] as const) {
    assert.is(
      workloadOf(own, component).spec!.template.spec!.volumes?.find((v) => v.name === 'admin-token')?.secret?.secretName,
      'my-admin-token',
    );
  }
});

test('control tokens go into a Secret mounted as a directory (no subPath, so the kubelet updates it) for CCCP_CONTROL_TOKENS_FILE; none means no authentication', async () => {
  const none = (await render(bin(), requiredValues)).objects;
  assert.not.ok(containerEnv(deploymentOf(none, 'operator')).some((e) => e.name.startsWith('CCCP_CONTROL_TOKENS')));

  const withTokens = (await render(bin(), { ...requiredValues, controlTokens: ['first-token-0123456789', 'second-token-0123456789'] }))
    .objects;
  const secret = named<V1Secret>(withTokens, 'Secret', 'cust-cccp-proxy-control-tokens');
  assert.is(secretValue(secret, 'tokens'), 'first-token-0123456789,second-token-0123456789');
  const operator = deploymentOf(withTokens, 'operator');
  const env = containerEnv(operator);
  assert.is(env.find((e) => e.name === 'CCCP_CONTROL_TOKENS_FILE')?.value, '/var/run/cccp/control-tokens/tokens');
  assert.not.ok(
    env.some((e) => e.name === 'CCCP_CONTROL_TOKENS'),
    'not an env value: that is read once, at start',
  );
  const volume = operator.spec!.template.spec!.volumes!.find((v) => v.name === 'control-tokens');
  assert.is(volume?.secret?.secretName, 'cust-cccp-proxy-control-tokens');
  const mount = operator.spec!.template.spec!.containers[0]!.volumeMounts!.find((m) => m.name === 'control-tokens');
  assert.equal([mount?.mountPath, mount?.subPath], ['/var/run/cccp/control-tokens', undefined]);

  const existing = (await render(bin(), { ...requiredValues, existingControlTokensSecret: 'my-tokens' })).objects;
  assert.not.ok(ofKind<V1Secret>(existing, 'Secret').some((s) => s.metadata?.name?.endsWith('control-tokens')));
  assert.is(
    deploymentOf(existing, 'operator').spec!.template.spec!.volumes!.find((v) => v.name === 'control-tokens')?.secret?.secretName,
    'my-tokens',
  );
});

test('every object carries the app.kubernetes.io labels; pods carry their component', async () => {
  const { objects } = await render(bin(), requiredValues);
  for (const o of objects) {
    const labels = o.metadata.labels ?? {};
    for (const key of [
      'app.kubernetes.io/name',
      'app.kubernetes.io/instance',
      'app.kubernetes.io/version',
      'app.kubernetes.io/managed-by',
      'helm.sh/chart',
    ]) {
      assert.ok(labels[key], `${o.kind} ${o.metadata.name} lacks ${key}`);
    }
  }
  for (const component of ['operator', 'proxy'] as const) {
    assert.is(workloadOf(objects, component).spec!.template.metadata!.labels!['app.kubernetes.io/component'], component);
  }
});

test('publicHost is required: without it the schema refuses the values, naming it', async () => {
  assert.match(await refused({}), "missing property 'publicHost'");
});

test('a publicHost with a scheme, a path or a space is refused, saying how to write it', async () => {
  for (const host of ['https://proxy.example', 'proxy example', 'proxy.example/x', '-proxy']) {
    assert.match(
      await refused({ publicHost: host }),
      `publicHost ${JSON.stringify(host)} is not a host name or IP address: write it without scheme, port or path`,
    );
  }
});

test('a reversed port range is refused', async () => {
  const message = await refused({ ...requiredValues, portRange: { min: 20099, max: 20000 } });
  assert.match(message, 'portRange is reversed: min 20099 is above max 20000');
});

test('loadBalancer mode refuses a range that is not exactly replicas x portsPerPod, saying which max fits; hostNetwork mode carries any range', async () => {
  assert.match(
    await refused({ ...requiredValues, portRange: { min: 20000, max: 20099 } }),
    'portRange 20000-20099 holds 100 ports, but exposure.mode=loadBalancer cuts it into one slice of exposure.loadBalancer.portsPerPod=50 ports per proxy pod (proxy.replicas=1)',
  );
  const message = await refused({ ...requiredValues, proxy: { replicas: 3 }, portRange: { min: 20000, max: 20139 } });
  assert.match(message, 'the range must hold exactly 3 x 50 = 150 ports (portRange.max 20149), or change proxy.replicas or portsPerPod');
  assert.match(
    await refused({ ...requiredValues, proxy: { replicas: 2 }, portRange: { min: 20000, max: 20100 } }),
    'portRange 20000-20100 holds 101 ports',
  );
  await render(bin(), { ...requiredValues, proxy: { replicas: 3 }, portRange: { min: 20000, max: 20149 } });
  await render(bin(), {
    ...requiredValues,
    exposure: { mode: 'loadBalancer', loadBalancer: { portsPerPod: 100 } },
    portRange: { min: 20000, max: 20099 },
  });
  const { objects } = await render(bin(), { ...hostNetworkValues, portRange: { min: 20000, max: 29999 } });
  assert.match(containerEnv(deploymentOf(objects, 'operator')).find((e) => e.name === 'CCCP_PORT_RANGE')?.value ?? '', /^20000-29999$/);
});

test('the schema refuses a slice above 100 or below 1 ports and fewer than 1 proxy pod, naming the value', async () => {
  const slice = (portsPerPod: number) => ({ ...requiredValues, exposure: { mode: 'loadBalancer', loadBalancer: { portsPerPod } } });
  assert.match(await refused(slice(101)), "at '/exposure/loadBalancer/portsPerPod': maximum: got 101, want 100");
  assert.match(await refused(slice(0)), "at '/exposure/loadBalancer/portsPerPod': minimum: got 0, want 1");
  assert.match(await refused({ ...requiredValues, proxy: { replicas: 0 } }), "at '/proxy/replicas': minimum: got 0, want 1");
  assert.match(await refused({ ...requiredValues, proxy: { replicas: 1.5 } }), "at '/proxy/replicas': got number, want integer");
});

test('hostNetwork mode refuses nodeName or one publicHost for several pods, saying what to use instead', async () => {
  assert.match(
    await refused({ ...hostNetworkValues, proxy: { replicas: 2 } }),
    'exposure.hostNetwork.nodeName pins every proxy pod to node edge-node-1, but proxy.replicas=2 needs one node per pod (they hold the same ports): choose the nodes with exposure.hostNetwork.nodeSelector instead',
  );
  assert.match(
    await refused({
      ...requiredValues,
      proxy: { replicas: 2 },
      exposure: { mode: 'hostNetwork', hostNetwork: { nodeSelector: { edge: 'true' }, publicHost: 'edge.example' } },
    }),
    'exposure.hostNetwork.publicHost "edge.example" would be every proxy pod\'s host, but with proxy.replicas=2 each pod runs on its own node: leave it empty',
  );
});

test('a port outside 1..65535 is refused by the schema, naming the value', async () => {
  assert.match(await refused({ ...requiredValues, devicePort: 0 }), "at '/devicePort': minimum: got 0, want 1");
  assert.match(await refused({ ...requiredValues, devicePort: 65536 }), "at '/devicePort': maximum: got 65,536, want 65,535");
  assert.match(
    await refused({ ...requiredValues, portRange: { min: 65000, max: 70000 } }),
    "at '/portRange/max': maximum: got 70,000, want 65,535",
  );
  assert.match(await refused({ ...requiredValues, operator: { controlPort: -1 } }), "at '/operator/controlPort': minimum");
});

test('the device port inside the port range is refused', async () => {
  assert.match(await refused({ ...requiredValues, devicePort: 20040 }), 'devicePort 20040 lies inside portRange 20000-20049');
});

test('the control, admin or health port inside the range, or proxy ports that collide, are refused', async () => {
  assert.match(
    await refused({ ...requiredValues, operator: { controlPort: 20000 } }),
    'operator.controlPort 20000 lies inside portRange 20000-20049',
  );
  assert.match(
    await refused({ ...requiredValues, proxy: { adminPort: 20049 } }),
    'proxy.adminPort 20049 lies inside portRange 20000-20049',
  );
  assert.match(
    await refused({ ...requiredValues, proxy: { healthPort: 9000 } }),
    'devicePort (9000), proxy.adminPort (9001), proxy.healthPort (9000) and proxy.peerPort (9002) must differ',
  );
  assert.match(
    await refused({ ...requiredValues, proxy: { peerPort: 9001 } }),
    'devicePort (9000), proxy.adminPort (9001), proxy.healthPort (9090) and proxy.peerPort (9001) must differ',
  );
  assert.match(await refused({ ...requiredValues, proxy: { peerPort: 20010 } }), 'proxy.peerPort 20010 lies inside portRange 20000-20049');
});

test('hostNetwork mode without a node is refused, naming nodeName and nodeSelector', async () => {
  const message = await refused({ ...requiredValues, exposure: { mode: 'hostNetwork' } });
  assert.match(message, "at '/exposure/hostNetwork/nodeName': minLength: got 0, want 1");
  assert.match(message, "at '/exposure/hostNetwork/nodeSelector': minProperties: got 0, want 1");
});

test('an unknown exposure mode or a misspelt value is refused', async () => {
  assert.match(
    await refused({ ...requiredValues, exposure: { mode: 'nodePort' } }),
    "at '/exposure/mode': value must be one of 'loadBalancer', 'hostNetwork'",
  );
  assert.match(await refused({ ...requiredValues, portrange: { min: 1, max: 2 } }), "additional properties 'portrange' not allowed");
});

test('control tokens that are short or contain a comma or space are refused', async () => {
  assert.match(await refused({ ...requiredValues, controlTokens: ['short'] }), "at '/controlTokens/0': minLength");
  assert.match(
    await refused({ ...requiredValues, controlTokens: ['has,a-comma-0123456789'] }),
    'controlTokens[0] contains a comma, which separates tokens',
  );
  assert.match(
    await refused({ ...requiredValues, controlTokens: ['ok-token-0123456789', 'has a space 0123456789'] }),
    'controlTokens[1] contains a space or a character outside printable ASCII',
  );
});

test("sessionDefaults become the operator's default lifetime limits; 0 means none; beyond 7 days is refused", async () => {
  const pod = { name: 'cust-cccp-proxy-operator-abc', namespace: 'cust' };
  const envOf = async (values: object): Promise<NodeJS.ProcessEnv> => {
    const { objects } = await render(bin(), values);
    return { ...resolveEnv(objects, deploymentOf(objects, 'operator'), pod), CCCP_ADMIN_TOKEN_FILE: '/dev/null' };
  };
  assert.equal(operatorConfigFromEnv(await envOf(requiredValues)).limitDefaults, {});
  const set = await envOf({ ...requiredValues, sessionDefaults: { maxLifetimeSeconds: 43_200, idleTimeoutSeconds: 3_600 } });
  assert.is(set.CCCP_DEFAULT_MAX_LIFETIME_S, '43200');
  assert.equal(operatorConfigFromEnv(set).limitDefaults, { maxLifetimeSeconds: 43_200, idleTimeoutSeconds: 3_600 });
  assert.match(
    await refused({ ...requiredValues, sessionDefaults: { maxLifetimeSeconds: 604_801 } }),
    "at '/sessionDefaults/maxLifetimeSeconds'",
  );
});

test.run();
