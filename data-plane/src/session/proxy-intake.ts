import type { Buffer } from "node:buffer";
import { BlockList, isIPv4, isIPv6 } from "node:net";
import type { ProxyProtocol } from "@mysqlgw/proto";
import { ProxyProtocolError } from "../errors";
import { ProxyHeaderParser, ProxyParseStatus, buildProxyV2Header, type ProxyHeader } from "../protocol/proxy-protocol";

/**
 * The inbound side of the PROXY protocol: which peers of a listener may tell
 * us the real client address, and the first-bytes state machine of one
 * connection. The outbound side is `proxyHeaderFor`.
 */

/** A set of CIDRs (IPv4 and IPv6; IPv4-mapped IPv6 peers match IPv4 ranges). */
export class TrustedPeers {
  readonly cidrs: readonly string[];
  /** Entries that are not a CIDR or address (skipped: trusting less is the safe side). */
  readonly invalid: readonly string[];
  private readonly list: BlockList;

  constructor(cidrs: readonly string[]) {
    this.list = new BlockList();
    const ok: string[] = [];
    const bad: string[] = [];
    for (const c of cidrs) {
      const r = parseCidr(c);
      if (r === null) {
        bad.push(c);
        continue;
      }
      this.list.addSubnet(r.address, r.prefix, r.family);
      ok.push(c);
    }
    this.cidrs = ok;
    this.invalid = bad;
  }

  has(address: string): boolean {
    const a = address.startsWith("::ffff:") && isIPv4(address.slice(7)) ? address.slice(7) : address;
    if (isIPv4(a)) return this.list.check(a, "ipv4");
    if (isIPv6(a)) return this.list.check(a, "ipv6");
    return false;
  }
}

/** "a.b.c.d/n", "v6/n", or a bare address (a /32 or /128); null if invalid. */
export function parseCidr(s: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } | null {
  const slash = s.indexOf("/");
  const address = slash < 0 ? s : s.slice(0, slash);
  const family = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : null;
  if (family === null) return null;
  const max = family === "ipv4" ? 32 : 128;
  if (slash < 0) return { address, prefix: max, family };
  const p = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) return null;
  return { address, prefix: Number(p), family };
}

/** A listener's proxy_protocol, compiled once per config version. */
export interface ProxyProtocolSettings {
  readonly trusted: TrustedPeers;
  readonly required: boolean;
}

export function compileProxyProtocol(p: ProxyProtocol | undefined): ProxyProtocolSettings | null {
  if (p === undefined || (p.trustedCidrs.length === 0 && !p.required)) return null;
  return { trusted: new TrustedPeers(p.trustedCidrs), required: p.required };
}

export const enum IntakeMode {
  /** The peer may not send a PROXY header: one closes the connection. */
  Untrusted,
  /** A trusted peer that must send a header: it is read before the greeting. */
  TrustedRequired,
  /** A trusted peer that may send a header, before or after the greeting. */
  TrustedOptional,
}

/**
 * Judges the first bytes of one client connection. Until push() returns
 * true the session feeds every chunk here instead of to its packet framer;
 * then `header` (null: none was sent) and `rest` (the bytes that follow, for
 * the MySQL handshake; null if none) are set. push() throws
 * ProxyProtocolError when the connection must be closed: a header from an
 * untrusted peer, no header from a trusted peer that must send one, or a
 * malformed header.
 *
 * Decided after at most 2 bytes for a MySQL client (its first packet's length
 * bytes cannot spell "PR" or "\r\n"), without copying them.
 */
export class ProxyIntake {
  readonly mode: IntakeMode;
  header: ProxyHeader | null;
  rest: Buffer | null;
  private readonly peer: string;
  private readonly parser: ProxyHeaderParser;

  constructor(settings: ProxyProtocolSettings | null, peerAddress: string) {
    this.peer = peerAddress;
    this.mode =
      settings === null || !settings.trusted.has(peerAddress) ? IntakeMode.Untrusted : settings.required ? IntakeMode.TrustedRequired : IntakeMode.TrustedOptional;
    this.header = null;
    this.rest = null;
    this.parser = new ProxyHeaderParser({ signatureOnly: this.mode === IntakeMode.Untrusted });
  }

  /** True when the greeting must wait for the header. */
  get waitsBeforeGreeting(): boolean {
    return this.mode === IntakeMode.TrustedRequired;
  }

  push(chunk: Buffer): boolean {
    const status = this.parser.push(chunk);
    switch (status) {
      case ProxyParseStatus.NeedMore:
        return false;
      case ProxyParseStatus.NotProxy:
        if (this.mode === IntakeMode.TrustedRequired) {
          throw new ProxyProtocolError(`peer ${this.peer} is trusted and must send a PROXY header (proxyProtocol.required), but sent none`);
        }
        this.rest = this.parser.rest;
        return true;
      default:
        if (this.mode === IntakeMode.Untrusted) {
          throw new ProxyProtocolError(`peer ${this.peer} sent a PROXY header but is not in the listener's proxyProtocol.trustedCidrs`);
        }
        this.header = this.parser.header;
        this.rest = this.parser.rest;
        return true;
    }
  }
}

/** "::ffff:1.2.3.4" → "1.2.3.4"; anything else unchanged. */
export function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/**
 * The v2 header for a backend connection of a client at `clientHost`:`clientPort`
 * (its real address, after any inbound PROXY header) that reached this data
 * plane at `localHost`:`localPort`.
 */
export function proxyHeaderFor(clientHost: string, clientPort: number, localHost: string, localPort: number): Buffer {
  return buildProxyV2Header({ address: plainAddress(clientHost), port: clientPort }, { address: plainAddress(localHost), port: localPort });
}
