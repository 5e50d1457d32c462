import { Buffer } from "node:buffer";
import { framePayload } from "./codec";
import { PacketScanner, ScanEvent } from "./packet-scanner";

const query = framePayload(Buffer.from("\x03select 1", "latin1"), 0);
const ping = framePayload(Buffer.from([0x0e]), 0);
const localInfileData = framePayload(Buffer.from("\x01\x02\x03"), 2); // seq 2: not a command
const empty = framePayload(Buffer.alloc(0), 3);
const quit = framePayload(Buffer.from([0x01]), 0);
const stream = Buffer.concat([query, ping, localInfileData, empty, quit]);

function scanAll(chunks: Buffer[], s = new PacketScanner(true)): { s: PacketScanner; events: number } {
  let events = 0;
  for (const c of chunks) events |= s.scan(c);
  return { s, events };
}

describe("PacketScanner", () => {
  it("finds command boundaries and COM_QUIT in one chunk", () => {
    const { s, events } = scanAll([stream]);
    expect(s.commandCount).toBe(3);
    expect(s.lastCommand).toBe(0x01);
    expect(events & ScanEvent.Quit).toBeTruthy();
    expect(s.atBoundary()).toBe(true);
  });

  it("gives the same result at every split offset", () => {
    for (let at = 0; at <= stream.length; at++) {
      const { s, events } = scanAll([stream.subarray(0, at), stream.subarray(at)]);
      expect([s.commandCount, s.lastCommand, events, s.atBoundary()]).toEqual([3, 1, ScanEvent.Quit, true]);
    }
  });

  it("gives the same result at every pair of split offsets and byte by byte", () => {
    for (let a = 0; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b++) {
        const { s } = scanAll([stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]);
        expect(s.commandCount).toBe(3);
      }
    }
    const bytes: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1));
    expect(scanAll(bytes).s.commandCount).toBe(3);
  });

  it("reports Quit only for the chunk carrying it", () => {
    const s = new PacketScanner(true);
    expect(s.scan(query)).toBe(ScanEvent.None);
    expect(s.scan(quit.subarray(0, 4))).toBe(ScanEvent.None);
    expect(s.scan(quit.subarray(4))).toBe(ScanEvent.Quit);
  });

  it("is mid-packet between chunks of one packet", () => {
    const s = new PacketScanner(true);
    s.scan(query.subarray(0, 6));
    expect(s.atBoundary()).toBe(false);
    s.scan(query.subarray(6));
    expect(s.atBoundary()).toBe(true);
  });

  it("treats a continuation of a 0xFFFFFF packet as part of the same command", () => {
    const head = Buffer.from([0xff, 0xff, 0xff, 0x00, 0x03]);
    const s = new PacketScanner(true, 0x1000005);
    expect(s.scan(head)).toBe(0);
    s.scan(Buffer.alloc(0xffffff - 1));
    expect(s.atBoundary()).toBe(false); // continuation pending
    // continuation with seq 0 after wrap-around-looking data: must not count as a command
    expect(s.scan(Buffer.from([0x01, 0x00, 0x00, 0x00, 0x01]))).toBe(0);
    expect(s.commandCount).toBe(1);
    expect(s.atBoundary()).toBe(true);
  });

  it("flags oversize logical packets", () => {
    const s = new PacketScanner(true, 5);
    expect(s.scan(framePayload(Buffer.alloc(6), 0))).toBe(ScanEvent.Oversize);
  });

  it("does not track commands in the server direction", () => {
    const s = new PacketScanner(false);
    s.scan(stream);
    expect(s.commandCount).toBe(0);
  });
});
