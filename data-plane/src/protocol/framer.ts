import { Buffer } from "node:buffer";
import { PacketTooLargeError } from "../errors";
import { MAX_PACKET_PAYLOAD } from "./constants";

/**
 * Receives one logical packet. `payload` is a view: valid only during the
 * call (it may point into the socket chunk). Copy what you keep. `seq` is the
 * sequence id of the last wire packet of the logical packet.
 */
export type PacketHandler = (seq: number, payload: Buffer) => void;

export interface PacketFramerOptions {
  /** Largest logical payload accepted (after joining 0xFFFFFF continuations). */
  maxPacketSize: number;
}

/**
 * Turns socket chunks into packet payloads. Pure: no I/O.
 *
 * - A packet wholly inside a chunk is delivered as a zero-copy view.
 * - A header split across chunks (at any offset) is collected byte by byte.
 * - A payload split across chunks is copied once into a buffer of exactly its
 *   size, allocated after the size check.
 * - 0xFFFFFF-byte packets are collected and joined with their continuation(s)
 *   into one payload (one copy).
 * - A logical packet larger than maxPacketSize throws PacketTooLargeError from
 *   push() as soon as its header says so, before buffering it. After any throw
 *   (including one from the handler) the framer is unusable: close the peer.
 *
 * The framer keeps views of chunks it was given while joining continuation
 * packets: callers must not reuse chunk memory (Node sockets do not).
 */
export class PacketFramer {
  private readonly maxPacketSize: number;
  private readonly onPacket: PacketHandler;
  /** Partial header bytes. */
  private readonly header: Buffer;
  private headerFill: number;
  /** A payload straddling chunks, being filled. */
  private body: Buffer | null;
  private bodyFill: number;
  private bodySeq: number;
  /** 0xFFFFFF parts of a logical packet not yet complete. */
  private parts: Buffer[];
  private partsLength: number;
  private stopped: boolean;
  private leftover: Buffer | null;

  constructor(options: PacketFramerOptions, onPacket: PacketHandler) {
    this.maxPacketSize = options.maxPacketSize;
    this.onPacket = onPacket;
    this.header = Buffer.alloc(4);
    this.headerFill = 0;
    this.body = null;
    this.bodyFill = 0;
    this.bodySeq = 0;
    this.parts = [];
    this.partsLength = 0;
    this.stopped = false;
    this.leftover = null;
  }

  /**
   * Stops delivering packets. Called from inside the handler, it makes push()
   * keep the unprocessed rest of the current chunk (and any later chunk) as
   * raw wire bytes, available from takeLeftover(): use it to hand a socket
   * over to another consumer at a packet boundary.
   */
  stop(): void {
    this.stopped = true;
  }

  /** Raw bytes received after stop(); null if none. */
  takeLeftover(): Buffer | null {
    const l = this.leftover;
    this.leftover = null;
    return l;
  }

  /** True when no partial packet is buffered (a packet boundary). */
  isIdle(): boolean {
    return this.headerFill === 0 && this.body === null && this.partsLength === 0;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.stopped) {
        this.keep(i === 0 ? chunk : chunk.subarray(i));
        return;
      }
      const body = this.body;
      if (body !== null) {
        const want = body.length - this.bodyFill;
        const take = want < n - i ? want : n - i;
        chunk.copy(body, this.bodyFill, i, i + take);
        this.bodyFill += take;
        i += take;
        if (this.bodyFill < body.length) return;
        this.body = null;
        this.deliver(this.bodySeq, body);
        continue;
      }
      let len: number;
      let seq: number;
      if (this.headerFill === 0 && n - i >= 4) {
        len = chunk[i] | (chunk[i + 1] << 8) | (chunk[i + 2] << 16);
        seq = chunk[i + 3];
        i += 4;
      } else {
        this.header[this.headerFill++] = chunk[i++];
        if (this.headerFill < 4) continue;
        this.headerFill = 0;
        len = this.header[0] | (this.header[1] << 8) | (this.header[2] << 16);
        seq = this.header[3];
      }
      const total = this.partsLength + len;
      if (total > this.maxPacketSize) throw new PacketTooLargeError(total, this.maxPacketSize);
      if (n - i >= len) {
        const payload = chunk.subarray(i, i + len);
        i += len;
        this.deliver(seq, payload);
      } else {
        this.body = Buffer.allocUnsafe(len);
        this.bodyFill = 0;
        this.bodySeq = seq;
      }
    }
  }

  private keep(rest: Buffer): void {
    this.leftover = this.leftover === null ? rest : Buffer.concat([this.leftover, rest]);
  }

  private deliver(seq: number, payload: Buffer): void {
    if (payload.length === MAX_PACKET_PAYLOAD) {
      this.parts.push(payload);
      this.partsLength += payload.length;
      return;
    }
    if (this.partsLength === 0) {
      this.onPacket(seq, payload);
      return;
    }
    this.parts.push(payload);
    const joined = Buffer.concat(this.parts, this.partsLength + payload.length);
    this.parts = [];
    this.partsLength = 0;
    this.onPacket(seq, joined);
  }
}
