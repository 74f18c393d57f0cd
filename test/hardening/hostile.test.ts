// Hostile input on real sockets: registrations that try to reach another
// device's session, IPv4-mapped IPv6 sources against the whitelist, and
// whitelist entries in odd forms.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, freePorts, Received, sleep } from '../helpers/net.ts';
import { joinPair, startProxy, type TestProxy } from '../helpers/proxy.ts';

const test = suite('hostile input');
let proxy: TestProxy;
let ports: number[];
const sockets: net.Socket[] = [];

test.before(async () => {
  // Dual-stack: IPv4 clients then appear as ::ffff:a.b.c.d, as behind many load balancers.
  proxy = await startProxy({ bindHost: '::' });
  ports = await freePorts(6);
});

test.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

test.after(async () => {
  await proxy.stop();
});

test('a serial with control bytes or spaces never reaches the session of the serial it resembles', async () => {
  await proxy.admin.put('CLD-1', { port: ports[0]!, persistent: true });
  const lookalikes = [
    'CLD-1\x00\r',
    'CLD-1 \r',
    ' CLD-1\r',
    '\x00CLD-1\r',
    'CLD-1\t\r',
    'CLD-1\x1b[0m\r',
    'CLD-\x001\r',
    'CLD-1\x7f\r',
    'cld-1\r',
  ];
  for (const line of lookalikes) {
    const device = new Received(await connect(proxy.pod.devicePort));
    sockets.push(device.socket);
    device.socket.write(line, 'latin1');
    await sleep(30);
  }
  await sleep(200);
  assert.not.ok((await proxy.admin.session('CLD-1'))?.deviceConnected, 'no lookalike attached to CLD-1');
});

test('bytes after the line ending are payload and never register the connection again', async () => {
  await proxy.admin.put('HOST-B', { port: ports[2]!, persistent: true });
  const pair = await joinPair(proxy.admin, proxy.pod.devicePort, 'HOST-A', { port: ports[1]!, persistent: true }, { payload: 'HOST-B\r' });
  const clientA = new Received(pair.client);
  const device = pair.device;
  sockets.push(clientA.socket, device);
  device.write('HOST-B\n');
  assert.is((await clientA.untilLength(14)).toString(), 'HOST-B\rHOST-B\n');
  assert.not.ok((await proxy.admin.session('HOST-B'))?.deviceConnected, 'HOST-B never got a device');
});

test('an IPv4-mapped IPv6 source compares as IPv4 against the whitelist, both ways', async () => {
  const cases: Array<[string[], boolean]> = [
    [['127.0.0.2'], false],
    [['127.0.0.1'], true],
    [['::ffff:127.0.0.1'], true],
    [['127.0.0.0/8'], true],
    [['::ffff:127.0.0.0/104'], true],
    [['::1'], false],
  ];
  for (const [whitelist, admitted] of cases) {
    const port = ports[3]!;
    await proxy.admin.put('MAPPED', { id: `mapped-${whitelist[0]}`, port, ipWhitelist: whitelist, persistent: true });
    const client = new Received(await connect(port));
    sockets.push(client.socket);
    await sleep(100);
    const state = await proxy.admin.session('MAPPED');
    assert.is(state?.clientConnected ?? false, admitted, `whitelist ${whitelist} with a client seen as ${client.socket.localAddress}`);
    if (state?.clientConnected) assert.match(state.clientAddress ?? '', '::ffff:127.0.0.1');
    client.socket.destroy();
    await proxy.admin.delete('MAPPED');
  }
});

test('whitelist entries in odd forms are refused, not read as another address', async () => {
  const odd = [
    '127.1',
    '0x7f.0.0.1',
    '0x7f000001',
    '2130706433',
    '010.0.0.1',
    '127.0.0.1/08',
    '::ffff:127.0.0.1/8',
    'fe80::1%eth0',
    '[::1]',
    '127.0.0.1/33',
    '127.0.0.1 ',
    '',
  ];
  for (const entry of odd) {
    const answer = await proxy.admin.request('PUT', '/v1/sessions/ODD', {
      id: 'odd',
      port: ports[4]!,
      persistent: false,
      ipWhitelist: [entry],
    });
    assert.is(answer.status, 400, `accepted ${JSON.stringify(entry)}`);
  }
});

test.run();
