import { Buffer } from "node:buffer";
import { PacketTooLargeError } from "../errors";
import { PacketFramer } from "./framer";
import { framePayload } from "./codec";

type Got = Array<[number, string]>;

function collect(max = 1 << 30): { framer: PacketFramer; got: Got } {
  const got: Got = [];
  const framer = new PacketFramer({ maxPacketSize: max }, (seq, payload) => got.push([seq, payload.toString("hex")]));
  return { framer, got };
}

const payloads = ["03", "0373656c6563742031", "", "ff" + "ab".repeat(300), "00000002000000"];
const wire = Buffer.concat(payloads.map((p, i) => framePayload(Buffer.from(p, "hex"), i)));
const expected: Got = payloads.map((p, i) => [i, p]);

describe("PacketFramer", () => {
  it("frames a multi-packet chunk", () => {
    const { framer, got } = collect();
    framer.push(wire);
    expect(got).toEqual(expected);
    expect(framer.isIdle()).toBe(true);
  });

  it("frames identically at every split offset", () => {
    for (let at = 0; at <= wire.length; at++) {
      const { framer, got } = collect();
      framer.push(wire.subarray(0, at));
      framer.push(wire.subarray(at));
      expect(got).toEqual(expected);
    }
  });

  it("frames identically at every pair of split offsets (headers split 1/2/3 bytes in)", () => {
    const short = wire.subarray(0, 4 + 1 + 4 + 9 + 4 + 4 + 20); // first packets, last one truncated
    const full = Buffer.concat([short, wire.subarray(short.length)]);
    for (let a = 0; a <= 40; a++) {
      for (let b = a; b <= 40; b++) {
        const { framer, got } = collect();
        framer.push(full.subarray(0, a));
        framer.push(full.subarray(a, b));
        framer.push(full.subarray(b));
        expect(got).toEqual(expected);
      }
    }
  });

  it("frames one byte at a time", () => {
    const { framer, got } = collect();
    for (let i = 0; i < wire.length; i++) framer.push(wire.subarray(i, i + 1));
    expect(got).toEqual(expected);
  });

  it("gives zero-copy views for packets inside one chunk", () => {
    const chunk = framePayload(Buffer.from("hello"), 0);
    let view: Buffer | null = null;
    const framer = new PacketFramer({ maxPacketSize: 100 }, (_s, p) => (view = p));
    framer.push(chunk);
    expect(view!.buffer).toBe(chunk.buffer);
  });

  it("joins 0xFFFFFF continuation packets into one payload", () => {
    const big = Buffer.alloc(0xffffff + 10);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    const w = framePayload(big, 3); // splits: 0xFFFFFF (seq 3) + 10 bytes (seq 4)
    const tail = framePayload(Buffer.from("x"), 5);
    const all = Buffer.concat([w, tail]);
    const seen: Array<[number, number]> = [];
    let joined: Buffer | null = null;
    const framer = new PacketFramer({ maxPacketSize: 0x2000000 }, (seq, p) => {
      seen.push([seq, p.length]);
      if (p.length > 1) joined = Buffer.from(p);
    });
    // arbitrary chunking, including a split inside the second header
    const cuts = [1000, 0xffffff + 2, 0xffffff + 6, all.length - 3];
    let prev = 0;
    for (const c of cuts) {
      framer.push(all.subarray(prev, c));
      prev = c;
    }
    framer.push(all.subarray(prev));
    expect(seen).toEqual([
      [4, 0xffffff + 10],
      [5, 1],
    ]);
    expect(joined!.equals(big)).toBe(true);
  });

  it("handles a payload of exactly 0xFFFFFF bytes (empty terminator)", () => {
    const w = framePayload(Buffer.alloc(0xffffff, 1), 0);
    const seen: number[] = [];
    const framer = new PacketFramer({ maxPacketSize: 0x1000000 }, (_s, p) => seen.push(p.length));
    framer.push(w);
    expect(seen).toEqual([0xffffff]);
  });

  it("rejects an oversize packet from its header, before buffering it", () => {
    const { framer, got } = collect(100);
    const header = Buffer.from([101, 0, 0, 0]);
    expect(() => framer.push(header)).toThrow(PacketTooLargeError);
    expect(got).toEqual([]);
  });

  it("rejects when continuation packets add up beyond the limit", () => {
    const { framer } = collect(0xffffff + 5);
    const first = Buffer.alloc(4);
    first.writeUIntLE(0xffffff, 0, 3);
    framer.push(first);
    framer.push(Buffer.alloc(0xffffff));
    expect(() => framer.push(Buffer.from([6, 0, 0, 1]))).toThrow(PacketTooLargeError);
  });

  it("stop() hands over the rest of the chunk as raw bytes", () => {
    const got: string[] = [];
    const framer = new PacketFramer({ maxPacketSize: 1000 }, (_s, p) => {
      got.push(p.toString("hex"));
      framer.stop();
    });
    framer.push(wire.subarray(0, 12));
    framer.push(wire.subarray(12));
    expect(got).toEqual(["03"]);
    expect(framer.takeLeftover()!.equals(wire.subarray(5))).toBe(true);
    expect(framer.takeLeftover()).toBeNull();
  });
});
