import { Buffer } from "node:buffer";
import { ProxyProtocolError } from "../errors";

/**
 * PROXY protocol (HAProxy, https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt)
 * versions 1 (text) and 2 (binary): parse the header a load balancer writes
 * first on a connection, and build the v2 header we write toward backends.
 *
 * Pure: no I/O. The parser is incremental (the header may arrive split across
 * chunks at any offset) and bounded (v1: 107 bytes; v2: `maxV2Length`).
 */

/** "PROXY " — a v1 header starts with it. */
const V1_PREFIX = Buffer.from("PROXY ", "latin1");
/** "\r\n\r\n\0\r\nQUIT\n" — the v2 signature. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Longest v1 line, CRLF included (spec §2.1). */
export const V1_MAX_LENGTH = 107;
/** Signature + version/command + family/protocol + 2-byte length. */
const V2_FIXED = 16;

/** Version 2, byte 13: version (high nibble) and command (low nibble). */
const enum V2Command {
  Local = 0x20, // \x20: health checks etc.; use the connection's own addresses
  Proxy = 0x21, // \x21: relayed connection; addresses follow
}

/** Version 2, byte 14: address family (high nibble) and transport (low nibble). */
const enum V2Family {
  Unspec = 0x00, // AF_UNSPEC
  Tcp4 = 0x11, // AF_INET, STREAM
  Udp4 = 0x12, // AF_INET, DGRAM
  Tcp6 = 0x21, // AF_INET6, STREAM
  Udp6 = 0x22, // AF_INET6, DGRAM
  UnixStream = 0x31, // AF_UNIX, STREAM
  UnixDgram = 0x32, // AF_UNIX, DGRAM
}

export interface ProxyAddress {
  /** Dotted quad or RFC 5952 IPv6 text (IPv4-mapped as "::ffff:a.b.c.d"). */
  readonly address: string;
  readonly port: number;
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /**
   * The relayed connection's endpoints; null for v2 LOCAL, v1 UNKNOWN and
   * families without IP addresses (the connection's own addresses apply).
   */
  readonly source: ProxyAddress | null;
  readonly destination: ProxyAddress | null;
}

/** What the first bytes of a connection are, as far as they go. */
export const enum ProxySniff {
  /** Not enough bytes to tell. */
  Maybe,
  /** They start with a v1 prefix or the v2 signature. */
  Proxy,
  /** They cannot start a PROXY header. */
  NotProxy,
}

/** Classifies `bytes` (a connection's first bytes) without consuming them. */
export function sniffProxyHeader(bytes: Uint8Array): ProxySniff {
  const n = bytes.length;
  if (n === 0) return ProxySniff.Maybe;
  const sig = bytes[0] === V1_PREFIX[0] ? V1_PREFIX : bytes[0] === V2_SIGNATURE[0] ? V2_SIGNATURE : null;
  if (sig === null) return ProxySniff.NotProxy;
  const m = n < sig.length ? n : sig.length;
  for (let i = 1; i < m; i++) if (bytes[i] !== sig[i]) return ProxySniff.NotProxy;
  return m === sig.length ? ProxySniff.Proxy : ProxySniff.Maybe;
}

export const enum ProxyParseStatus {
  /** Feed more bytes. */
  NeedMore,
  /** `header` and `rest` are set. */
  Done,
  /** The bytes do not start a PROXY header; `rest` holds all of them. */
  NotProxy,
}

export interface ProxyHeaderParserOptions {
  /** Largest v2 header accepted (16-byte prefix + addresses + TLVs). Default 4096. */
  maxV2Length?: number;
  /**
   * Done as soon as a v1 prefix or the v2 signature is seen, with `header`
   * null and nothing after it read: for peers that may not send one at all.
   */
  signatureOnly?: boolean;
}

/**
 * Reads one PROXY header (v1 or v2) from the start of a byte stream.
 *
 * push() returns NeedMore until it can decide; then `header` (Done) and
 * `rest` — the bytes after the header, or for NotProxy every byte pushed, or
 * null when there are none — are set. A chunk that ends the decision is
 * returned as a view (never copied) when nothing was buffered before it.
 * Throws ProxyProtocolError for a header that starts well and then is
 * malformed or too long. Use once per connection.
 */
export class ProxyHeaderParser {
  header: ProxyHeader | null;
  rest: Buffer | null;
  private readonly maxV2Length: number;
  private readonly signatureOnly: boolean;
  /** Bytes kept while undecided (at most max(107, maxV2Length)). */
  private buffered: Buffer | null;

  constructor(options: ProxyHeaderParserOptions = {}) {
    this.header = null;
    this.rest = null;
    this.maxV2Length = options.maxV2Length ?? 4096;
    this.signatureOnly = options.signatureOnly ?? false;
    this.buffered = null;
  }

  push(chunk: Buffer): ProxyParseStatus {
    const buf = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    const sniff = sniffProxyHeader(buf);
    if (sniff === ProxySniff.NotProxy) {
      this.buffered = null;
      this.rest = buf.length > 0 ? buf : null;
      return ProxyParseStatus.NotProxy;
    }
    if (sniff === ProxySniff.Proxy && this.signatureOnly) {
      this.buffered = null;
      return ProxyParseStatus.Done;
    }
    const used = sniff === ProxySniff.Maybe ? 0 : buf[0] === V1_PREFIX[0] ? this.parseV1(buf) : this.parseV2(buf);
    if (used === 0) {
      // keep a copy: `chunk` belongs to the caller
      this.buffered = buf === chunk ? Buffer.from(chunk) : buf;
      return ProxyParseStatus.NeedMore;
    }
    this.buffered = null;
    this.rest = used < buf.length ? buf.subarray(used) : null;
    return ProxyParseStatus.Done;
  }

  /** Bytes consumed by a complete v1 line, or 0 if it is not complete yet. */
  private parseV1(buf: Buffer): number {
    const limit = buf.length < V1_MAX_LENGTH ? buf.length : V1_MAX_LENGTH;
    let end = -1;
    for (let i = V1_PREFIX.length; i < limit; i++) {
      if (buf[i] === 0x0a) {
        end = i;
        break;
      }
    }
    if (end < 0) {
      if (buf.length >= V1_MAX_LENGTH) throw new ProxyProtocolError(`PROXY v1 header longer than ${V1_MAX_LENGTH} bytes`);
      return 0;
    }
    if (buf[end - 1] !== 0x0d) throw new ProxyProtocolError("PROXY v1 header does not end with CRLF");
    const line = buf.toString("latin1", V1_PREFIX.length, end - 1);
    this.header = parseV1Line(line);
    return end + 1;
  }

  /** Bytes consumed by a complete v2 header, or 0 if it is not complete yet. */
  private parseV2(buf: Buffer): number {
    if (buf.length < V2_FIXED) return 0;
    const verCmd = buf[12];
    const fam = buf[13];
    const len = buf.readUInt16BE(14);
    const total = V2_FIXED + len;
    if (verCmd >> 4 !== 2) throw new ProxyProtocolError(`PROXY v2 header has version ${verCmd >> 4}`);
    if (total > this.maxV2Length) throw new ProxyProtocolError(`PROXY v2 header of ${total} bytes exceeds the limit of ${this.maxV2Length}`);
    if (buf.length < total) return 0;
    if (verCmd === V2Command.Local) {
      this.header = { version: 2, source: null, destination: null };
      return total;
    }
    if (verCmd !== V2Command.Proxy) throw new ProxyProtocolError(`PROXY v2 header has unknown command ${verCmd & 0x0f}`);
    switch (fam) {
      case V2Family.Tcp4: {
        if (len < 12) throw new ProxyProtocolError(`PROXY v2 TCP4 address block of ${len} bytes (want 12)`);
        const a = V2_FIXED;
        this.header = {
          version: 2,
          source: { address: formatIPv4(buf, a), port: buf.readUInt16BE(a + 8) },
          destination: { address: formatIPv4(buf, a + 4), port: buf.readUInt16BE(a + 10) },
        };
        return total;
      }
      case V2Family.Tcp6: {
        if (len < 36) throw new ProxyProtocolError(`PROXY v2 TCP6 address block of ${len} bytes (want 36)`);
        const a = V2_FIXED;
        this.header = {
          version: 2,
          source: { address: formatIPv6(buf, a), port: buf.readUInt16BE(a + 32) },
          destination: { address: formatIPv6(buf, a + 16), port: buf.readUInt16BE(a + 34) },
        };
        return total;
      }
      case V2Family.Unspec:
      case V2Family.UnixStream:
        // no IP addresses to use: the connection's own apply (spec §2.2)
        this.header = { version: 2, source: null, destination: null };
        return total;
      case V2Family.Udp4:
      case V2Family.Udp6:
      case V2Family.UnixDgram:
        throw new ProxyProtocolError("PROXY v2 header describes a datagram connection");
      default:
        throw new ProxyProtocolError(`PROXY v2 header has unknown family/protocol 0x${fam.toString(16)}`);
    }
  }
}

/** "TCP4 src dst sport dport", "TCP6 …" or "UNKNOWN[ anything]" (the part after "PROXY "). */
function parseV1Line(line: string): ProxyHeader {
  if (line === "UNKNOWN" || line.startsWith("UNKNOWN ")) return { version: 1, source: null, destination: null };
  const parts = line.split(" ");
  if (parts.length !== 5) throw new ProxyProtocolError("PROXY v1 header must be 'PROXY TCP4|TCP6 src dst sport dport'");
  const [proto, src, dst, sport, dport] = parts;
  let s: string | null;
  let d: string | null;
  if (proto === "TCP4") {
    s = canonicalIPv4(src);
    d = canonicalIPv4(dst);
  } else if (proto === "TCP6") {
    s = canonicalIPv6(src);
    d = canonicalIPv6(dst);
  } else {
    throw new ProxyProtocolError(`PROXY v1 header has unknown protocol ${JSON.stringify(proto)}`);
  }
  if (s === null || d === null) throw new ProxyProtocolError(`PROXY v1 header has a bad ${proto} address`);
  const sp = parsePort(sport);
  const dp = parsePort(dport);
  if (sp < 0 || dp < 0) throw new ProxyProtocolError("PROXY v1 header has a bad port");
  return { version: 1, source: { address: s, port: sp }, destination: { address: d, port: dp } };
}

function parsePort(s: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

/** 4 bytes of a dotted quad, or null. */
export function parseIPv4(s: string): Buffer | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = Buffer.allocUnsafe(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i])) return null;
    const v = Number(parts[i]);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

/** 16 bytes of an IPv6 address (with "::" and a trailing dotted quad allowed), or null. */
export function parseIPv6(s: string): Buffer | null {
  if (s.length < 2 || s.length > 45) return null;
  const out = Buffer.alloc(16);
  const dbl = s.indexOf("::");
  if (dbl !== s.lastIndexOf("::")) return null;
  const head = dbl < 0 ? s : s.slice(0, dbl);
  const tail = dbl < 0 ? "" : s.slice(dbl + 2);
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const words: number[] = [];
  const all = [...headGroups, ...tailGroups];
  // a dotted quad may end the address
  let v4: Buffer | null = null;
  if (all.length > 0 && all[all.length - 1].includes(".")) {
    v4 = parseIPv4(all[all.length - 1]);
    if (v4 === null) return null;
  }
  for (let i = 0; i < all.length - (v4 !== null ? 1 : 0); i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return null;
    words.push(parseInt(all[i], 16));
  }
  const totalWords = words.length + (v4 !== null ? 2 : 0);
  if (dbl < 0 ? totalWords !== 8 : totalWords > 7) return null;
  const headWords = headGroups.length - (v4 !== null && tailGroups.length === 0 ? 1 : 0);
  for (let i = 0; i < headWords; i++) out.writeUInt16BE(words[i], i * 2);
  const tailWordCount = words.length - headWords;
  const tailStart = 16 - (v4 !== null ? 4 : 0) - tailWordCount * 2;
  for (let i = 0; i < tailWordCount; i++) out.writeUInt16BE(words[headWords + i], tailStart + i * 2);
  if (v4 !== null) v4.copy(out, 12);
  return out;
}

function canonicalIPv4(s: string): string | null {
  const b = parseIPv4(s);
  return b === null ? null : formatIPv4(b, 0);
}

function canonicalIPv6(s: string): string | null {
  const b = parseIPv6(s);
  return b === null ? null : formatIPv6(b, 0);
}

function formatIPv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** RFC 5952 text of the 16 bytes at `at`; IPv4-mapped addresses as "::ffff:a.b.c.d". */
export function formatIPv6(b: Buffer, at: number): string {
  let mapped = b.readUInt16BE(at + 10) === 0xffff;
  for (let i = 0; i < 10 && mapped; i++) if (b[at + i] !== 0) mapped = false;
  if (mapped) return `::ffff:${formatIPv4(b, at + 12)}`;
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(b.readUInt16BE(at + i * 2));
  // longest run of zero words (length ≥ 2), first one on ties
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(w);
  return `${hex(w.slice(0, bestAt))}::${hex(w.slice(bestAt + bestLen))}`;
}

/** 16 bytes for an IPv4 or IPv6 address text (IPv4 as IPv4-mapped IPv6). */
function toIPv6Bytes(address: string): Buffer | null {
  const v4 = parseIPv4(address);
  if (v4 !== null) {
    const out = Buffer.alloc(16);
    out.writeUInt16BE(0xffff, 10);
    v4.copy(out, 12);
    return out;
  }
  return parseIPv6(address);
}

/**
 * A v2 PROXY header (command PROXY, TCP) for a connection from `source` to
 * `destination`. Both IPv4: TCP4; otherwise TCP6, with IPv4 addresses
 * written IPv4-mapped. Throws ProxyProtocolError for an address that is not
 * an IP address.
 */
export function buildProxyV2Header(source: ProxyAddress, destination: ProxyAddress): Buffer {
  const s4 = parseIPv4(source.address);
  const d4 = parseIPv4(destination.address);
  if (s4 !== null && d4 !== null) return v2Header(V2Family.Tcp4, s4, d4, source.port, destination.port);
  const s6 = toIPv6Bytes(source.address);
  const d6 = toIPv6Bytes(destination.address);
  if (s6 === null || d6 === null) {
    throw new ProxyProtocolError(`cannot build a PROXY header from ${source.address} to ${destination.address}: not IP addresses`);
  }
  return v2Header(V2Family.Tcp6, s6, d6, source.port, destination.port);
}

/** Signature, PROXY command, family, then both addresses (4 or 16 bytes each) and both ports. */
function v2Header(family: V2Family, src: Buffer, dst: Buffer, srcPort: number, dstPort: number): Buffer {
  const addrLen = src.length;
  const bodyLen = 2 * addrLen + 4;
  const out = Buffer.allocUnsafe(V2_FIXED + bodyLen);
  V2_SIGNATURE.copy(out, 0);
  out[12] = V2Command.Proxy;
  out[13] = family;
  out.writeUInt16BE(bodyLen, 14);
  src.copy(out, V2_FIXED);
  dst.copy(out, V2_FIXED + addrLen);
  out.writeUInt16BE(srcPort, V2_FIXED + 2 * addrLen);
  out.writeUInt16BE(dstPort, V2_FIXED + 2 * addrLen + 2);
  return out;
}

/** A v1 header line ("PROXY TCP4 … \r\n"); for tests and tools. */
export function buildProxyV1Header(source: ProxyAddress, destination: ProxyAddress): Buffer {
  const v4 = parseIPv4(source.address) !== null && parseIPv4(destination.address) !== null;
  return Buffer.from(`PROXY ${v4 ? "TCP4" : "TCP6"} ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`, "latin1");
}
