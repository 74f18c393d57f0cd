// Matches a peer's address against a list of IPs and CIDRs (a session's
// client whitelist, or the device port's source allowlist).

import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses one entry; an IPv4-mapped IPv6 address or range becomes IPv4. */
export function parseAddressEntry(entry: string): Range {
  const text = entry;
  // ipaddr.js also reads legacy forms ("1.2.3", "0x7f.1"); an allowlist
  // entry must be the plain dotted-quad or IPv6 text a person would expect.
  // Zone ids (fe80::1%eth0) name an interface of this host, not a peer.
  const [base = '', prefix, ...rest] = text.split('/');
  if (isIP(base) === 0 || base.includes('%') || rest.length > 0 || (prefix !== undefined && !/^(0|[1-9]\d{0,2})$/.test(prefix))) {
    throw new Error(`"${entry}" is not an IP address or CIDR`);
  }
  if (prefix !== undefined) {
    const [address, bits] = ipaddr.parseCIDR(text);
    if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
      // Peers are compared as IPv4, so a mapped range must stay inside ::ffff:0:0/96.
      if (bits < 96) throw new Error(`"${entry}" is an IPv4-mapped address with a prefix shorter than 96`);
      return [(address as ipaddr.IPv6).toIPv4Address(), bits - 96];
    }
    return [address, bits];
  }
  const address = ipaddr.process(text);
  return [address, address.kind() === 'ipv4' ? 32 : 128];
}

/** Returns the message of why `entry` is not an IP or CIDR, or undefined when it is one. */
export function addressEntryError(entry: string): string | undefined {
  try {
    parseAddressEntry(entry);
    return undefined;
  } catch {
    return `"${entry}" is not an IP address or CIDR`;
  }
}

export class AddressMatcher {
  private readonly ranges: Range[];

  /** Throws on the first entry that is not an IP or CIDR. */
  constructor(readonly entries: readonly string[]) {
    this.ranges = entries.map(parseAddressEntry);
  }

  /** An empty list admits everyone. */
  get admitsAll(): boolean {
    return this.ranges.length === 0;
  }

  admits(address: string | undefined): boolean {
    if (this.ranges.length === 0) return true;
    if (!address || isIP(address) === 0) return false;
    const peer = ipaddr.process(address);
    return this.ranges.some(([range, bits]) => range.kind() === peer.kind() && peer.match(range, bits));
  }
}
