import { Buffer } from "node:buffer";
import { MalformedPacketError } from "../errors";
import { PacketReader, PacketWriter, lenEncIntSize, readLenEncInt, splitIntoPackets, writeLenEncInt } from "./codec";

describe("length-encoded integers", () => {
  // boundaries as in mysql2 test/unit/packets: 250/251/0xffff/0xffffff/2^32+1
  const cases: Array<[number, number]> = [
    [0, 1],
    [250, 1],
    [251, 3],
    [0xffff, 3],
    [0x10000, 4],
    [0xffffff, 4],
    [0x1000000, 9],
    [0xffffffff, 9],
    [2 ** 32 + 1, 9],
    [Number.MAX_SAFE_INTEGER, 9],
  ];
  it.each(cases)("%d roundtrips in %d bytes", (n, size) => {
    expect(lenEncIntSize(n)).toBe(size);
    const buf = Buffer.alloc(12, 0xaa);
    expect(writeLenEncInt(buf, 1, n)).toBe(1 + size);
    expect(readLenEncInt(buf, 1, 1 + size)).toBe(n);
    const r = new PacketReader(buf, 1, 1 + size);
    expect(r.lenEncInt()).toBe(n);
    expect(r.atEnd()).toBe(true);
  });

  it("writes 2^32+1 with the high word intact (no >>32 bug)", () => {
    const buf = Buffer.alloc(9);
    writeLenEncInt(buf, 0, 2 ** 32 + 1);
    expect(buf.toString("hex")).toBe("fe0100000001000000");
  });

  it("accepts bigint", () => {
    const buf = Buffer.alloc(9);
    writeLenEncInt(buf, 0, 2n ** 40n);
    expect(readLenEncInt(buf, 0)).toBe(2 ** 40);
  });

  it("reads 0xfb as NULL (-1)", () => {
    expect(readLenEncInt(Buffer.from([0xfb]), 0)).toBe(-1);
  });

  it("rejects truncation at the logical end even when the buffer continues", () => {
    const buf = Buffer.from([0xfd, 1, 2, 3, 4]);
    expect(() => readLenEncInt(buf, 0, 3)).toThrow(MalformedPacketError);
    expect(() => readLenEncInt(Buffer.from([0xfe, 1, 2]), 0)).toThrow(MalformedPacketError);
    expect(() => readLenEncInt(Buffer.from([0xff]), 0)).toThrow(MalformedPacketError);
    expect(() => readLenEncInt(Buffer.alloc(0), 0)).toThrow(MalformedPacketError);
  });

  it("rejects values above 2^53-1", () => {
    const buf = Buffer.from("feffffffffffffffff", "hex");
    expect(() => readLenEncInt(buf, 0)).toThrow(MalformedPacketError);
  });
});

describe("PacketReader", () => {
  it("does not read beyond the logical packet boundary", () => {
    // a second packet follows in the same chunk; the reader must not see it
    const chunk = Buffer.from("abc\0def\0", "latin1");
    const r = new PacketReader(chunk, 0, 3);
    expect(() => r.nulTerminated()).toThrow(MalformedPacketError);
    expect(r.nulTerminatedOrRest().toString()).toBe("abc");
    const r2 = new PacketReader(chunk, 0, 2);
    expect(() => r2.bytes(3)).toThrow(MalformedPacketError);
    expect(() => r2.u32()).toThrow(MalformedPacketError);
  });

  it("reads fixed-width integers little-endian", () => {
    const r = new PacketReader(Buffer.from("0102030405060708090a", "hex"));
    expect(r.u8()).toBe(1);
    expect(r.u16()).toBe(0x0302);
    expect(r.u24()).toBe(0x060504);
    expect(r.u32()).toBe(0x0a090807);
    expect(() => r.u8()).toThrow(MalformedPacketError);
  });

  it("returns views, not copies", () => {
    const buf = Buffer.from("\x03abc", "latin1");
    const v = new PacketReader(buf).lenEncBytes();
    buf[1] = 0x7a;
    expect(v.toString()).toBe("zbc");
  });
});

describe("PacketWriter", () => {
  it("fills the header last", () => {
    const out = new PacketWriter(1).u8(0x03).nulString("select 1").finish(0);
    expect(out.toString("hex")).toBe("0a00000003" + Buffer.from("select 1\0").toString("hex"));
  });

  it("splits payloads of 0xFFFFFF bytes or more into continuation packets", () => {
    const payload = Buffer.alloc(0xffffff + 3, 7);
    const wire = splitIntoPackets(payload, 5);
    expect(wire.length).toBe(payload.length + 8);
    expect(wire.readUIntLE(0, 3)).toBe(0xffffff);
    expect(wire[3]).toBe(5);
    expect(wire.readUIntLE(4 + 0xffffff, 3)).toBe(3);
    expect(wire[4 + 0xffffff + 3]).toBe(6);
    const exact = splitIntoPackets(Buffer.alloc(0xffffff), 0);
    expect(exact.length).toBe(0xffffff + 8);
    expect(exact.readUIntLE(0xffffff + 4, 3)).toBe(0); // trailing empty packet
  });
});
