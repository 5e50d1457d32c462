import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import { MalformedPacketError } from "../errors";

/**
 * MySQL's compressed protocol (CLIENT_COMPRESS, zlib): after the handshake
 * the ordinary packet stream is cut into compressed frames, each with a
 * 7-byte header — 3-byte payload length, 1-byte compressed sequence id,
 * 3-byte uncompressed length (0: the payload is stored, not compressed) —
 * followed by the (deflated) bytes. Frame and packet boundaries are
 * independent: a frame may hold several packets or part of one.
 *
 * Pure computation (node:zlib's synchronous calls, no I/O).
 */

export const COMPRESSED_HEADER_SIZE = 7;
/** Largest frame payload (and largest uncompressed length) the 3-byte fields allow. */
export const MAX_COMPRESSED_FRAME = 0xffffff;
/** Payloads shorter than this are stored, not compressed (MySQL's MIN_COMPRESS_LENGTH). */
export const MIN_COMPRESS_LENGTH = 50;

/**
 * Receives one frame's uncompressed bytes. A view, valid only during the
 * call. `seq` is the frame's compressed sequence id.
 */
export type CompressedFrameHandler = (seq: number, data: Buffer) => void;

/**
 * Turns socket chunks of compressed frames into their uncompressed bytes.
 *
 * - A header split across chunks is collected byte by byte; a payload split
 *   across chunks is copied once into a buffer of its exact size.
 * - A stored frame wholly inside a chunk is delivered as a view.
 * - Inflating is bounded by the header's uncompressed length (never more
 *   than 16 MiB per frame), and a frame that inflates to any other length is
 *   a MalformedPacketError.
 * After a throw the decoder is unusable: close the peer.
 */
export class CompressedFrameDecoder {
  private readonly onFrame: CompressedFrameHandler;
  private readonly header: Buffer;
  private headerFill: number;
  private body: Buffer | null;
  private bodyFill: number;
  private bodySeq: number;
  private bodyRawLength: number;

  constructor(onFrame: CompressedFrameHandler) {
    this.onFrame = onFrame;
    this.header = Buffer.alloc(COMPRESSED_HEADER_SIZE);
    this.headerFill = 0;
    this.body = null;
    this.bodyFill = 0;
    this.bodySeq = 0;
    this.bodyRawLength = 0;
  }

  /** True between frames. */
  isIdle(): boolean {
    return this.headerFill === 0 && this.body === null;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      const body = this.body;
      if (body !== null) {
        const want = body.length - this.bodyFill;
        const take = want < n - i ? want : n - i;
        chunk.copy(body, this.bodyFill, i, i + take);
        this.bodyFill += take;
        i += take;
        if (this.bodyFill < body.length) return;
        this.body = null;
        this.deliver(this.bodySeq, body, this.bodyRawLength);
        continue;
      }
      let len: number;
      let seq: number;
      let raw: number;
      if (this.headerFill === 0 && n - i >= COMPRESSED_HEADER_SIZE) {
        len = chunk[i] | (chunk[i + 1] << 8) | (chunk[i + 2] << 16);
        seq = chunk[i + 3];
        raw = chunk[i + 4] | (chunk[i + 5] << 8) | (chunk[i + 6] << 16);
        i += COMPRESSED_HEADER_SIZE;
      } else {
        this.header[this.headerFill++] = chunk[i++];
        if (this.headerFill < COMPRESSED_HEADER_SIZE) continue;
        this.headerFill = 0;
        const h = this.header;
        len = h[0] | (h[1] << 8) | (h[2] << 16);
        seq = h[3];
        raw = h[4] | (h[5] << 8) | (h[6] << 16);
      }
      if (n - i >= len) {
        const payload = chunk.subarray(i, i + len);
        i += len;
        this.deliver(seq, payload, raw);
      } else {
        this.body = Buffer.allocUnsafe(len);
        this.bodyFill = 0;
        this.bodySeq = seq;
        this.bodyRawLength = raw;
      }
    }
  }

  private deliver(seq: number, payload: Buffer, raw: number): void {
    if (raw === 0) {
      if (payload.length > 0) this.onFrame(seq, payload);
      return;
    }
    let data: Buffer;
    try {
      data = zlib.inflateSync(payload, { maxOutputLength: raw });
    } catch (cause) {
      throw new MalformedPacketError(`compressed frame does not inflate to ${raw} bytes`, { cause });
    }
    if (data.length !== raw) throw new MalformedPacketError(`compressed frame inflates to ${data.length} bytes, header says ${raw}`);
    this.onFrame(seq, data);
  }
}

export interface EncodedFrames {
  /** The frames, header and payload, ready to write. */
  readonly bytes: Buffer;
  /** Sequence id for the next frame. */
  readonly nextSeq: number;
}

/**
 * Wraps `data` (any bytes of the packet stream) in compressed frames starting
 * at sequence id `seq`: one frame per 16 MiB. A part shorter than
 * MIN_COMPRESS_LENGTH, or one that deflate does not shrink, is stored.
 * `level` is zlib's (1 fastest … 9 smallest).
 */
export function encodeCompressedFrames(data: Buffer, seq: number, level: number): EncodedFrames {
  if (data.length <= MAX_COMPRESSED_FRAME) {
    return { bytes: encodeOne(data, seq, level), nextSeq: (seq + 1) & 0xff };
  }
  const parts: Buffer[] = [];
  let s = seq;
  for (let at = 0; at < data.length; at += MAX_COMPRESSED_FRAME) {
    parts.push(encodeOne(data.subarray(at, Math.min(at + MAX_COMPRESSED_FRAME, data.length)), s, level));
    s = (s + 1) & 0xff;
  }
  return { bytes: Buffer.concat(parts), nextSeq: s };
}

function encodeOne(data: Buffer, seq: number, level: number): Buffer {
  const n = data.length;
  if (n >= MIN_COMPRESS_LENGTH) {
    const z = zlib.deflateSync(data, { level });
    if (z.length < n) {
      const out = Buffer.allocUnsafe(COMPRESSED_HEADER_SIZE + z.length);
      writeHeader(out, z.length, seq, n);
      z.copy(out, COMPRESSED_HEADER_SIZE);
      return out;
    }
  }
  const out = Buffer.allocUnsafe(COMPRESSED_HEADER_SIZE + n);
  writeHeader(out, n, seq, 0);
  data.copy(out, COMPRESSED_HEADER_SIZE);
  return out;
}

function writeHeader(out: Buffer, len: number, seq: number, raw: number): void {
  out[0] = len & 0xff;
  out[1] = (len >>> 8) & 0xff;
  out[2] = len >>> 16;
  out[3] = seq;
  out[4] = raw & 0xff;
  out[5] = (raw >>> 8) & 0xff;
  out[6] = raw >>> 16;
}
