// The admin API token the operator shares with the proxy pod, kept in a
// Secret the chart renders without data. Rendering a random token would make
// every `helm template` differ (GitOps tools would never be in sync, and each
// sync would hand pods a new token); instead the first operator replica fills
// the empty Secret once, and every later reader finds the token there. The
// proxy pod mounts the Secret; the kubelet starts it once the key exists.
// The Role grants get and patch of this one Secret, by name: no list, no create.

import { randomBytes } from 'node:crypto';
import { CoreV1Api, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Secret } from '@kubernetes/client-node';
import { toKubeError } from './proxysession-client.ts';

const KEY = 'token';
const MIN_LENGTH = 16;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** 48 characters from [A-Za-z0-9_-]: 288 bits. */
function newToken(): string {
  return randomBytes(36).toString('base64url');
}

/** Reads the token, or writes a new one into the Secret when it has none; returns the token in force. */
export async function ensureAdminToken(kubeConfig: KubeConfig, namespace: string, name: string): Promise<string> {
  const api = kubeConfig.makeApiClient(CoreV1Api);
  for (let attempt = 0; attempt < 5; attempt++) {
    let secret: V1Secret;
    try {
      secret = await api.readNamespacedSecret({ name, namespace });
    } catch (err) {
      const failure = toKubeError(err);
      if (failure.notFound)
        throw new Error(`admin token Secret ${namespace}/${name} does not exist (it is part of the chart)`, { cause: failure });
      throw failure;
    }
    const encoded = secret.data?.[KEY];
    if (encoded) {
      const token = Buffer.from(encoded, 'base64').toString('utf8').trim();
      if (token.length < MIN_LENGTH)
        throw new Error(`admin token Secret ${namespace}/${name}: key ${KEY} holds fewer than ${MIN_LENGTH} characters`);
      return token;
    }
    const token = newToken();
    // resourceVersion makes the write conditional: of two replicas filling it at once, one wins and the other reads its token.
    const body = {
      metadata: { resourceVersion: secret.metadata?.resourceVersion },
      data: { [KEY]: Buffer.from(token).toString('base64') },
    };
    try {
      await api.patchNamespacedSecret({ name, namespace, body, fieldManager: 'cccp-operator' }, mergePatch);
      return token;
    } catch (err) {
      const failure = toKubeError(err);
      if (!failure.conflict) throw failure;
    }
  }
  throw new Error(`admin token Secret ${namespace}/${name}: too many concurrent writers`);
}
