import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import { MalformedPacketError } from "../errors";
import {
  COMPRESSED_HEADER_SIZE,
  CompressedFrameDecoder,
  MAX_COMPRESSED_FRAME,
  MIN_COMPRESS_LENGTH,
  encodeCompressedFrames,
} from "./compressed-protocol";

function decodeAll(parts: Buffer[]): { seqs: number[]; data: Buffer } {
  const seqs: number[] = [];
  const out: Buffer[] = [];
  const d = new CompressedFrameDecoder((seq, data) => {
    seqs.push(seq);
    out.push(Buffer.from(data));
  });
  for (const p of parts) d.push(p);
  expect(d.isIdle()).toBe(true);
  return { seqs, data: Buffer.concat(out) };
}

describe("compressed frames", () => {
  const small = Buffer.from("0100000003", "hex"); // a COM_QUIT packet: stored
  const big = Buffer.from("x".repeat(5000) + "y".repeat(3000)); // compresses well
  const noise = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) & 0xff).map((x) => x ^ 0x5a)); // hardly compresses

  it("stores payloads under MIN_COMPRESS_LENGTH and compresses the others", () => {
    const a = encodeCompressedFrames(small, 0, 6);
    expect(a.bytes.toString("hex")).toBe("05000000000000" + small.toString("hex"));
    expect(a.nextSeq).toBe(1);
    const b = encodeCompressedFrames(big, 255, 6);
    expect(b.nextSeq).toBe(0);
    expect(b.bytes.length).toBeLessThan(200);
    expect(b.bytes.readUIntLE(4, 3)).toBe(big.length);
    expect(b.bytes[3]).toBe(255);
    expect(zlib.inflateSync(b.bytes.subarray(COMPRESSED_HEADER_SIZE)).equals(big)).toBe(true);
    expect(encodeCompressedFrames(Buffer.alloc(MIN_COMPRESS_LENGTH - 1), 0, 6).bytes.readUIntLE(4, 3)).toBe(0);
  });

  it("round-trips through the decoder at every split offset", () => {
    const frames = [encodeCompressedFrames(small, 0, 6), encodeCompressedFrames(big, 1, 6), encodeCompressedFrames(noise, 2, 6)];
    const wire = Buffer.concat(frames.map((f) => f.bytes));
    const want = Buffer.concat([small, big, noise]);
    for (let at = 0; at <= wire.length; at++) {
      const got = decodeAll([wire.subarray(0, at), wire.subarray(at)]);
      expect(got.seqs).toEqual([0, 1, 2]);
      expect(got.data.equals(want)).toBe(true);
    }
    expect(decodeAll([...wire].map((x) => Buffer.from([x]))).data.equals(want)).toBe(true);
  });

  it("cuts data over 16 MiB into frames of at most 16 MiB, with consecutive ids", () => {
    const data = Buffer.alloc(MAX_COMPRESSED_FRAME + 1000, 0x61);
    const e = encodeCompressedFrames(data, 7, 1);
    expect(e.nextSeq).toBe(9);
    const got = decodeAll([e.bytes]);
    expect(got.seqs).toEqual([7, 8]);
    expect(got.data.equals(data)).toBe(true);
  });

  it("refuses a frame that inflates to more or less than its header says (zip bombs bounded)", () => {
    const z = zlib.deflateSync(Buffer.alloc(1 << 20));
    const h = Buffer.alloc(7);
    h.writeUIntLE(z.length, 0, 3);
    h.writeUIntLE(1000, 4, 3); // claims 1000 bytes, holds 1 MiB
    expect(() => new CompressedFrameDecoder(() => undefined).push(Buffer.concat([h, z]))).toThrow(MalformedPacketError);
    h.writeUIntLE(2 << 20, 4, 3); // claims more than it holds
    expect(() => new CompressedFrameDecoder(() => undefined).push(Buffer.concat([h, z]))).toThrow(/inflates to 1048576 bytes/);
    const junk = Buffer.from("0500000000100000" + "0102030405", "hex").subarray(1);
    junk.writeUIntLE(5, 0, 3);
    junk.writeUIntLE(16, 4, 3);
    expect(() => new CompressedFrameDecoder(() => undefined).push(junk)).toThrow(MalformedPacketError);
  });
});
