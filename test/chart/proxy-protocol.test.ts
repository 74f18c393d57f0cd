// The chart's PROXY protocol values, rendered by the real `helm`: what reaches
// the proxy's environment (read back by the proxy's own settings parser), the
// default left alone, and the refusals with their messages.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Service } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { addressEntryError } from '../../proxy-pod/address-matcher.ts';
import { proxyOptionsFromEnv } from '../../proxy-pod/config.ts';
import { suiteFixture } from '../helpers/fixture.ts';
import {
  chartDir,
  containerEnv,
  type KubeObject,
  kubeBinDir,
  ofKind,
  render,
  requiredValues,
  runHelm,
  template,
  type Workload,
} from '../helpers/helm.ts';

const test = suite('helm chart: PROXY protocol');
const bin = suiteFixture(test, kubeBinDir);

/** The proxy's workload, whatever its kind. */
function proxyWorkload(objects: KubeObject[]): Workload {
  const found = objects.find((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'proxy' && (o as Workload).spec?.template);
  if (!found) throw new Error('no proxy workload rendered');
  return found as Workload;
}

function proxyEnv(objects: KubeObject[]): Record<string, string> {
  return Object.fromEntries(containerEnv(proxyWorkload(objects)).map((e) => [e.name, e.value ?? '']));
}

const publicService = (objects: KubeObject[]) => ofKind<V1Service>(objects, 'Service').find((s) => s.spec?.type === 'LoadBalancer');

async function refused(values: object): Promise<string> {
  const result = await template(bin(), values);
  assert.is.not(result.code, 0, `helm template should have failed for ${JSON.stringify(values)}`);
  return result.stderr;
}

test('off by default: no PROXY protocol variable in the pod template (an upgrade restarts nothing), externalTrafficPolicy Local', async () => {
  const { objects } = await render(bin(), requiredValues);
  assert.equal(
    Object.keys(proxyEnv(objects)).filter((name) => name.startsWith('CCCP_PROXY_PROTOCOL')),
    [],
  );
  assert.is(publicService(objects)?.spec?.externalTrafficPolicy, 'Local');
});

test('the values reach the proxy as the settings its own parser reads; Cluster is allowed with headers on both listeners', async () => {
  const { objects } = await render(bin(), {
    ...requiredValues,
    exposure: { mode: 'loadBalancer', loadBalancer: { externalTrafficPolicy: 'Cluster' } },
    proxy: { proxyProtocol: { device: 'v2', sessions: 'any', trustedSources: ['10.0.0.0/8', '2001:db8::/32'], headerTimeoutSeconds: 3 } },
  });
  const env = proxyEnv(objects);
  // The peer port needs the pod's ordinal and mounted token, which only a pod has (render.test.ts resolves them).
  const settings = proxyOptionsFromEnv({ ...env, CCCP_ADMIN_SOCKET: '/tmp/admin.sock', CCCP_PEER_PORT: '0' }).proxyProtocol;
  assert.equal(settings, { device: 'v2', sessions: 'any', trustedSources: ['10.0.0.0/8', '2001:db8::/32'], headerTimeoutMs: 3000 });
  assert.is(publicService(objects)?.spec?.externalTrafficPolicy, 'Cluster');
});

test('an unquoted off in a values file (YAML reads it as false) means off', async () => {
  const file = join(tmpdir(), `cccp-pp-values-${process.pid}.yaml`);
  writeFileSync(file, 'publicHost: proxy.customer.example\nproxy:\n  proxyProtocol:\n    device: off\n    sessions: v1\n');
  const result = await runHelm(bin(), ['template', 'cust', chartDir, '-f', file]);
  assert.is(result.code, 0, result.stderr);
  assert.match(result.stdout, /name: CCCP_PROXY_PROTOCOL_DEVICE\s+value: "off"/);
  assert.match(result.stdout, /name: CCCP_PROXY_PROTOCOL_SESSIONS\s+value: "v1"/);
});

test('Cluster without headers on both listeners is refused, saying what to set', async () => {
  for (const proxyProtocol of [{}, { device: 'v1' }, { sessions: 'any' }]) {
    const message = await refused({
      ...requiredValues,
      exposure: { mode: 'loadBalancer', loadBalancer: { externalTrafficPolicy: 'Cluster' } },
      proxy: { proxyProtocol },
    });
    assert.match(message, 'exposure.loadBalancer.externalTrafficPolicy=Cluster hides the clients');
    assert.match(message, 'set proxy.proxyProtocol.device and .sessions');
  }
});

test('bad modes, timeouts and traffic policies are refused by the schema', async () => {
  assert.match(await refused({ ...requiredValues, proxy: { proxyProtocol: { device: 'on' } } }), "'/proxy/proxyProtocol/device'");
  assert.match(await refused({ ...requiredValues, proxy: { proxyProtocol: { sessions: true } } }), "'/proxy/proxyProtocol/sessions'");
  assert.match(await refused({ ...requiredValues, proxy: { proxyProtocol: { headerTimeoutSeconds: 0 } } }), 'headerTimeoutSeconds');
  assert.match(
    await refused({ ...requiredValues, exposure: { mode: 'loadBalancer', loadBalancer: { externalTrafficPolicy: 'Any' } } }),
    'externalTrafficPolicy',
  );
});

test('trusted sources: the chart accepts exactly what the proxy accepts, and names a bad entry', async () => {
  const entries = ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '10.0.0.0/33', '010.0.0.1', 'cafe', '::ffff:10.0.0.0/8'];
  for (const entry of entries) {
    const result = await template(bin(), { ...requiredValues, proxy: { proxyProtocol: { device: 'v1', trustedSources: [entry] } } });
    const proxyAccepts = addressEntryError(entry) === undefined;
    assert.is(result.code === 0, proxyAccepts, `${entry}: ${result.stderr}`);
    if (!proxyAccepts) assert.match(result.stderr, `proxy.proxyProtocol.trustedSources[0] ${JSON.stringify(entry)}`);
  }
});

test.run();
