// PROXY protocol from a real sender: HAProxy in front of the proxy with
// `send-proxy` (v1) and `send-proxy-v2`, as a cloud load balancer with
// externalTrafficPolicy Cluster would be. HAProxy listens on 127.0.0.10 and
// reaches the proxy from 127.0.0.1; devices and clients connect to it from
// 127.0.0.2 and up, so only the header can tell the proxy who they are.
// Headers captured from HAProxy itself are then truncated and forged.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProxyEvent } from '../../common/admin-protocol.ts';
import { ProxyHeaderParser } from '../../proxy-pod/proxy-header.ts';
import { connect, freePort, freePortRange, listeningPorts, type PortRange, Received, waitFor } from '../helpers/net.ts';
import { type Started, startProcess } from '../helpers/processes.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';

const LB = '127.0.0.10';
const CLIENT = '127.0.0.2';
const STRANGER = '127.0.0.3';
const DEVICE = '127.0.0.4';
const OTHER_DEVICE = '127.0.0.5';
const HEADER_TIMEOUT_MS = 1000;

interface Rig {
  proxy: TestProxy;
  haproxy: Started;
  dir: string;
  range: PortRange;
  lbDevicePort: number;
  /** HAProxy's own header, as it sends it to a backend. */
  captured: Buffer;
  events: ProxyEvent[];
  sockets: net.Socket[];
}

function haproxyConfig(
  sendProxy: string,
  rig: { range: PortRange; lbDevicePort: number; devicePort: number; capture: number; captureBackend: number },
) {
  return [
    'global',
    '  nbthread 1',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend devices',
    `  bind ${LB}:${rig.lbDevicePort}`,
    '  default_backend device_port',
    'backend device_port',
    `  server proxy 127.0.0.1:${rig.devicePort} ${sendProxy}`,
    // Session ports one to one, as a LoadBalancer Service lists them: no port on the server keeps the client's.
    'frontend sessions',
    `  bind ${LB}:${rig.range.min}-${rig.range.max}`,
    '  default_backend session_ports',
    'backend session_ports',
    `  server proxy 127.0.0.1 ${sendProxy}`,
    'frontend capture',
    `  bind ${LB}:${rig.capture}`,
    '  default_backend capture',
    'backend capture',
    `  server capture 127.0.0.1:${rig.captureBackend} ${sendProxy}`,
    '',
  ].join('\n');
}

/** Starts a proxy expecting `version` on both listeners, HAProxy sending it, and captures one real header. */
async function startRig(version: 'v1' | 'v2'): Promise<Rig> {
  const proxy = await startProxy({
    proxyProtocol: { device: version, sessions: version, trustedSources: ['127.0.0.1'], headerTimeoutMs: HEADER_TIMEOUT_MS },
    deviceAllowlist: [DEVICE],
    lingerMs: 1000,
  });
  const events: ProxyEvent[] = [];
  proxy.pod.subscribe((event) => events.push(event));
  const range = await freePortRange(8);
  const [lbDevicePort, capture] = [await freePort(), await freePort()];
  const captureServer = net.createServer();
  // The header alone, however HAProxy segments it.
  const header = new Promise<Buffer>((resolve, reject) =>
    captureServer.once('connection', (socket) => {
      const parser = new ProxyHeaderParser(version);
      const seen: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => {
        seen.push(chunk);
        const step = parser.push(chunk);
        if (step.kind === 'incomplete') return;
        socket.destroy();
        const all = Buffer.concat(seen);
        if (step.kind === 'read') resolve(all.subarray(0, step.length));
        else reject(new Error(`HAProxy sent a header the parser refuses (${step.reason}): ${all.toString('hex')}`));
      });
    }),
  );
  await new Promise<void>((resolve) => captureServer.listen(0, '127.0.0.1', resolve));
  const captureBackend = (captureServer.address() as net.AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'cccp-haproxy-pp-'));
  const config = join(dir, 'haproxy.cfg');
  const sendProxy = version === 'v1' ? 'send-proxy' : 'send-proxy-v2';
  writeFileSync(config, haproxyConfig(sendProxy, { range, lbDevicePort, devicePort: proxy.pod.devicePort, capture, captureBackend }));
  const haproxy = await startProcess('haproxy', ['-db', '-f', config]);
  await waitFor(() => listeningPorts().has(lbDevicePort) && listeningPorts().has(range.max), 5000, 'haproxy to listen').catch(
    (err: Error) => {
      throw new Error(`${err.message}; haproxy said:\n${haproxy.output()}`);
    },
  );
  const probe = await connect(capture, { host: LB, localAddress: CLIENT });
  probe.write('x');
  const captured = await header;
  probe.destroy();
  captureServer.close();
  return { proxy, haproxy, dir, range, lbDevicePort, captured, events, sockets: [] };
}

async function stopRig(rig: Rig): Promise<void> {
  for (const socket of rig.sockets) socket.destroy();
  await rig.haproxy.stop();
  await rig.proxy.stop();
  rmSync(rig.dir, { recursive: true, force: true });
}

for (const version of ['v1', 'v2'] as const) {
  const test = suite(`PROXY protocol ${version} from HAProxy (${version === 'v1' ? 'send-proxy' : 'send-proxy-v2'})`);
  let rig: Rig;
  let nextPort = 0;

  test.before(async () => {
    rig = await startRig(version);
  });
  test.after(async () => {
    if (rig) await stopRig(rig);
  });

  const session = async (serial: string, ipWhitelist: string[]) => {
    const port = rig.range.min + nextPort++;
    const answer = await rig.proxy.admin.put(serial, { port, persistent: true, ipWhitelist });
    assert.is(answer.status, 200, JSON.stringify(answer.body));
    return port;
  };
  /** Connects from `from` to `port` on `host` (HAProxy by default) and writes `bytes`. */
  const open = async (port: number, from: string, bytes: Buffer | string = '', host = LB) => {
    const socket = await connect(port, { host, localAddress: from });
    rig.sockets.push(socket);
    if (bytes.length > 0) socket.write(bytes);
    return new Received(socket);
  };
  const state = (serial: string) => rig.proxy.admin.session(serial);
  const refusals = async (listener: string, reason: string) =>
    (await rig.proxy.pod.metrics.proxyHeadersRefused.get()).values.find((v) => v.labels.listener === listener && v.labels.reason === reason)
      ?.value ?? 0;

  test('HAProxy’s header is the one captured: the right version, naming the client’s 127.0.0.2', () => {
    if (version === 'v1') assert.match(rig.captured.toString('latin1'), /^PROXY TCP4 127\.0\.0\.2 127\.0\.0\.10 \d+ \d+\r\n$/);
    else assert.equal([...rig.captured.subarray(12, 14)], [0x21, 0x11]);
  });

  test('a client whitelisted by its own address is admitted through HAProxy; status shows it and the device’s, bytes flow both ways', async () => {
    const serial = `HA-${version}-join`;
    const port = await session(serial, [CLIENT]);
    const client = await open(port, CLIENT);
    await waitFor(async () => (await state(serial))?.clientConnected === true, 3000, 'the client to be admitted');
    // The registration line and the first payload in one write.
    const device = await open(rig.lbDevicePort, DEVICE, `${serial}\r\nfrom-device`);
    assert.is((await client.untilLength(11)).toString(), 'from-device');
    client.socket.write('from-client');
    assert.is((await device.untilLength(11)).toString(), 'from-client');
    const status = await state(serial);
    assert.is(status?.clientAddress, `${CLIENT}:${client.socket.localPort}`);
    assert.is(status?.deviceAddress, `${DEVICE}:${device.socket.localPort}`);
  });

  test('the whitelist refuses by the header: HAProxy’s own 127.0.0.1 is listed, the client behind it is not', async () => {
    const serial = `HA-${version}-refused`;
    const port = await session(serial, ['127.0.0.1']);
    const stranger = await open(port, STRANGER, 'hello');
    await stranger.untilClosed(3000);
    const status = await state(serial);
    assert.is(status?.clientsRefused, 1);
    assert.is(status?.clientConnected, false);
    const refusal = rig.events.find((e) => e.serial === serial && e.type === 'client-refused');
    assert.is(refusal?.address, `${STRANGER}:${stranger.socket.localPort}`);
  });

  test('a client writing its own PROXY header through HAProxy cannot pose as a whitelisted address', async () => {
    const serial = `HA-${version}-spoof`;
    const port = await session(serial, [CLIENT]);
    const spoof = `PROXY TCP4 ${CLIENT} 127.0.0.10 5555 ${port}\r\n`;
    const stranger = await open(port, STRANGER, spoof);
    await stranger.untilClosed(3000);
    assert.is((await state(serial))?.clientsRefused, 1);
  });

  test('the device allowlist decides by the header: HAProxy forwards two devices from 127.0.0.1, one allowed', async () => {
    const serial = `HA-${version}-allow`;
    const port = await session(serial, [CLIENT]);
    const client = await open(port, CLIENT);
    await waitFor(async () => (await state(serial))?.clientConnected === true, 3000, 'the client');
    const before =
      (await rig.proxy.pod.metrics.registrationsRejected.get()).values.find((v) => v.labels.reason === 'source-not-allowed')?.value ?? 0;
    const refused = await open(rig.lbDevicePort, OTHER_DEVICE, `${serial}\r\nnot-allowed`);
    await refused.untilClosed(3000);
    const after = (await rig.proxy.pod.metrics.registrationsRejected.get()).values.find(
      (v) => v.labels.reason === 'source-not-allowed',
    )?.value;
    assert.is(after, before + 1);
    await open(rig.lbDevicePort, DEVICE, `${serial}\r\nallowed`);
    assert.is((await client.untilLength(7)).toString(), 'allowed');
  });

  test('without HAProxy: no header, a truncated one, or one forged from HAProxy’s own is closed and never reaches the device', async () => {
    const serial = `HA-${version}-forged`;
    const port = await session(serial, []);
    // The device through HAProxy; a client through HAProxy would be admitted.
    const device = await open(rig.lbDevicePort, DEVICE, `${serial}\r\n`);
    await waitFor(async () => (await state(serial))?.deviceConnected === true, 3000, 'the device');
    const real = rig.captured;
    const forged: Array<[string, Buffer, string]> =
      version === 'v1'
        ? [
            ['no header', Buffer.from('plain bytes'), 'bad-signature'],
            ['a wrong signature', Buffer.concat([Buffer.from('PROXI'), real.subarray(5)]), 'bad-signature'],
            ['a bad family', Buffer.from(real.toString('latin1').replace('TCP4', 'TCP9')), 'bad-family'],
            ['a lone LF', Buffer.from(real.toString('latin1').replace('\r\n', '\n')), 'bad-line'],
            ['no CRLF in 107 bytes', Buffer.concat([real.subarray(0, real.length - 2), Buffer.alloc(120, 0x41)]), 'bad-line'],
          ]
        : [
            ['no header', Buffer.from('plain bytes'), 'bad-signature'],
            [
              'a wrong signature',
              Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b]), real.subarray(12)]),
              'bad-signature',
            ],
            ['a bad family', withByte(real, 13, 0x31), 'bad-family'],
            ['a bad version', withByte(real, 12, 0x31), 'bad-version'],
            ['a length too short for TCP4', withLength(real, 4), 'bad-length'],
            ['a length beyond the limit', withLength(real, 0xfff0), 'bad-length'],
          ];
    for (const [what, header, reason] of forged) {
      const before = await refusals('session', reason);
      const received = await open(port, '127.0.0.1', Buffer.concat([header, Buffer.from(`SECRET ${what}`)]), '127.0.0.1');
      await received.untilClosed(3000).catch(() => assert.unreachable(`${what}: not closed`));
      assert.is(await refusals('session', reason), before + 1, what);
    }
    const truncated = await open(port, '127.0.0.1', real.subarray(0, real.length - 3), '127.0.0.1');
    await truncated.untilClosed(HEADER_TIMEOUT_MS + 3000);
    assert.is(await refusals('session', 'timeout'), 1);
    // The same header is refused from a source outside the trusted list.
    const untrusted = await open(port, CLIENT, real, '127.0.0.1');
    await untrusted.untilClosed(3000);
    assert.is(await refusals('session', 'untrusted-source'), 1);
    const status = await state(serial);
    assert.is(status?.clientConnected, false);
    assert.is(status?.client.droppedBytes, 0);
    assert.is(device.length, 0, `the device received ${JSON.stringify(device.text())}`);
    // A client through HAProxy gets through: what was refused was the header.
    const client = await open(port, CLIENT, 'marker');
    assert.is((await device.untilLength(6)).toString(), 'marker');
    assert.not.ok(client.closedByPeer);
  });

  test.run();
}

function withByte(header: Buffer, index: number, value: number): Buffer {
  const copy = Buffer.from(header);
  copy[index] = value;
  return copy;
}

function withLength(header: Buffer, length: number): Buffer {
  const copy = Buffer.from(header);
  copy.writeUInt16BE(length, 14);
  return copy;
}
