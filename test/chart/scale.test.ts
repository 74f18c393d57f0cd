// Several proxy pods, as the chart installs them on the rig's real
// kube-apiserver with the real helm: proxy.replicas=3 in each exposure mode,
// scaling up (live slices stay where they are), the refused scale-down and
// range shrink (found by lookup), and the upgrade from the chart that ran the
// proxy as a Deployment. The rig has no controllers: what is checked is what
// the API server stores and refuses.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mustKubectl } from '../helpers/cluster.ts';
import { suiteFixture } from '../helpers/fixture.ts';
import { chartDir, type HelmResult, kubeBinDir, requiredValues, runHelm, slicedRange, valuesFile } from '../helpers/helm.ts';
import { startRig } from '../kube/rig.ts';

const test = suite('helm chart, several proxy pods, in a cluster');
// The last chart with the proxy as a Deployment (before proxy.replicas).
const DEPLOYMENT_CHART_COMMIT = 'f946504';

const theRig = suiteFixture(
  test,
  async () => {
    await kubeBinDir();
    return startRig();
  },
  (rig) => rig.stop(),
);

function helm(args: string[], chart = chartDir): Promise<HelmResult> {
  const r = theRig();
  return runHelm(
    r.binDir,
    args.map((a) => (a === '@chart' ? chart : a)),
    r.kubeconfig,
  );
}

async function mustHelm(args: string[], chart = chartDir): Promise<string> {
  const result = await helm(args, chart);
  assert.is(result.code, 0, `helm ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

async function getJson<T>(kind: string, name: string, namespace: string): Promise<T> {
  return JSON.parse((await mustKubectl(theRig(), ['get', kind, name, '-n', namespace, '-o', 'json'])).stdout) as T;
}

async function names(namespace: string, kinds: string): Promise<string[]> {
  const { stdout } = await mustKubectl(theRig(), ['get', kinds, '-n', namespace, '-o', 'name']);
  return stdout.trim().split('\n').filter(Boolean).sort();
}

async function servicePorts(namespace: string, name: string): Promise<number[]> {
  return ((await getJson<V1Service>('service', name, namespace)).spec?.ports ?? []).map((p) => p.port);
}

const range = (min: number, count: number) => Array.from({ length: count }, (_, i) => min + i);

test('proxy.replicas=3 in loadBalancer mode installs: the StatefulSet, the headless Service, one Service per pod with its own slice, the device Service', async () => {
  const values = valuesFile({ ...requiredValues, ...slicedRange({ min: 20000, max: 20149 }, 3) });
  await mustHelm(['install', 'three', '@chart', '-n', 'three', '--create-namespace', '-f', values]);
  const set = await getJson<V1StatefulSet>('statefulset', 'three-cccp-proxy-proxy', 'three');
  assert.is(set.spec?.replicas, 3);
  assert.is(set.spec?.serviceName, 'three-cccp-proxy-proxy-pods');
  assert.is(set.spec?.podManagementPolicy, 'Parallel');
  assert.equal(
    (await names('three', 'svc')).filter((n) => n.startsWith('service/three-cccp-proxy-proxy')),
    [
      'service/three-cccp-proxy-proxy',
      'service/three-cccp-proxy-proxy-0',
      'service/three-cccp-proxy-proxy-1',
      'service/three-cccp-proxy-proxy-2',
      'service/three-cccp-proxy-proxy-metrics',
      'service/three-cccp-proxy-proxy-pods',
    ],
  );
  for (const ordinal of [0, 1, 2]) {
    const service = await getJson<V1Service>('service', `three-cccp-proxy-proxy-${ordinal}`, 'three');
    assert.is(service.spec?.type, 'LoadBalancer');
    assert.equal(
      service.spec?.ports?.map((p) => p.port),
      range(20000 + ordinal * 50, 50),
    );
    assert.is(service.spec?.selector?.['statefulset.kubernetes.io/pod-name'], `three-cccp-proxy-proxy-${ordinal}`);
    assert.is(service.spec?.ports?.filter((p) => p.nodePort).length, 50, 'the API server allocated a NodePort per listed port');
  }
  assert.equal(await servicePorts('three', 'three-cccp-proxy-proxy'), [9000]);
  const headless = await getJson<V1Service>('service', 'three-cccp-proxy-proxy-pods', 'three');
  assert.is(headless.spec?.clusterIP, 'None');
  assert.is(headless.spec?.publishNotReadyAddresses, true);
});

test('scaling up adds pods and Services and leaves the pod template and the live slices as they were; scaling down is refused unless allowScaleDown', async () => {
  const before = await servicePorts('three', 'three-cccp-proxy-proxy-0');
  const templateBefore = (await getJson<V1StatefulSet>('statefulset', 'three-cccp-proxy-proxy', 'three')).spec?.template;
  const up = valuesFile({ ...requiredValues, ...slicedRange({ min: 20000, max: 20199 }, 4) });
  await mustHelm(['upgrade', 'three', '@chart', '-n', 'three', '-f', up]);
  const scaled = await getJson<V1StatefulSet>('statefulset', 'three-cccp-proxy-proxy', 'three');
  assert.is(scaled.spec?.replicas, 4);
  // A changed template would make the StatefulSet controller restart every pod, ending every live connection.
  assert.equal(scaled.spec?.template, templateBefore, 'the stored pod template is unchanged: no pod restarts');
  assert.equal(await servicePorts('three', 'three-cccp-proxy-proxy-0'), before, 'pod 0 keeps its ports');
  assert.equal(await servicePorts('three', 'three-cccp-proxy-proxy-3'), range(20150, 50));

  const down = valuesFile({ ...requiredValues, ...slicedRange({ min: 20000, max: 20099 }, 2) });
  const refused = await helm(['upgrade', 'three', '@chart', '-n', 'three', '-f', down]);
  assert.is.not(refused.code, 0, 'scaling down was not refused');
  assert.match(
    refused.stderr,
    'proxy.replicas=2 is below the 4 proxy pods of StatefulSet three-cccp-proxy-proxy: the sessions of pods 2 to 3 would end (reason ProxyLost). Set proxy.allowScaleDown=true to scale down anyway',
  );
  assert.is((await getJson<V1StatefulSet>('statefulset', 'three-cccp-proxy-proxy', 'three')).spec?.replicas, 4, 'nothing changed');

  await mustHelm(['upgrade', 'three', '@chart', '-n', 'three', '-f', down, '--set', 'proxy.allowScaleDown=true']);
  assert.is((await getJson<V1StatefulSet>('statefulset', 'three-cccp-proxy-proxy', 'three')).spec?.replicas, 2);
  assert.equal(
    (await names('three', 'svc')).filter((n) => /proxy-proxy-\d$/.test(n)),
    ['service/three-cccp-proxy-proxy-0', 'service/three-cccp-proxy-proxy-1'],
    'the removed pods’ Services are gone',
  );
});

test('proxy.replicas=3 in hostNetwork mode installs: one pod per node by required anti-affinity, no LoadBalancer Service', async () => {
  const values = valuesFile({
    ...requiredValues,
    portRange: { min: 40000, max: 40999 },
    proxy: { replicas: 3 },
    exposure: { mode: 'hostNetwork', hostNetwork: { nodeSelector: { 'cccp.tcxn.net/edge': 'true' } } },
  });
  await mustHelm(['install', 'edge', '@chart', '-n', 'edge', '--create-namespace', '-f', values]);
  const set = await getJson<V1StatefulSet>('statefulset', 'edge-cccp-proxy-proxy', 'edge');
  const pod = set.spec!.template.spec!;
  assert.is(set.spec?.replicas, 3);
  assert.is(pod.hostNetwork, true);
  assert.equal(pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.[0]?.topologyKey, 'kubernetes.io/hostname');
  const services = JSON.parse((await mustKubectl(theRig(), ['get', 'svc', '-n', 'edge', '-o', 'json'])).stdout) as { items: V1Service[] };
  assert.not.ok(
    services.items.some((s) => s.spec?.type === 'LoadBalancer'),
    'no LoadBalancer Service',
  );
});

/** The chart as it was at `commit`, in a scratch directory. */
function chartAt(commit: string): string {
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'cccp-old-chart-'));
  const archive = execFileSync('git', ['-C', repo, 'archive', commit, 'helm/cccp-proxy']);
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  return join(dir, 'helm', 'cccp-proxy');
}

test('helm upgrade from the chart with a proxy Deployment: default values are refused (they would drop half the old range); keeping the range upgrades to the StatefulSet', async () => {
  const r = theRig();
  const old = chartAt(DEPLOYMENT_CHART_COMMIT);
  await mustHelm(['install', 'legacy', '@chart', '-n', 'legacy', '--create-namespace', '-f', valuesFile(requiredValues)], old);
  assert.ok((await names('legacy', 'deploy')).includes('deployment.apps/legacy-cccp-proxy-proxy'), 'the old chart runs a Deployment');
  assert.equal(await servicePorts('legacy', 'legacy-cccp-proxy-proxy'), [9000, ...range(20000, 100)]);
  const token = Buffer.from('filled-by-the-operator-0123456789').toString('base64');
  await mustKubectl(r, [
    'patch',
    'secret',
    'legacy-cccp-proxy-admin-token',
    '-n',
    'legacy',
    '--type=merge',
    '-p',
    JSON.stringify({ data: { token } }),
  ]);

  const defaults = await helm(['upgrade', 'legacy', '@chart', '-n', 'legacy', '-f', valuesFile(requiredValues)]);
  assert.is.not(defaults.code, 0, 'the upgrade with the new default range was not refused');
  assert.match(
    defaults.stderr,
    'portRange 20000-20049 drops ports of the running range 20000-20099 (Deployment legacy-cccp-proxy-operator): sessions on them would end. Before proxy.replicas the default range was 20000-20099: keep it with portRange.max=20099 and exposure.loadBalancer.portsPerPod=100',
  );

  await mustHelm([
    'upgrade',
    'legacy',
    '@chart',
    '-n',
    'legacy',
    '-f',
    valuesFile({ ...requiredValues, ...slicedRange({ min: 20000, max: 20099 }) }),
  ]);
  const objects = await names('legacy', 'deploy,statefulset,svc');
  assert.not.ok(objects.includes('deployment.apps/legacy-cccp-proxy-proxy'), 'the proxy Deployment is gone');
  assert.not.ok(objects.includes('service/legacy-cccp-proxy-proxy-admin'), 'the admin Service is gone');
  for (const name of [
    'statefulset.apps/legacy-cccp-proxy-proxy',
    'service/legacy-cccp-proxy-proxy-pods',
    'service/legacy-cccp-proxy-proxy-0',
  ])
    assert.ok(objects.includes(name), `${name} created`);
  assert.equal(await servicePorts('legacy', 'legacy-cccp-proxy-proxy'), [9000], 'the old Service keeps the device port (and its address)');
  assert.equal(await servicePorts('legacy', 'legacy-cccp-proxy-proxy-0'), range(20000, 100));
  const kept = (await mustKubectl(r, ['get', 'secret', 'legacy-cccp-proxy-admin-token', '-n', 'legacy', '-o', 'jsonpath={.data.token}']))
    .stdout;
  assert.is(kept, token, 'the admin token survives');

  const rollback = await helm(['rollback', 'legacy', '1', '-n', 'legacy']);
  assert.is(rollback.code, 0, rollback.stderr);
  assert.ok((await names('legacy', 'deploy')).includes('deployment.apps/legacy-cccp-proxy-proxy'), 'a rollback brings the Deployment back');
});

test.run();
