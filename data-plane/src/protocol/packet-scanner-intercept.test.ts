import { Buffer } from "node:buffer";
import { framePayload } from "./codec";
import { Command } from "./constants";
import { PacketScanner, ScanEvent } from "./packet-scanner";

const MASK = ((1 << Command.ChangeUser) | (1 << Command.ProcessKill) | (1 << Command.Query)) >>> 0;
const select = framePayload(Buffer.from("\x03SELECT 1", "latin1"), 0);
const kill = framePayload(Buffer.from("\x03 KILL 5", "latin1"), 0);
const changeUser = framePayload(Buffer.from("\x11u\0\0\0", "latin1"), 0);
const ping = framePayload(Buffer.from([0x0e]), 0);

function scanner(): PacketScanner {
  const s = new PacketScanner(true);
  s.interceptMask = MASK;
  return s;
}

describe("PacketScanner interception", () => {
  it("stops at the first intercepted command and reports its offset", () => {
    const s = scanner();
    const chunk = Buffer.concat([select, ping, changeUser, ping]);
    const ev = s.scan(chunk);
    expect(ev & ScanEvent.Intercept).toBeTruthy();
    expect(s.interceptOffset).toBe(select.length + ping.length + 4);
    s.resetToBoundary();
    expect(s.atBoundary()).toBe(true);
    expect(s.scan(ping)).toBe(ScanEvent.None);
  });

  it("passes ordinary queries without stopping, and stops at one that may be a KILL", () => {
    const s = scanner();
    expect(s.scan(Buffer.concat([select, select]))).toBe(ScanEvent.None);
    expect(s.scan(kill) & ScanEvent.Intercept).toBeTruthy();
    expect(s.interceptOffset).toBe(4);
  });

  it("ignores long queries and continuation packets", () => {
    const s = scanner();
    const long = framePayload(Buffer.concat([Buffer.from("\x03KILL "), Buffer.alloc(2000, 0x20)]), 0);
    expect(s.scan(long)).toBe(ScanEvent.None);
    const data = framePayload(Buffer.from("\x11not a command"), 2);
    expect(s.scan(data)).toBe(ScanEvent.None);
  });

  it("finds the command at every split offset, with the header left pending when split inside it", () => {
    const stream = Buffer.concat([select, changeUser]);
    for (let at = 0; at <= stream.length; at++) {
      const s = scanner();
      const a = stream.subarray(0, at);
      const b = stream.subarray(at);
      const ev1 = s.scan(a);
      const cmdAt = select.length + 4;
      if (at > cmdAt) {
        expect([at, ev1 & ScanEvent.Intercept, s.interceptOffset]).toEqual([at, ScanEvent.Intercept, cmdAt]);
        continue;
      }
      if (at === 5) {
        // the chunk ends right after SELECT's command byte: its text cannot be seen, so it is
        // reported (the session reads it whole, sees no KILL and forwards it)
        expect([ev1, s.interceptOffset]).toEqual([ScanEvent.Intercept, 4]);
        continue;
      }
      expect(ev1).toBe(ScanEvent.None);
      // a chunk ending inside the packet's first 5 bytes leaves state the session holds bytes back for
      if (at > select.length) expect(s.headerFill !== 0 || s.awaitingCommand).toBe(true);
      const ev2 = s.scan(b);
      expect([at, ev2 & ScanEvent.Intercept, s.interceptOffset]).toEqual([at, ScanEvent.Intercept, cmdAt - at]);
    }
  });
});
