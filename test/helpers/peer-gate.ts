// A gate in front of a pod's peer port, for the races and failures that
// timing alone rarely produces: it passes connections through, holds the
// pod's answers until released, or accepts connections and stays silent
// (a hung pod).
import net from 'node:net';

export type GateMode = 'pass' | 'hold-answers' | 'silent';

export class PeerGate {
  mode: GateMode = 'pass';
  private readonly server = net.createServer({ allowHalfOpen: true }, (socket) => this.onConnection(socket));
  private readonly sockets = new Set<net.Socket>();
  private readonly held: Array<() => void> = [];

  constructor(private readonly upstream: { host: string; port: number }) {}

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve) => this.server.listen(port, host, resolve));
  }

  get heldAnswers(): number {
    return this.held.length;
  }

  /** Lets the held answers go and passes everything from now on. */
  release(): void {
    this.mode = 'pass';
    for (const go of this.held.splice(0)) go();
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
  }

  private onConnection(socket: net.Socket): void {
    this.track(socket);
    if (this.mode === 'silent') {
      socket.resume();
      return;
    }
    const upstream = net.connect({ ...this.upstream, allowHalfOpen: true });
    this.track(upstream);
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    socket.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (this.mode !== 'hold-answers') return void socket.write(chunk);
      upstream.pause();
      this.held.push(() => {
        socket.write(chunk);
        upstream.resume();
      });
    });
    upstream.on('end', () => {
      if (this.mode !== 'hold-answers') return void socket.end();
      this.held.push(() => socket.end());
    });
  }
}
