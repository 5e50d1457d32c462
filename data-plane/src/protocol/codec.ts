import { Buffer } from "node:buffer";
import { MalformedPacketError } from "../errors";
import { MAX_PACKET_PAYLOAD, PACKET_HEADER_SIZE } from "./constants";

/**
 * Pure, bounds-checked primitives. Every read past the end of the logical
 * packet raises MalformedPacketError; nothing reads beyond `end` even when the
 * underlying chunk holds the next packet.
 */

/** Bytes a length-encoded integer takes on the wire. */
export function lenEncIntSize(n: number | bigint): number {
  if (n < 251) return 1;
  if (n < 0x10000) return 3;
  if (n < 0x1000000) return 4;
  return 9;
}

/**
 * Reads a length-encoded integer at `pos` without going past `end`.
 * Returns the value (0xFB, SQL NULL in row data, is reported as -1) and
 * advances nothing: call lenEncIntSizeAt for the width. Values above 2^53-1 throw.
 */
export function readLenEncInt(buf: Uint8Array, pos: number, end: number = buf.length): number {
  if (pos >= end) throw new MalformedPacketError("length-encoded integer past end of packet");
  const first = buf[pos];
  if (first < 0xfb) return first;
  if (first === 0xfb) return -1;
  if (first === 0xfc) {
    if (pos + 3 > end) throw new MalformedPacketError("truncated 2-byte length-encoded integer");
    return buf[pos + 1] | (buf[pos + 2] << 8);
  }
  if (first === 0xfd) {
    if (pos + 4 > end) throw new MalformedPacketError("truncated 3-byte length-encoded integer");
    return buf[pos + 1] | (buf[pos + 2] << 8) | (buf[pos + 3] << 16);
  }
  if (first === 0xfe) {
    if (pos + 9 > end) throw new MalformedPacketError("truncated 8-byte length-encoded integer");
    const lo = (buf[pos + 1] | (buf[pos + 2] << 8) | (buf[pos + 3] << 16) | (buf[pos + 4] << 24)) >>> 0;
    const hi = (buf[pos + 5] | (buf[pos + 6] << 8) | (buf[pos + 7] << 16) | (buf[pos + 8] << 24)) >>> 0;
    if (hi > 0x1fffff) throw new MalformedPacketError("length-encoded integer above 2^53-1");
    return hi * 0x100000000 + lo;
  }
  throw new MalformedPacketError("invalid length-encoded integer prefix 0xff");
}

/** Width of the length-encoded integer starting at buf[pos] (caller checked pos < end). */
export function lenEncIntSizeAt(buf: Uint8Array, pos: number): number {
  const first = buf[pos];
  if (first < 0xfb) return 1;
  if (first === 0xfb) return 1;
  if (first === 0xfc) return 3;
  if (first === 0xfd) return 4;
  return 9;
}

/** Writes `n` length-encoded at `pos`; returns the position after it. */
export function writeLenEncInt(buf: Buffer, pos: number, n: number | bigint): number {
  if (typeof n === "number" && (!Number.isInteger(n) || n < 0)) throw new RangeError(`not a length: ${n}`);
  if (n < 251) {
    buf[pos] = Number(n);
    return pos + 1;
  }
  if (n < 0x10000) {
    buf[pos] = 0xfc;
    buf.writeUInt16LE(Number(n), pos + 1);
    return pos + 3;
  }
  if (n < 0x1000000) {
    buf[pos] = 0xfd;
    buf.writeUIntLE(Number(n), pos + 1, 3);
    return pos + 4;
  }
  buf[pos] = 0xfe;
  buf.writeBigUInt64LE(BigInt(n), pos + 1);
  return pos + 9;
}

/**
 * A cursor over one logical packet payload `buf[start, end)`. Reusable:
 * call reset() instead of allocating a new reader. Returned buffers are views
 * into the input, valid as long as the input is.
 */
export class PacketReader {
  buf: Buffer;
  pos: number;
  end: number;

  constructor(buf: Buffer = Buffer.alloc(0), start = 0, end: number = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  reset(buf: Buffer, start = 0, end: number = buf.length): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  atEnd(): boolean {
    return this.pos >= this.end;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) {
      throw new MalformedPacketError(`truncated packet: ${what} needs ${n} bytes, ${this.end - this.pos} left`);
    }
  }

  u8(): number {
    this.need(1, "uint8");
    return this.buf[this.pos++];
  }

  u16(): number {
    this.need(2, "uint16");
    const v = this.buf[this.pos] | (this.buf[this.pos + 1] << 8);
    this.pos += 2;
    return v;
  }

  u24(): number {
    this.need(3, "uint24");
    const v = this.buf[this.pos] | (this.buf[this.pos + 1] << 8) | (this.buf[this.pos + 2] << 16);
    this.pos += 3;
    return v;
  }

  u32(): number {
    this.need(4, "uint32");
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): bigint {
    this.need(8, "uint64");
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  skip(n: number): void {
    this.need(n, "skip");
    this.pos += n;
  }

  /** Length-encoded integer; -1 for the NULL marker 0xFB. */
  lenEncInt(): number {
    const v = readLenEncInt(this.buf, this.pos, this.end);
    this.pos += lenEncIntSizeAt(this.buf, this.pos);
    return v;
  }

  /** View of the next n bytes. */
  bytes(n: number): Buffer {
    if (n < 0) throw new MalformedPacketError(`negative length ${n}`);
    this.need(n, "bytes");
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** View of the bytes up to the next NUL (consumed, not included). */
  nulTerminated(): Buffer {
    const at = this.buf.indexOf(0, this.pos);
    if (at < 0 || at >= this.end) throw new MalformedPacketError("missing NUL terminator");
    const v = this.buf.subarray(this.pos, at);
    this.pos = at + 1;
    return v;
  }

  /** Like nulTerminated(), but the terminator may be replaced by end of packet. */
  nulTerminatedOrRest(): Buffer {
    const at = this.buf.indexOf(0, this.pos);
    const stop = at < 0 || at >= this.end ? this.end : at;
    const v = this.buf.subarray(this.pos, stop);
    this.pos = stop < this.end ? stop + 1 : stop;
    return v;
  }

  nulString(): string {
    const b = this.nulTerminated();
    return b.toString("utf8");
  }

  lenEncBytes(): Buffer {
    const n = this.lenEncInt();
    if (n < 0) throw new MalformedPacketError("unexpected NULL length");
    return this.bytes(n);
  }

  lenEncString(): string {
    return this.lenEncBytes().toString("utf8");
  }

  rest(): Buffer {
    const v = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return v;
  }
}

/**
 * Builds one logical packet: reserves the 4-byte header, grows by doubling,
 * and fills the header(s) last in finish(). Not for the forwarding hot path.
 */
export class PacketWriter {
  private buf: Buffer;
  private pos: number;

  constructor(capacity = 128) {
    this.buf = Buffer.allocUnsafe(capacity + PACKET_HEADER_SIZE);
    this.pos = PACKET_HEADER_SIZE;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  get length(): number {
    return this.pos - PACKET_HEADER_SIZE;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16LE(v & 0xffff, this.pos);
    this.pos += 2;
    return this;
  }

  u24(v: number): this {
    this.ensure(3);
    this.buf.writeUIntLE(v & 0xffffff, this.pos, 3);
    this.pos += 3;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  u64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigUInt64LE(v, this.pos);
    this.pos += 8;
    return this;
  }

  zeros(n: number): this {
    this.ensure(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return this;
  }

  lenEncInt(v: number | bigint): this {
    this.ensure(9);
    this.pos = writeLenEncInt(this.buf, this.pos, v);
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  string(s: string): this {
    const n = Buffer.byteLength(s, "utf8");
    this.ensure(n);
    this.buf.write(s, this.pos, n, "utf8");
    this.pos += n;
    return this;
  }

  nulString(s: string): this {
    return this.string(s).u8(0);
  }

  lenEncBytes(b: Uint8Array): this {
    return this.lenEncInt(b.length).bytes(b);
  }

  lenEncString(s: string): this {
    return this.lenEncInt(Buffer.byteLength(s, "utf8")).string(s);
  }

  /**
   * Returns the wire bytes with sequence id `seq`. A payload of 0xFFFFFF bytes
   * or more is split into continuation packets (with incrementing sequence ids
   * and a final, possibly empty, packet), as the protocol requires.
   */
  finish(seq: number): Buffer {
    const len = this.pos - PACKET_HEADER_SIZE;
    if (len < MAX_PACKET_PAYLOAD) {
      this.buf.writeUIntLE(len, 0, 3);
      this.buf[3] = seq & 0xff;
      return this.buf.subarray(0, this.pos);
    }
    return splitIntoPackets(this.buf.subarray(PACKET_HEADER_SIZE, this.pos), seq);
  }
}

/** Frames `payload` as one or more wire packets starting at sequence id `seq`. */
export function splitIntoPackets(payload: Uint8Array, seq: number): Buffer {
  const full = Math.floor(payload.length / MAX_PACKET_PAYLOAD);
  const count = full + 1;
  const out = Buffer.allocUnsafe(payload.length + count * PACKET_HEADER_SIZE);
  let src = 0;
  let dst = 0;
  for (let i = 0; i < count; i++) {
    const n = i < full ? MAX_PACKET_PAYLOAD : payload.length - src;
    out.writeUIntLE(n, dst, 3);
    out[dst + 3] = (seq + i) & 0xff;
    out.set(payload.subarray(src, src + n), dst + PACKET_HEADER_SIZE);
    src += n;
    dst += n + PACKET_HEADER_SIZE;
  }
  return out;
}

/** Wraps an existing payload in one packet header (copy). */
export function framePayload(payload: Uint8Array, seq: number): Buffer {
  if (payload.length >= MAX_PACKET_PAYLOAD) return splitIntoPackets(payload, seq);
  const out = Buffer.allocUnsafe(payload.length + PACKET_HEADER_SIZE);
  out.writeUIntLE(payload.length, 0, 3);
  out[3] = seq & 0xff;
  out.set(payload, PACKET_HEADER_SIZE);
  return out;
}
