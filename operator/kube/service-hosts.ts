// The public host of each proxy pod in loadBalancer exposure: the address the
// cloud gave that pod's own Service (status.loadBalancer.ingress), read by
// name every so often. It changes rarely (once, when the load balancer is
// made), so a periodic GET of a few named Services is cheaper and needs less
// permission than a watch: the Role grants get on these names only.
import { CoreV1Api, type KubeConfig, type V1Service } from '@kubernetes/client-node';
import { type Clock, systemClock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';

export interface ServiceReader {
  read(name: string): Promise<V1Service>;
}

export interface ServiceHostsOptions {
  reader: ServiceReader;
  /** The Services to read, one per proxy pod. */
  names: string[];
  logger: Logger;
  intervalMs?: number;
  clock?: Clock;
}

/** The first ingress address of a Service's load balancer: its IP, else its host name. */
export function loadBalancerHost(service: V1Service): string | undefined {
  for (const ingress of service.status?.loadBalancer?.ingress ?? []) {
    if (ingress.ip) return ingress.ip;
    if (ingress.hostname) return ingress.hostname;
  }
  return undefined;
}

export class ServiceHosts {
  private readonly hosts = new Map<string, string>();
  private readonly failing = new Set<string>();
  private readonly intervalMs: number;
  private readonly clock: Clock;
  private handle: unknown;
  private stopped = false;

  constructor(private readonly options: ServiceHostsOptions) {
    this.intervalMs = options.intervalMs ?? 15_000;
    this.clock = options.clock ?? systemClock;
  }

  static forCluster(kubeConfig: KubeConfig, namespace: string, names: string[], logger: Logger): ServiceHosts {
    const api = kubeConfig.makeApiClient(CoreV1Api);
    return new ServiceHosts({ reader: { read: (name) => api.readNamespacedService({ name, namespace }) }, names, logger });
  }

  /** The load balancer's address of the named Service, once the cloud has given it one. */
  host(name: string): string | undefined {
    return this.hosts.get(name);
  }

  /** Reads every Service now, then again every intervalMs. */
  async start(): Promise<void> {
    await this.refresh();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
  }

  async refresh(): Promise<void> {
    await Promise.all(
      this.options.names.map(async (name) => {
        try {
          const host = loadBalancerHost(await this.options.reader.read(name));
          if (host === undefined) this.hosts.delete(name);
          else if (this.hosts.get(name) !== host) {
            this.hosts.set(name, host);
            this.options.logger.info({ service: name, host }, 'proxy pod reachable at its load balancer');
          }
          this.failing.delete(name);
        } catch (err) {
          // Logged once per outage; the last known host stays in use.
          if (!this.failing.has(name)) this.options.logger.warn({ service: name, err }, 'reading the proxy pod’s Service failed');
          this.failing.add(name);
        }
      }),
    );
  }

  private schedule(): void {
    if (this.stopped) return;
    this.handle = this.clock.setTimeout(() => {
      void this.refresh().finally(() => this.schedule());
    }, this.intervalMs);
  }
}
