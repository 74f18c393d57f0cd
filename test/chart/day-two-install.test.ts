// The chart after the first install, against the rig's real kube-apiserver
// with the real helm and kubectl: token rotation by `helm upgrade`, the admin
// token the operator fills, `helm uninstall` with its cleanup hook, one
// release per namespace, and the Pod Security level each exposure mode needs.
// The rig has no kubelet: the operator, the proxy and the cleanup Job's
// command run as local processes with the environment of the rendered
// objects, and the test does the kubelet's part (projecting Secret volumes,
// reporting the Job complete).

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig, type V1Deployment, type V1Job, type V1Pod } from '@kubernetes/client-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureAdminToken } from '../../operator/kube/admin-token-secret.ts';
import { mustKubectl } from '../helpers/cluster.ts';
import {
  chartDir,
  deploymentOf,
  kubeBinDir,
  type LocalRelease,
  type LocalReleaseOptions,
  named,
  ofKind,
  parseManifests,
  releaseObjects,
  render,
  requiredValues,
  resolveEnv,
  runHelm,
  secretFromCluster,
  slicedRange,
  startLocalRelease,
  statefulSetOf,
  topLevelCrdFile,
  toYamlStream,
  valuesFile,
} from '../helpers/helm.ts';
import { freePortRange, waitFor } from '../helpers/net.ts';
import { startNodeProcess } from '../helpers/processes.ts';
import { type Rig, startRig } from '../kube/rig.ts';

const test = suite('helm chart in a cluster, day two');
let rig: Rig | undefined;
let startError: unknown;
const releases: LocalRelease[] = [];

// Session ranges (base + 0-49) found free at start, below Linux's ephemeral ports: a fixed block
// met another run's thousands of session ports, and every /on there answered 503.
let base = 0;
const OLD_TOKEN = 'old-control-token-0123456789';
const NEW_TOKEN = 'new-control-token-0123456789';

test.before(async () => {
  try {
    base = (await freePortRange(50)).min;
    await kubeBinDir();
    rig = await startRig();
    await mustKubectl(rig, ['apply', '--server-side', '-f', topLevelCrdFile]);
    await mustKubectl(rig, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/proxysessions.cccp.tcxn.net']);
  } catch (err) {
    startError = err;
  }
});

test.after(async () => {
  await Promise.all(releases.map((r) => r.stop()));
  await rig?.stop();
});

function theRig(): Rig {
  if (!rig || startError) throw startError ?? new Error('rig not started');
  return rig;
}

async function started(opts: LocalReleaseOptions): Promise<LocalRelease> {
  const release = await startLocalRelease(theRig(), opts);
  releases.push(release);
  return release;
}

test('a token rotation by helm upgrade reaches the running operator without a restart; the old token gets 401', async () => {
  const r = theRig();
  const release = await started({
    release: 'rotate',
    namespace: 'rotate',
    portRange: { min: base, max: base + 9 },
    helmInstall: true,
    values: { controlTokens: [OLD_TOKEN] },
  });
  assert.is((await release.control('/status?serial=NOPE', OLD_TOKEN)).status, 404, 'the old token is accepted');
  assert.is((await release.control('/status?serial=NOPE', NEW_TOKEN)).status, 401);
  const deploymentBefore = (await mustKubectl(r, ['get', 'deploy', 'rotate-cccp-proxy-operator', '-n', 'rotate', '-o', 'json'])).stdout;
  const adminBefore = await secretFromCluster(r, 'rotate', 'rotate-cccp-proxy-admin-token');
  assert.ok((adminBefore.token ?? '').length >= 16, 'the admin token Secret was filled (operator/kube/admin-token-secret.ts)');

  const upgrade = await runHelm(
    r.binDir,
    ['upgrade', 'rotate', chartDir, '-n', 'rotate', '-f', release.valuesFile, '-f', valuesFile({ controlTokens: [NEW_TOKEN] })],
    r.kubeconfig,
  );
  assert.is(upgrade.code, 0, upgrade.stderr);
  assert.equal(
    await secretFromCluster(r, 'rotate', 'rotate-cccp-proxy-control-tokens'),
    { tokens: NEW_TOKEN },
    'the Secret holds the new token',
  );
  const deploymentAfter = JSON.parse(
    (await mustKubectl(r, ['get', 'deploy', 'rotate-cccp-proxy-operator', '-n', 'rotate', '-o', 'json'])).stdout,
  ) as V1Deployment;
  assert.equal(
    deploymentAfter.spec?.template,
    (JSON.parse(deploymentBefore) as V1Deployment).spec?.template,
    'the pod template is unchanged: no pod rolls',
  );
  assert.equal(await secretFromCluster(r, 'rotate', 'rotate-cccp-proxy-admin-token'), adminBefore, 'the upgrade keeps the admin token');

  // The kubelet's part: project the changed Secret into the mounted directory.
  await release.syncControlTokens();
  await waitFor(
    async () => (await release.control('/status?serial=NOPE', OLD_TOKEN)).status === 401,
    15_000,
    'the old token to be refused',
  );
  assert.is((await release.control('/status?serial=NOPE', NEW_TOKEN)).status, 404, 'the new token is accepted');
  const on = await release.control<{ port: number }>('/on?serial=ROTATED&persistent=true', NEW_TOKEN);
  assert.is(on.status, 200, JSON.stringify(on.body));
  assert.is(release.operator.child.exitCode, null, 'the same operator process, never restarted');
  assert.match(release.operator.output(), '"msg":"control tokens reloaded"');
  assert.not.match(release.operator.output(), NEW_TOKEN, 'tokens are never logged');
});

test('a second release in a namespace is refused by helm install, naming the first; the first still upgrades', async () => {
  const r = theRig();
  const values = valuesFile({ ...requiredValues, ...slicedRange({ min: 26000, max: 26009 }) });
  const install = await runHelm(r.binDir, ['install', 'second', chartDir, '-n', 'rotate', '-f', values], r.kubeconfig);
  assert.is.not(install.code, 0, 'a second release installed');
  assert.match(install.stderr, 'namespace rotate already holds the cccp-proxy release "rotate" (Deployment rotate-cccp-proxy-operator)');
  assert.match(install.stderr, 'Install into another namespace, or upgrade "rotate" instead');
  assert.is(
    (await mustKubectl(r, ['get', 'deploy', '-n', 'rotate', '-o', 'name'])).stdout.includes('second'),
    false,
    'nothing of it was created',
  );
  const upgrade = await runHelm(r.binDir, ['upgrade', 'rotate', chartDir, '-n', 'rotate', '--reuse-values'], r.kubeconfig);
  assert.is(upgrade.code, 0, upgrade.stderr);
});

test('NOTES: with tokens they say where $TOKEN comes from; without tokens or policy they warn that every pod can call /on', async () => {
  const r = theRig();
  await mustKubectl(r, ['create', 'namespace', 'notes'], true);
  const withTokens = await runHelm(
    r.binDir,
    ['install', 'notes', chartDir, '-n', 'notes', '--dry-run=server', '-f', valuesFile({ ...requiredValues, controlTokens: [OLD_TOKEN] })],
    r.kubeconfig,
  );
  assert.is(withTokens.code, 0, withTokens.stderr);
  assert.match(
    withTokens.stdout,
    "TOKEN=$(kubectl get secret notes-cccp-proxy-control-tokens -n notes -o jsonpath='{.data.tokens}' | base64 -d | cut -d, -f1)",
  );
  assert.match(withTokens.stdout, 'curl -H "Authorization: Bearer $TOKEN"');
  assert.not.match(withTokens.stdout, 'WARNING');
  const open = await runHelm(
    r.binDir,
    ['install', 'notes', chartDir, '-n', 'notes', '--dry-run=server', '-f', valuesFile(requiredValues)],
    r.kubeconfig,
  );
  assert.match(open.stdout, 'WARNING: the Control API has no tokens and no NetworkPolicy: every pod in the\ncluster can open');
  const hostNetwork = await runHelm(
    r.binDir,
    [
      'install',
      'notes',
      chartDir,
      '-n',
      'notes',
      '--dry-run=server',
      '-f',
      valuesFile({ ...requiredValues, exposure: { mode: 'hostNetwork', hostNetwork: { nodeName: 'edge-1' } } }),
    ],
    r.kubeconfig,
  );
  assert.match(hostNetwork.stdout, 'needs pod-security.kubernetes.io/enforce=privileged');
});

test('two operator replicas filling the empty admin token Secret at once end up with one token', async () => {
  const r = theRig();
  await mustKubectl(r, ['create', 'namespace', 'fill'], true);
  const rendered = await render(r.binDir, requiredValues, { release: 'fill', namespace: 'fill' });
  await mustKubectl(
    r,
    ['apply', '--server-side', '--field-manager=helm-test', '-f', '-'],
    false,
    toYamlStream(releaseObjects(rendered.objects)),
  );
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(await r.serviceAccountKubeconfig('fill', 'fill-cccp-proxy-operator'));
  const tokens = await Promise.all(Array.from({ length: 4 }, () => ensureAdminToken(kubeConfig, 'fill', 'fill-cccp-proxy-admin-token')));
  assert.is(new Set(tokens).size, 1, 'every replica got the same token');
  assert.ok(tokens[0]!.length >= 16);
  assert.equal(await secretFromCluster(r, 'fill', 'fill-cccp-proxy-admin-token'), { token: tokens[0] });
  assert.is(await ensureAdminToken(kubeConfig, 'fill', 'fill-cccp-proxy-admin-token'), tokens[0], 'a restarted replica reads it back');
});

interface UninstallOutcome {
  cleanupOutput: string;
}

/**
 * `helm uninstall` as a user runs it: Helm creates the pre-delete Job and waits
 * for it; here the Job's command runs as a local process with the Job's own
 * environment and ServiceAccount, and then its completion is reported on the
 * Job's status (the job controller's part), after which Helm deletes the rest.
 */
async function uninstall(release: LocalRelease): Promise<UninstallOutcome> {
  const r = theRig();
  const { namespace } = release;
  const jobName = `${release.release}-cccp-proxy-uninstall-cleanup`;
  const helm = runHelm(r.binDir, ['uninstall', release.release, '-n', namespace, '--timeout', '90s'], r.kubeconfig);
  let job: V1Job | undefined;
  await waitFor(
    async () => {
      const got = await r.kubectl(['get', 'job', jobName, '-n', namespace, '-o', 'json']);
      if (got.code === 0) job = JSON.parse(got.stdout) as V1Job;
      return job !== undefined;
    },
    60_000,
    'helm to create the pre-delete Job',
  );
  const pod = job!.spec!.template.spec!;
  const kubeconfig = await r.serviceAccountKubeconfig(namespace, pod.serviceAccountName ?? '');
  const env = resolveEnv(release.objects, job!, { name: `${jobName}-x7k2p`, namespace });
  const cleanup = await startNodeProcess(
    'operator/release-cleanup.ts',
    { ...env, KUBECONFIG: kubeconfig },
    /release cleanup done|release cleanup failed/,
    60_000,
  );
  const code = await new Promise<number | null>((resolve) => {
    if (cleanup.child.exitCode !== null) resolve(cleanup.child.exitCode);
    else cleanup.child.once('exit', resolve);
  });
  assert.is(code, 0, cleanup.output());
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const status = {
    status: {
      startTime: now,
      completionTime: now,
      succeeded: 1,
      active: 0,
      ready: 0,
      terminating: 0,
      conditions: [
        {
          type: 'SuccessCriteriaMet',
          status: 'True',
          lastProbeTime: now,
          lastTransitionTime: now,
          reason: 'CompletionsReached',
          message: 'Reached expected number of succeeded pods',
        },
        {
          type: 'Complete',
          status: 'True',
          lastProbeTime: now,
          lastTransitionTime: now,
          reason: 'CompletionsReached',
          message: 'Reached expected number of succeeded pods',
        },
      ],
    },
  };
  await mustKubectl(r, ['patch', 'job', jobName, '-n', namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
  const result = await helm;
  assert.is(result.code, 0, result.stderr);
  return { cleanupOutput: cleanup.output() };
}

async function leftovers(r: Rig, namespace: string): Promise<{ sessions: string; objects: string }> {
  const sessions = (
    await mustKubectl(r, [
      'get',
      'pxs',
      '-n',
      namespace,
      '-o',
      'jsonpath={range .items[*]}{.metadata.name} {.metadata.finalizers}{"\\n"}{end}',
    ])
  ).stdout.trim();
  const objects = (
    await mustKubectl(r, ['get', 'deploy,svc,sa,role,rolebinding,networkpolicy,pdb,secret,job,pod', '-n', namespace, '-o', 'name'])
  ).stdout.trim();
  return { sessions, objects };
}

test('helm uninstall with the operator running: the hook deletes every session, the operator ends each, nothing is left', async () => {
  const r = theRig();
  const release = await started({ release: 'bye', namespace: 'bye', portRange: { min: base + 20, max: base + 29 }, helmInstall: true });
  for (const serial of ['BYE-1', 'BYE-2']) assert.is((await release.control(`/on?serial=${serial}&persistent=true`)).status, 200);
  // One made with kubectl, as DESIGN allows.
  await mustKubectl(
    r,
    ['apply', '-n', 'bye', '-f', '-'],
    false,
    JSON.stringify({
      apiVersion: 'cccp.tcxn.net/v1alpha1',
      kind: 'ProxySession',
      metadata: { name: 'by-hand' },
      spec: { serial: 'BYE-3' },
    }),
  );
  await waitFor(
    async () =>
      (await mustKubectl(r, ['get', 'pxs', 'by-hand', '-n', 'bye', '-o', 'jsonpath={.metadata.finalizers}'])).stdout.includes(
        'cccp.tcxn.net',
      ),
    10_000,
    'the operator to take the kubectl session',
  );

  const { cleanupOutput } = await uninstall(release);
  assert.match(cleanupOutput, '"deleted":3,"released":0');
  assert.equal(await leftovers(r, 'bye'), { sessions: '', objects: '' });
});

test('helm uninstall with the operator down: the hook removes the finalizers itself, no session hangs in Terminating', async () => {
  const r = theRig();
  const release = await started({
    release: 'down',
    namespace: 'down',
    portRange: { min: base + 40, max: base + 49 },
    helmInstall: true,
    values: { uninstallCleanup: { waitSeconds: 2 } },
  });
  for (const serial of ['DOWN-1', 'DOWN-2']) assert.is((await release.control(`/on?serial=${serial}&persistent=true`)).status, 200);
  await release.stop();
  const before = (await leftovers(r, 'down')).sessions.split('\n');
  assert.is(before.length, 2);
  assert.ok(
    before.every((line) => line.includes('cccp.tcxn.net/session-cleanup')),
    'each session carries the finalizer',
  );

  const { cleanupOutput } = await uninstall(release);
  assert.match(cleanupOutput, '"deleted":2,"released":2');
  assert.equal(await leftovers(r, 'down'), { sessions: '', objects: '' });
  // The namespace can now go: nothing holds it.
  await mustKubectl(r, ['delete', 'namespace', 'down', '--wait=false']);
});

test('every ci/*-values.yaml render, hooks included, passes server-side dry run (Ingress, NetworkPolicies, Services, Job)', async () => {
  const r = theRig();
  await mustKubectl(r, ['create', 'namespace', 'ci'], true);
  const ciDir = join(chartDir, 'ci');
  for (const file of readdirSync(ciDir).filter((f) => f.endsWith('-values.yaml'))) {
    const rendered = await runHelm(r.binDir, ['template', 'ci', chartDir, '-n', 'ci', '-f', join(ciDir, file)]);
    assert.is(rendered.code, 0, `${file}: ${rendered.stderr}`);
    // The helm test Pod needs its ServiceAccount stored, which a dry run does not do; the Pod Security test admits it.
    const objects = parseManifests(rendered.stdout).filter((o) => o.kind !== 'Pod');
    const result = await r.kubectl(['apply', '--dry-run=server', '--server-side', '--field-manager=helm-test', '-f', '-'], {
      input: toYamlStream(objects),
    });
    assert.is(result.code, 0, `${file}: ${result.stderr}`);
    assert.is(
      result.stdout
        .trim()
        .split('\n')
        .filter((line) => line.endsWith('(server dry run)')).length,
      objects.length,
      `${file}: every object accepted`,
    );
  }
});

/** A Pod made of a rendered pod template, as the ReplicaSet or Job controller would create it. */
function podOf(
  workload: { metadata?: { name?: string }; spec?: { template: { metadata?: object; spec?: object } } },
  namespace: string,
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...workload.spec!.template.metadata, name: `${workload.metadata!.name}-abc12`, namespace },
    spec: workload.spec!.template.spec,
  } as V1Pod;
}

async function admitted(r: Rig, pod: V1Pod): Promise<{ ok: boolean; message: string }> {
  const result = await r.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod) });
  return { ok: result.code === 0, message: result.stderr };
}

test('Pod Security: loadBalancer mode runs under "restricted", hostNetwork needs "privileged" (refused under "baseline")', async () => {
  const r = theRig();
  const levels = ['restricted', 'baseline', 'privileged'] as const;
  for (const level of levels) {
    await mustKubectl(r, ['create', 'namespace', `psa-${level}`], true);
    await mustKubectl(r, ['label', 'namespace', `psa-${level}`, `pod-security.kubernetes.io/enforce=${level}`, '--overwrite']);
  }
  const variants = {
    loadBalancer: requiredValues,
    'loadBalancer, device port 502': { ...requiredValues, devicePort: 502 },
    hostNetwork: { ...requiredValues, exposure: { mode: 'hostNetwork', hostNetwork: { nodeName: 'edge-1' } } },
  };
  const verdicts: Record<string, Record<string, boolean>> = {};
  for (const [variant, values] of Object.entries(variants)) {
    for (const level of levels) {
      const namespace = `psa-${level}`;
      const rendered = await render(r.binDir, values, { release: 'psa', namespace });
      // The ServiceAccounts must exist for a Pod to be admitted.
      await mustKubectl(
        r,
        ['apply', '--server-side', '--field-manager=helm-test', '-f', '-'],
        false,
        toYamlStream(ofKind(rendered.objects, 'ServiceAccount')),
      );
      const proxy = await admitted(r, podOf(statefulSetOf(rendered.objects), namespace));
      verdicts[variant] ??= {};
      verdicts[variant][level] = proxy.ok;
      if (variant === 'hostNetwork' && level === 'baseline') assert.match(proxy.message, 'host namespaces (hostNetwork=true)');
      // The other pods of the chart meet every level in every mode.
      const others = [
        podOf(deploymentOf(rendered.objects, 'operator'), namespace),
        podOf(named<V1Job>(rendered.objects, 'Job', 'psa-cccp-proxy-uninstall-cleanup'), namespace),
        { ...ofKind<V1Pod>(rendered.objects, 'Pod')[0]!, metadata: { ...ofKind<V1Pod>(rendered.objects, 'Pod')[0]!.metadata, namespace } },
      ];
      for (const pod of others) {
        const verdict = await admitted(r, pod);
        assert.ok(verdict.ok, `${variant}, ${level}: ${pod.metadata?.name}: ${verdict.message}`);
      }
    }
  }
  assert.equal(verdicts, {
    loadBalancer: { restricted: true, baseline: true, privileged: true },
    'loadBalancer, device port 502': { restricted: true, baseline: true, privileged: true },
    hostNetwork: { restricted: false, baseline: false, privileged: true },
  });
});

test.run();
