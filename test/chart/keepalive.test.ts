// The chart's dead-link settings: keepalive idle time and send timeout for
// the proxy, and the pod's keepalive sysctls where a pod may set them (not
// hostNetwork). They are "safe" sysctls from Kubernetes 1.29 on, and the
// chart requires 1.31.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { suiteFixture } from '../helpers/fixture.ts';
import { chartDir, containerEnv, kubeBinDir, parseManifests, requiredValues, runHelm, statefulSetOf, valuesFile } from '../helpers/helm.ts';

const test = suite('helm chart keepalive');
const bin = suiteFixture(test, kubeBinDir);

async function proxyPod(values: object, kubeVersion = '1.31.0') {
  const result = await runHelm(bin(), [
    'template',
    'cust',
    chartDir,
    '-n',
    'cust',
    '-f',
    valuesFile(values),
    '--kube-version',
    kubeVersion,
  ]);
  if (result.code !== 0) throw new Error(result.stderr);
  const deployment = statefulSetOf(parseManifests(result.stdout));
  const sysctls = Object.fromEntries((deployment.spec!.template.spec!.securityContext?.sysctls ?? []).map((s) => [s.name, s.value]));
  const env = Object.fromEntries(containerEnv(deployment).map((e) => [e.name, e.value]));
  return { sysctls, env };
}

test('the proxy pod gets keepalive sysctls matching its idle time, and the proxy its settings', async () => {
  const { sysctls, env } = await proxyPod({ ...requiredValues, proxy: { keepaliveIdleSeconds: 45, sendTimeoutSeconds: 90 } });
  assert.equal(sysctls, {
    'net.ipv4.tcp_keepalive_time': '45',
    'net.ipv4.tcp_keepalive_intvl': '10',
    'net.ipv4.tcp_keepalive_probes': '5',
  });
  assert.is(env.CCCP_KEEPALIVE_IDLE_S, '45');
  assert.is(env.CCCP_SEND_TIMEOUT_S, '90');
});

test('with low ports both kinds of sysctl are in one list', async () => {
  const { sysctls } = await proxyPod({
    ...requiredValues,
    devicePort: 502,
    proxy: { keepaliveSysctls: { intervalSeconds: 15, probes: 4 } },
  });
  assert.equal(sysctls, {
    'net.ipv4.ip_unprivileged_port_start': '0',
    'net.ipv4.tcp_keepalive_time': '60',
    'net.ipv4.tcp_keepalive_intvl': '15',
    'net.ipv4.tcp_keepalive_probes': '4',
  });
});

test('hostNetwork pods and keepaliveSysctls.enabled=false get no keepalive sysctls', async () => {
  const hostNetwork = await proxyPod(
    { ...requiredValues, exposure: { mode: 'hostNetwork', hostNetwork: { nodeName: 'edge-node-1' } } },
    '1.31.0',
  );
  assert.equal(hostNetwork.sysctls, {});
  const off = await proxyPod({ ...requiredValues, proxy: { keepaliveSysctls: { enabled: false } } }, '1.31.0');
  assert.equal(off.sysctls, {});
});

test('the schema refuses a zero idle time, a negative send timeout and zero probes', async () => {
  for (const proxy of [{ keepaliveIdleSeconds: 0 }, { sendTimeoutSeconds: -1 }, { keepaliveSysctls: { probes: 0 } }]) {
    const result = await runHelm(bin(), ['template', 'cust', chartDir, '-f', valuesFile({ ...requiredValues, proxy })]);
    assert.is.not(result.code, 0, JSON.stringify(proxy));
    assert.match(result.stderr, /minimum/);
  }
});

test.run();
