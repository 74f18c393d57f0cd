// Starts a proxy pod in this process with its admin API on a private Unix
// socket, and talks to that API over HTTP.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionList, SessionSpec, SessionState } from '../../common/admin-protocol.ts';
import { silentLogger } from '../../common/log.ts';
import { ProxyPod, type ProxyPodOptions } from '../../proxy-pod/proxy-pod.ts';
import { freePort } from './net.ts';

export interface TestProxy {
  pod: ProxyPod;
  admin: AdminCaller;
  stop(): Promise<void>;
}

export async function startProxy(opts: Partial<ProxyPodOptions> = {}): Promise<TestProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'cccp-proxy-'));
  const socketPath = join(dir, 'admin.sock');
  const pod = await ProxyPod.start({ devicePort: 0, bindHost: '127.0.0.1', admin: { socketPath }, logger: silentLogger(), processMetrics: false, ...opts });
  return {
    pod,
    admin: new AdminCaller({ socketPath }),
    async stop() {
      await pod.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Answer<T = unknown> {
  status: number;
  body: T;
}

/** Raw HTTP to the admin API, so tests can also send what a typed client never would. */
export class AdminCaller {
  constructor(private readonly target: { socketPath: string } | { host: string; port: number }, private readonly token?: string) {}

  request<T = unknown>(method: string, path: string, body?: string | object, headers: Record<string, string> = {}): Promise<Answer<T>> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          ...this.target,
          method,
          path,
          headers: {
            ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
            ...headers,
          },
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {}
            resolve({ status: res.statusCode ?? 0, body: parsed as T });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  put(serial: string, spec: Partial<SessionSpec> & { port: number }): Promise<Answer<SessionState>> {
    return this.request('PUT', `/v1/sessions/${encodeURIComponent(serial)}`, { id: `id-${serial}`, persistent: false, ipWhitelist: [], ...spec });
  }

  delete(serial: string): Promise<Answer<SessionState>> {
    return this.request('DELETE', `/v1/sessions/${encodeURIComponent(serial)}`);
  }

  async session(serial: string): Promise<SessionState | undefined> {
    const { body } = await this.request<SessionList>('GET', '/v1/sessions');
    return body.sessions.find((s) => s.serial === serial);
  }
}

export { freePort };
