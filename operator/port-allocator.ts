// Session ports from an inclusive range. Pure: no sockets, the clock injected.
//
// Allocation is round-robin after the last allocated port, so a port freed a
// moment ago is handed out again only when the rest of the range is taken: a
// stale client reconnecting to a reused port would otherwise reach another
// device. A port that failed to bind (another process holds it) is
// quarantined for a while instead of being retried at once.

export interface PortRange {
  min: number;
  max: number;
}

export interface PortAllocatorOptions extends PortRange {
  /** How long a port that failed to bind stays out of rotation. */
  quarantineMs?: number;
  now?: () => number;
}

export class PortAllocator {
  readonly min: number;
  readonly max: number;
  private readonly quarantineMs: number;
  private readonly now: () => number;
  private readonly ownerByPort = new Map<number, string>();
  private readonly portByOwner = new Map<string, number>();
  private readonly quarantinedUntil = new Map<number, number>();
  /** The last port handed out; the next search starts after it. */
  private cursor: number;

  constructor(options: PortAllocatorOptions) {
    if (
      !Number.isInteger(options.min) ||
      !Number.isInteger(options.max) ||
      options.min < 1 ||
      options.max > 65535 ||
      options.min > options.max
    ) {
      throw new RangeError(`Invalid port range ${options.min}-${options.max}`);
    }
    this.min = options.min;
    this.max = options.max;
    this.quarantineMs = options.quarantineMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.cursor = options.max;
  }

  get size(): number {
    return this.max - this.min + 1;
  }

  get allocatedCount(): number {
    return this.ownerByPort.size;
  }

  /** Free ports still out of rotation after failing to bind. */
  quarantinedCount(now = this.now()): number {
    let count = 0;
    for (const [port, until] of this.quarantinedUntil) if (until > now && !this.ownerByPort.has(port)) count++;
    return count;
  }

  inRange(port: number): boolean {
    return Number.isInteger(port) && port >= this.min && port <= this.max;
  }

  ownerOf(port: number): string | undefined {
    return this.ownerByPort.get(port);
  }

  portOf(owner: string): number | undefined {
    return this.portByOwner.get(owner);
  }

  /**
   * Records an existing allocation (rebuilding the table from stored
   * sessions). False when the port is outside the range or held by another owner.
   */
  reserve(port: number, owner: string): boolean {
    if (!this.inRange(port)) return false;
    const holder = this.ownerByPort.get(port);
    if (holder !== undefined) return holder === owner;
    this.releaseOwner(owner);
    this.ownerByPort.set(port, owner);
    this.portByOwner.set(owner, port);
    return true;
  }

  /** A port for owner (its current one if it holds one), or undefined when none is free. */
  allocate(owner: string): number | undefined {
    const held = this.portByOwner.get(owner);
    if (held !== undefined) return held;
    const now = this.now();
    for (let step = 1; step <= this.size; step++) {
      const port = this.min + ((this.cursor - this.min + step) % this.size);
      if (this.ownerByPort.has(port) || this.isQuarantined(port, now)) continue;
      this.cursor = port;
      this.ownerByPort.set(port, owner);
      this.portByOwner.set(owner, port);
      return port;
    }
    return undefined;
  }

  release(port: number): void {
    const owner = this.ownerByPort.get(port);
    if (owner === undefined) return;
    this.ownerByPort.delete(port);
    this.portByOwner.delete(owner);
  }

  releaseOwner(owner: string): void {
    const port = this.portByOwner.get(owner);
    if (port !== undefined) this.release(port);
  }

  /** Frees the port and keeps it out of rotation for the quarantine time. */
  quarantine(port: number): void {
    this.release(port);
    if (this.inRange(port)) this.quarantinedUntil.set(port, this.now() + this.quarantineMs);
  }

  isQuarantined(port: number, now = this.now()): boolean {
    const until = this.quarantinedUntil.get(port);
    if (until === undefined) return false;
    if (until > now) return true;
    this.quarantinedUntil.delete(port);
    return false;
  }
}
