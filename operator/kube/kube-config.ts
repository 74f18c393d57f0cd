// A KubeConfig whose API clients reuse TLS connections. client-node 1.4
// builds a new https.Agent (so a new TLS handshake) for every request; under
// a burst of /on that handshake work, not the API server, was the limit on
// these 2-core machines. Authentication headers are still applied per
// request by the base class, so rotated service-account tokens keep working.

import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];

/** Agents are rebuilt this often, so rotated client certificates are picked up. */
const AGENT_MAX_AGE_MS = 10 * 60_000;

export class KeepAliveKubeConfig extends KubeConfig {
  private agent: https.Agent | undefined;
  private agentBuiltAt = 0;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const cluster = this.getCurrentCluster();
    if (!cluster?.server.startsWith('https:') || cluster.proxyUrl) return;
    context.setAgent(await this.sharedAgent());
  }

  private async sharedAgent(): Promise<https.Agent> {
    if (this.agent && Date.now() - this.agentBuiltAt < AGENT_MAX_AGE_MS) return this.agent;
    const options: https.RequestOptions = {};
    await this.applyToHTTPSOptions(options);
    const { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername } = options;
    this.agent?.destroy();
    this.agent = new https.Agent({ ca, cert, key, pfx, passphrase, rejectUnauthorized, servername, keepAlive: true, maxSockets: 32 });
    this.agentBuiltAt = Date.now();
    return this.agent;
  }
}
