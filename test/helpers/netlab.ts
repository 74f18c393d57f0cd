// A network lab on this machine only: a network namespace that plays the
// proxy's pod (its own addresses, its own sysctls), joined to the host by one
// clean veth pair (Control API, admin API, clients) and by emulated mobile
// links, one per device, shaped by test/netlab/link_emulator.py (this
// kernel has no sch_netem). Devices connect from the host end of their link
// to the namespace end. Everything is removed in `destroy()` and on exit.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const emulator = fileURLToPath(new URL('../netlab/link_emulator.py', import.meta.url));
const PREFIX = 'cccp-lab-';

export interface LinkShape {
  /** One-way delay; the round trip is twice this. */
  delayMs?: number;
  /** Standard deviation of the one-way delay. */
  jitterMs?: number;
  /** Packets lost at random, in each direction. */
  lossPct?: number;
  /** Bottleneck rate in each direction; 0 means none. */
  rateKbit?: number;
  /** Queue in front of the bottleneck, as time at its rate; beyond, packets are dropped. */
  queueMs?: number;
  /** Packets sent without the delay, so they overtake earlier ones. */
  reorderPct?: number;
  /** A flow silent for this long is dropped from then on, both ways (a carrier NAT forgets it); 0: no NAT. */
  natIdleS?: number;
  /** Every packet is dropped. */
  blackhole?: boolean;
}

/** 300 ms round trip with jitter, 2 % loss each way, 1 Mbit/s, some reordering. */
export const MOBILE_LINK: LinkShape = { delayMs: 150, jitterMs: 20, lossPct: 2, rateKbit: 1000, queueMs: 500, reorderPct: 2 };

export interface LabLink {
  /** The device's address (host end). */
  hostAddr: string;
  /** The proxy's address on this link (namespace end). */
  nsAddr: string;
}

const labs = new Set<NetLab>();
process.on('exit', () => {
  for (const lab of labs) lab.destroySync();
});

export class NetLab {
  private emulatorProcess: ChildProcess | undefined;
  private replies: Array<() => void> = [];
  private destroyed = false;

  private constructor(
    readonly ns: string,
    /** The host's address on the clean link. */
    readonly hostAddr: string,
    /** The namespace's address on the clean link: where the proxy is reached without shaping. */
    readonly nsAddr: string,
    readonly links: LabLink[],
  ) {}

  /** Creates the namespace, the clean link and `links` shaped links. Needs root, `ip` and python3. */
  static async create(opts: { links: number; shape?: LinkShape; seed?: number }): Promise<NetLab> {
    await removeStaleLabs();
    const octet = await freeSecondOctet();
    const tag = (process.pid % 1_679_616).toString(36).padStart(4, '0') + String.fromCharCode(97 + labs.size);
    const ns = `${PREFIX}${process.pid}-${labs.size}`;
    const base = `10.${octet}`;
    const links = Array.from({ length: opts.links }, (_, i) => ({ hostAddr: `${base}.${i + 1}.1`, nsAddr: `${base}.${i + 1}.2` }));
    const lab = new NetLab(ns, `${base}.0.1`, `${base}.0.2`, links);
    labs.add(lab);
    try {
      await ip('netns', 'add', ns);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('link', 'add', `l${tag}c`, 'type', 'veth', 'peer', 'name', `l${tag}C`);
      await ip('link', 'set', `l${tag}C`, 'netns', ns);
      await ip('addr', 'add', `${lab.hostAddr}/30`, 'dev', `l${tag}c`);
      await ip('link', 'set', `l${tag}c`, 'up');
      await ip('-n', ns, 'addr', 'add', `${lab.nsAddr}/30`, 'dev', `l${tag}C`);
      await ip('-n', ns, 'link', 'set', `l${tag}C`, 'up');
      if (opts.links > 0) await lab.startEmulator(tag, opts.shape ?? {}, opts.seed ?? 1);
      return lab;
    } catch (err) {
      lab.destroySync();
      throw err;
    }
  }

  /** The command prefix that runs a program inside the namespace (it execs, so the pid stays). */
  get exec(): string[] {
    return ['ip', 'netns', 'exec', this.ns];
  }

  /** Changes some of a link's shape at once (blackhole, NAT, loss...). */
  shape(link: number, shape: LinkShape): Promise<void> {
    const child = this.emulatorProcess;
    if (!child?.stdin) throw new Error('the lab has no shaped links');
    return new Promise((resolve) => {
      this.replies.push(resolve);
      child.stdin!.write(`${JSON.stringify({ link, shape })}\n`);
    });
  }

  /** Sets a sysctl inside the namespace only. */
  async sysctl(name: string, value: string | number): Promise<void> {
    await run('ip', ['netns', 'exec', this.ns, 'sysctl', '-q', '-w', `${name}=${value}`]);
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    labs.delete(this);
    this.emulatorProcess?.kill('SIGKILL');
    try {
      execFileSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' });
    } catch {}
  }

  private async startEmulator(tag: string, shape: LinkShape, seed: number): Promise<void> {
    const child = spawn(pythonPath(), [emulator], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.emulatorProcess = child;
    const lines = createInterface({ input: child.stdout! });
    const ready = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the link emulator exited with ${code}`)));
      lines.on('line', (line) => {
        if (line === 'ready') resolve();
        else if (line === 'ok') this.replies.shift()?.();
      });
    });
    const config = {
      ns: this.ns,
      seed,
      links: this.links.map((link, i) => ({
        hostIf: `l${tag}h${i}`,
        nsIf: `l${tag}n${i}`,
        hostAddr: link.hostAddr,
        nsAddr: link.nsAddr,
        shape,
      })),
    };
    child.stdin!.write(`${JSON.stringify(config)}\n`);
    await ready;
  }
}

function pythonPath(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (err) {
    throw new Error(`ip ${args.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? String(err)}`);
  }
}

/** A 10.X.0.0/16 that no interface on the host uses. */
async function freeSecondOctet(): Promise<number> {
  const { stdout } = await run('ip', ['-4', '-o', 'addr', 'show']);
  const taken = new Set([...stdout.matchAll(/inet 10\.(\d+)\./g)].map((m) => Number(m[1])));
  for (let attempt = 0; attempt < 100; attempt++) {
    const octet = 100 + Math.floor(Math.random() * 150);
    if (!taken.has(octet)) return octet;
  }
  throw new Error('no free 10.X.0.0/16 for the lab');
}

/** Namespaces left by a lab whose process is gone (a killed test run). */
async function removeStaleLabs(): Promise<void> {
  const names = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  for (const name of names) {
    const pid = Number(/^cccp-lab-(\d+)-/.exec(name)?.[1]);
    if (!pid || existsSync(`/proc/${pid}`)) continue;
    await run('ip', ['netns', 'del', name]).catch(() => undefined);
  }
}
