// Helpers for interoperability tests with real third-party programs (mbpoll,
// iperf, a pymodbus device): the check that they are installed, and a relay
// that turns any local TCP server into a "device" that registers at the
// proxy's device port. Processes are started with ./processes.ts.
import { spawnSync } from 'node:child_process';
import net from 'node:net';

/** Debian's interpreter, where python3-pymodbus is installed (a pyenv python3 on PATH may lack it). */
export const PYTHON = process.env.CCCP_INTEROP_PYTHON ?? '/usr/bin/python3';

/** Throws naming every missing program, with the command that installs them. */
export function requirePrograms(names: string[]): void {
  const missing = names.filter((name) => spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0);
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}: run test/setup/install-deps.sh`);
}

/**
 * Makes a local TCP server look like a field device: connects to the proxy's
 * device port and sends `serial` + CR, then, when the first bytes from the
 * client arrive, connects to `targetPort` and joins the two connections.
 * Connecting lazily suits client-first protocols (iperf, Modbus) whose
 * servers time a test from the moment they accept.
 */
export class DeviceRelay {
  readonly upstream: net.Socket;
  private target: net.Socket | undefined;

  private constructor(
    upstream: net.Socket,
    readonly targetPort: number,
  ) {
    this.upstream = upstream;
    upstream.on('error', () => {});
    upstream.once('data', (first: Buffer) => {
      upstream.pause();
      const target = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true }, () => {
        target.setNoDelay(true);
        target.write(first);
        upstream.pipe(target);
        target.pipe(upstream);
        upstream.resume();
      });
      target.on('error', () => upstream.destroy());
      upstream.on('close', () => target.destroy());
      this.target = target;
    });
  }

  static async connect(devicePort: number, serial: string, targetPort: number): Promise<DeviceRelay> {
    const upstream = net.connect({ port: devicePort, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      upstream.once('connect', resolve);
      upstream.once('error', reject);
    });
    upstream.setNoDelay(true);
    upstream.write(`${serial}\r`);
    return new DeviceRelay(upstream, targetPort);
  }

  close(): void {
    this.upstream.destroy();
    this.target?.destroy();
  }
}
