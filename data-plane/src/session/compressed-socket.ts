import type { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import type * as net from "node:net";
import { CompressedFrameDecoder, encodeCompressedFrames } from "../protocol/compressed-protocol";

/** zlib level for frames toward clients: the fastest; a proxy's CPU is the scarce resource. */
export const COMPRESSION_LEVEL = 1;

/**
 * The compressed protocol toward one client (CLIENT_COMPRESS), as a stream
 * the session uses in place of the client socket once authentication is
 * over — the way a TLS upgrade replaces it with a TLSSocket — so every
 * writer (forwarding, intercepted commands, shutdown errors) is covered and
 * the plain forwarding path pays nothing. The backend side stays uncompressed.
 *
 * - Read side: frames from the client are inflated (bounded by their header,
 *   at most 16 MiB each) and their bytes emitted as 'data'.
 * - Write side: each write becomes one frame (stored when under 50 bytes or
 *   when deflate does not shrink it; cut at 16 MiB).
 * - Compressed sequence ids: a frame to the client carries the id after the
 *   client's last frame, then counts up; the client restarts at 0 with each
 *   command, so ours restart with it, as MySQL's do.
 * - Backpressure both ways: a full raw socket delays write callbacks (so
 *   write() returns false and 'drain' follows); a paused reader pauses the
 *   raw socket.
 * - Inner sequence ids toward the backend: clients do not keep them in step
 *   in compressed mode (servers ignore them there; libmariadb numbers both
 *   wire packets of a 17 MiB command 0), but the uncompressed backend checks
 *   them (1156 "Got packets out of order"). So each client packet's id is
 *   rewritten to what the backend expects: 0 for a packet that starts a
 *   command (at the start of a frame with compressed id 0), else one more
 *   than the last id seen either way.
 * - A malformed frame destroys the stream with a MalformedPacketError.
 */
export class CompressedSocket extends Duplex {
  private readonly raw: net.Socket;
  private readonly decoder: CompressedFrameDecoder;
  private nextSeq: number;
  /** Inner id the backend expects for the next client packet. */
  private nextInnerSeq: number;
  /** Client → backend packet tracking: payload bytes to skip, header bytes seen, its length so far. */
  private inRemaining: number;
  private inHeaderFill: number;
  private inLength: number;
  private inStartsCommand: boolean;
  /** Backend → client packet tracking (to learn the backend's last id). */
  private outRemaining: number;
  private outHeaderFill: number;
  private outLength: number;
  private pendingWrite: ((err?: Error | null) => void) | null;

  /** `leftover`: bytes already read from `raw` after the handshake (compressed frames). */
  constructor(raw: net.Socket, leftover: Buffer | null) {
    super({ allowHalfOpen: false });
    this.raw = raw;
    this.nextSeq = 0;
    this.nextInnerSeq = 0;
    this.inRemaining = 0;
    this.inHeaderFill = 0;
    this.inLength = 0;
    this.inStartsCommand = false;
    this.outRemaining = 0;
    this.outHeaderFill = 0;
    this.outLength = 0;
    this.pendingWrite = null;
    this.decoder = new CompressedFrameDecoder(this.onFrame);
    raw.on("data", this.onRawData);
    raw.on("drain", this.onRawDrain);
    raw.on("end", this.onRawEnd);
    raw.on("error", this.onRawError);
    raw.on("close", this.onRawClose);
    if (leftover !== null) this.onRawData(leftover);
  }

  get remoteAddress(): string | undefined {
    return this.raw.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.raw.remotePort;
  }

  get localAddress(): string | undefined {
    return this.raw.localAddress;
  }

  get localPort(): number | undefined {
    return this.raw.localPort;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.raw.setKeepAlive(enable, initialDelay);
    return this;
  }

  setNoDelay(noDelay?: boolean): this {
    this.raw.setNoDelay(noDelay);
    return this;
  }

  override _read(): void {
    this.raw.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.trackOut(chunk);
    const e = encodeCompressedFrames(chunk, this.nextSeq, COMPRESSION_LEVEL);
    this.nextSeq = e.nextSeq;
    if (this.raw.write(e.bytes)) callback();
    else this.pendingWrite = callback;
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.raw.end(() => callback());
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.raw.removeListener("data", this.onRawData);
    this.raw.destroy();
    const w = this.pendingWrite;
    this.pendingWrite = null;
    if (w !== null) w(err ?? new Error("destroyed"));
    callback(err);
  }

  /** Notes the inner id of every packet header in the backend's bytes. */
  private trackOut(data: Buffer): void {
    const n = data.length;
    let i = 0;
    while (i < n) {
      if (this.outRemaining > 0) {
        const take = this.outRemaining < n - i ? this.outRemaining : n - i;
        this.outRemaining -= take;
        i += take;
        continue;
      }
      if (this.outHeaderFill < 3) {
        this.outLength |= data[i++] << (this.outHeaderFill++ << 3);
        continue;
      }
      this.nextInnerSeq = (data[i++] + 1) & 0xff;
      this.outRemaining = this.outLength;
      this.outHeaderFill = 0;
      this.outLength = 0;
    }
  }

  /** Rewrites the inner id of every client packet header in `data` (one frame, ours to modify). */
  private renumberIn(frameSeq: number, data: Buffer): void {
    const n = data.length;
    let i = 0;
    while (i < n) {
      if (this.inRemaining > 0) {
        const take = this.inRemaining < n - i ? this.inRemaining : n - i;
        this.inRemaining -= take;
        i += take;
        continue;
      }
      if (this.inHeaderFill === 0) this.inStartsCommand = i === 0 && frameSeq === 0;
      if (this.inHeaderFill < 3) {
        this.inLength |= data[i++] << (this.inHeaderFill++ << 3);
        continue;
      }
      const seq = this.inStartsCommand ? 0 : this.nextInnerSeq;
      data[i++] = seq;
      this.nextInnerSeq = (seq + 1) & 0xff;
      this.inRemaining = this.inLength;
      this.inHeaderFill = 0;
      this.inLength = 0;
    }
  }

  private readonly onFrame = (seq: number, data: Buffer): void => {
    this.nextSeq = (seq + 1) & 0xff;
    this.renumberIn(seq, data);
    if (!this.push(data)) this.raw.pause();
  };

  private readonly onRawData = (chunk: Buffer): void => {
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.destroy(err as Error);
    }
  };

  private readonly onRawDrain = (): void => {
    const w = this.pendingWrite;
    this.pendingWrite = null;
    if (w !== null) w();
  };

  private readonly onRawEnd = (): void => {
    this.push(null);
  };

  private readonly onRawError = (err: Error): void => {
    this.destroy(err);
  };

  private readonly onRawClose = (): void => {
    if (!this.destroyed) this.destroy();
  };
}
