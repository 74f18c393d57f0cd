// Each proxy pod's public host in loadBalancer exposure comes from its own
// Service's load-balancer status, read from the rig's real kube-apiserver
// (the rig has no cloud, so the test writes the status a cloud would).
import { KubeConfig } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import { ServiceHosts } from '../../operator/kube/service-hosts.ts';
import { mustKubectl, startRigWithCrd } from '../helpers/cluster.ts';
import { suiteFixture } from '../helpers/fixture.ts';
import type { Rig } from '../kube/rig.ts';

const test = suite('proxy pod Service hosts');
const NAMESPACE = 'cccp-service-hosts';

const theRig = suiteFixture(
  test,
  async () => {
    const rig = await startRigWithCrd();
    await mustKubectl(rig, ['create', 'namespace', NAMESPACE]);
    return rig;
  },
  (rig: Rig) => rig.stop(),
);

function service(name: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NAMESPACE },
    spec: { type: 'LoadBalancer', ports: [{ name: 's', port: 20000, protocol: 'TCP' }] },
  });
}

async function setIngress(rig: Rig, name: string, ingress: Array<{ ip?: string; hostname?: string }>): Promise<void> {
  await mustKubectl(rig, [
    '-n',
    NAMESPACE,
    'patch',
    'service',
    name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { loadBalancer: { ingress } } }),
  ]);
}

test('a pod’s host is its Service’s load-balancer address once the cloud gives one; unknown until then', async () => {
  const rig = theRig();
  for (const name of ['rel-proxy-0', 'rel-proxy-1']) await mustKubectl(rig, ['apply', '-f', '-'], false, service(name));
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(rig.kubeconfig);
  const hosts = ServiceHosts.forCluster(kubeConfig, NAMESPACE, ['rel-proxy-0', 'rel-proxy-1', 'rel-proxy-2'], silentLogger());
  await hosts.start();
  assert.is(hosts.host('rel-proxy-0'), undefined, 'no load balancer yet');
  await setIngress(rig, 'rel-proxy-0', [{ ip: '203.0.113.7' }]);
  await setIngress(rig, 'rel-proxy-1', [{ hostname: 'lb-1.example.net' }]);
  await hosts.refresh();
  assert.is(hosts.host('rel-proxy-0'), '203.0.113.7');
  assert.is(hosts.host('rel-proxy-1'), 'lb-1.example.net');
  assert.is(hosts.host('rel-proxy-2'), undefined, 'a missing Service gives no host and stops nothing');
  hosts.stop();
});

test.run();
