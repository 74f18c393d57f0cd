// /healthz, /readyz and /metrics of the proxy pod, on a port of their own so
// probes and Prometheus need neither the admin token nor the admin port.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { type HttpLimits, limitConnections } from '../common/http-limits.ts';
import { listen } from '../common/sockets.ts';

export class HealthServer {
  private readonly server: http.Server;

  constructor(registry: Registry, limits?: HttpLimits) {
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET') {
        res.writeHead(405, { 'content-type': 'application/json' }).end('{"message":"only GET"}');
      } else if (path === '/healthz' || path === '/readyz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      } else if (path === '/metrics') {
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"not found"}');
      }
    });
    if (limits) limitConnections(this.server, limits);
  }

  async listen(port: number, host?: string): Promise<number> {
    await listen(this.server, { port, host });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}
