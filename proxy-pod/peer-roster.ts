// Which other pods of the release this pod offers devices to and announces
// its sessions to: the ordinals below the release's pod count, as the
// operator last said (PUT /v1/peers) or CCCP_PROXY_REPLICAS gave at start,
// and every pod that has contacted this one (a pod added since). The pod
// count is not in the pod's own settings, so scaling the release up
// restarts no pod. Pure; the list is shared with the forwarder and the
// announcer and changed in place.

export class PeerRoster {
  /** The other pods' ordinals, ascending. */
  readonly ordinals: number[] = [];
  private told: number | undefined;
  private readonly learned = new Set<number>();

  constructor(
    readonly self: number,
    replicas?: number,
  ) {
    if (replicas !== undefined) this.setReplicas(replicas);
  }

  /** The release's pod count as last told; undefined before anyone said. */
  get replicas(): number | undefined {
    return this.told;
  }

  /** The release has `replicas` pods; returns the ordinals this adds. Pods that contacted this one stay. */
  setReplicas(replicas: number): number[] {
    this.told = replicas;
    return this.rebuild();
  }

  /** The pod of this ordinal contacted this one; returns it when it was not known. */
  learn(ordinal: number): number[] {
    if (ordinal === this.self || this.learned.has(ordinal)) return [];
    this.learned.add(ordinal);
    return this.rebuild();
  }

  private rebuild(): number[] {
    const wanted = new Set(this.learned);
    for (let ordinal = 0; ordinal < (this.told ?? 0); ordinal++) wanted.add(ordinal);
    wanted.delete(this.self);
    const added = [...wanted].filter((o) => !this.ordinals.includes(o));
    this.ordinals.splice(0, this.ordinals.length, ...[...wanted].sort((a, b) => a - b));
    return added;
  }
}
