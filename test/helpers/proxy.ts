// Starts a proxy pod in this process with its admin API on a private Unix
// socket, and talks to that API over HTTP.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionList, SessionSpec, SessionState } from '../../common/admin-protocol.ts';
import { silentLogger } from '../../common/log.ts';
import { ProxyPod, type ProxyPodOptions } from '../../proxy-pod/proxy-pod.ts';
import type { Answer } from './http.ts';
import { connect, connectDevice, freePort, waitFor } from './net.ts';

export interface TestProxy {
  pod: ProxyPod;
  admin: AdminCaller;
  stop(): Promise<void>;
}

export async function startProxy(opts: Partial<ProxyPodOptions> = {}): Promise<TestProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'cccp-proxy-'));
  const socketPath = join(dir, 'admin.sock');
  const pod = await ProxyPod.start({
    devicePort: 0,
    bindHost: '127.0.0.1',
    admin: { socketPath },
    logger: silentLogger(),
    processMetrics: false,
    ...opts,
  });
  return {
    pod,
    admin: new AdminCaller({ socketPath }),
    async stop() {
      await pod.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type { Answer };

/** Raw HTTP to the admin API, so tests can also send what a typed client never would. */
export class AdminCaller {
  constructor(
    private readonly target: { socketPath: string } | { host: string; port: number },
    private readonly token?: string,
  ) {}

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
            const headers = new Headers();
            for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) headers.set(name, String(value));
            resolve({ status: res.statusCode ?? 0, headers, body: parsed as T });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  put(serial: string, spec: Partial<SessionSpec> & { port: number }): Promise<Answer<SessionState>> {
    return this.request('PUT', `/v1/sessions/${encodeURIComponent(serial)}`, {
      id: `id-${serial}`,
      persistent: false,
      ipWhitelist: [],
      ...spec,
    });
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

export interface JoinedPair {
  client: net.Socket;
  device: net.Socket;
}

/**
 * The usual start of a data-plane test: puts a session, connects its client,
 * then its device (the registration line and `payload` in one write), and
 * waits until the proxy shows both connected. Nothing is read from the
 * sockets yet, so no byte is missed by whoever reads them next.
 */
export async function joinPair(
  admin: AdminCaller,
  devicePort: number,
  serial: string,
  spec: Partial<SessionSpec> & { port: number },
  device: { ending?: string; payload?: Buffer | string } = {},
): Promise<JoinedPair> {
  const put = await admin.put(serial, spec);
  if (put.status !== 200) throw new Error(`put ${serial}: ${put.status} ${JSON.stringify(put.body)}`);
  const client = await connect(spec.port);
  await waitFor(async () => (await admin.session(serial))?.clientConnected === true, 2000, `the client of ${serial}`);
  const deviceSocket = await connectDevice(devicePort, serial, device.ending, device.payload);
  await waitFor(async () => (await admin.session(serial))?.deviceConnected === true, 2000, `the device of ${serial}`);
  return { client, device: deviceSocket };
}
