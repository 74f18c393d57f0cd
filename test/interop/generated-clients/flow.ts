// The whole Control API flow through openapi-fetch typed by the types that
// openapi-typescript generates from the served /openapi.json: /on with a
// two-entry whitelist, a device and a client joined over TCP, /status,
// /sessions, /off, and typed errors. Type-checked with tsc --strict first.
import net from 'node:net';
import createClient from 'openapi-fetch';
import type { paths } from './schema.js';

const url = process.env.CCCP_URL!;
const devicePort = Number(process.env.CCCP_DEVICE_PORT);
const serial = process.env.CCCP_SERIAL!;
const api = createClient<paths>({ baseUrl: url });

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${what}`);
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

function receive(socket: net.Socket, size: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const timer = setTimeout(() => reject(new Error(`only ${JSON.stringify(data)} arrived`)), 5000);
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (data.length >= size) {
        clearTimeout(timer);
        resolve(data);
      }
    });
  });
}

const on = await api.GET('/on', { params: { query: { serial, persistent: true, ip_whitelist: ['127.0.0.1', '10.0.0.0/8'] } } });
if (on.error) throw new Error(`/on: ${on.error.code} ${on.error.message}`);
// Narrowed: no error means data is the Endpoint.
const { host, port } = on.data;

const device = await connect('127.0.0.1', devicePort);
device.write(`${serial}\r`);
const scada = await connect(host, port);
await new Promise((resolve) => setTimeout(resolve, 200));
const atClient = receive(scada, 4);
device.write('ping');
check((await atClient) === 'ping', 'ping reached the client');
const atDevice = receive(device, 5);
scada.write('pong!');
check((await atDevice) === 'pong!', 'pong reached the device');

let transferred = 0;
for (let i = 0; i < 50 && transferred !== 9; i++) {
  const status = await api.GET('/status', { params: { query: { serial } } });
  if (status.error) throw new Error(`/status: ${status.error.code}`);
  transferred = status.data.transferred;
  if (transferred === 9) {
    check(status.data.device_connected && status.data.client_connected, 'both connected');
    check(status.data.ip_whitelist.join(',') === '127.0.0.1,10.0.0.0/8', `whitelist ${status.data.ip_whitelist.join(',')}`);
    check(status.data.device.bytes_sent === 4 && status.data.client.bytes_sent === 5, 'bytes per direction');
    const persistent: boolean = status.data.persistent;
    check(persistent, 'persistent');
  } else {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
check(transferred === 9, `transferred ${transferred}`);

const page = await api.GET('/sessions', { params: { query: { limit: 100 } } });
if (page.error) throw new Error(`/sessions: ${page.error.code}`);
check(page.data.sessions.some((s) => s.serial === serial), 'listed');

const refused = await api.GET('/on', { params: { query: { serial, timeout: 0 } } });
check(refused.error?.code === 'invalid_parameter' && refused.error.parameter === 'timeout', 'a bad timeout is refused with its code');

const off = await api.GET('/off', { params: { query: { serial } } });
if (off.error) throw new Error(`/off: ${off.error.code}`);
const gone = await api.GET('/status', { params: { query: { serial } } });
check(gone.error?.code === 'session_not_found', 'gone after /off');
device.destroy();
scada.destroy();
console.log('typescript flow ok');
