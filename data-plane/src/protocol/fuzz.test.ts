// Hostile input (issue 3, point 8), pure part: property-based fuzzing of the
// code that reads what clients send. Bounded in CI; MYSQLGW_FUZZ_RUNS=N for
// longer runs on demand (e.g. MYSQLGW_FUZZ_RUNS=100000 npx jest fuzz).
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { MgwError, PacketTooLargeError } from "../errors";
import { PacketFramer } from "./framer";
import { PacketScanner, ScanEvent } from "./packet-scanner";
import { buildHandshakeResponse41, parseHandshakeResponse41, type HandshakeResponse41 } from "./packets/handshake-response41";
import { parseHandshakeV10 } from "./packets/handshake-v10";
import { parseErr } from "./packets/err";
import { parseOk } from "./packets/ok";
import { parseAuthSwitchRequest } from "./packets/auth-switch-request";
import { Capability } from "./constants";

const RUNS = Number(process.env.MYSQLGW_FUZZ_RUNS ?? 300);
const params = { numRuns: RUNS };

/** Splits `bytes` at the given cut points (any values: taken modulo the length). */
function chunk(bytes: Uint8Array, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % (bytes.length + 1))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(Buffer.from(bytes.subarray(prev, p)));
    prev = p;
  }
  return out;
}

/** Wire bytes of packets with these payloads (none of them 0xFFFFFF bytes long). */
function frame(payloads: Uint8Array[], firstSeq = 0): Buffer {
  return Buffer.concat(
    payloads.map((p, i) => {
      const h = Buffer.alloc(4);
      h.writeUIntLE(p.length, 0, 3);
      h[3] = (firstSeq + i) & 0xff;
      return Buffer.concat([h, p]);
    }),
  );
}

/** Runs `f`; an exception must be one of ours. */
function onlyOurErrors<T>(f: () => T): T | MgwError {
  try {
    return f();
  } catch (err) {
    if (err instanceof MgwError) return err;
    throw err;
  }
}

const bytes = (max = 300) => fc.uint8Array({ maxLength: max });
const cuts = fc.array(fc.nat(), { maxLength: 12 });

describe("PacketFramer on hostile bytes", () => {
  it("delivers the same packets whatever the chunking, each within maxPacketSize, and throws only PacketTooLargeError", () => {
    fc.assert(
      fc.property(fc.array(bytes(200), { maxLength: 8 }), bytes(64), cuts, fc.integer({ min: 0, max: 300 }), (payloads, tail, cutAt, max) => {
        const wire = Buffer.concat([frame(payloads), tail]);
        const run = (chunks: Buffer[]) => {
          const got: string[] = [];
          const f = new PacketFramer({ maxPacketSize: max }, (seq, p) => {
            expect(p.length).toBeLessThanOrEqual(max);
            got.push(`${seq}:${Buffer.from(p).toString("hex")}`);
          });
          let error: unknown = null;
          try {
            for (const c of chunks) f.push(c);
          } catch (err) {
            error = err;
          }
          if (error !== null) expect(error).toBeInstanceOf(PacketTooLargeError);
          return { got, error: error === null ? null : (error as Error).message };
        };
        const whole = run([wire]);
        expect(run(chunk(wire, cutAt))).toEqual(whole);
        // the framed payloads come out first, as sent, up to the first one over the limit
        const fit = payloads.findIndex((p) => p.length > max);
        const expected = (fit === -1 ? payloads : payloads.slice(0, fit)).map((p, i) => `${i & 0xff}:${Buffer.from(p).toString("hex")}`);
        expect(whole.got.slice(0, expected.length)).toEqual(expected);
        if (fit !== -1) expect(whole.error).not.toBeNull();
      }),
      params,
    );
  });

  it("never allocates more than maxPacketSize for a packet, whatever its header claims", () => {
    const spy = jest.spyOn(Buffer, "allocUnsafe");
    try {
      fc.assert(
        fc.property(bytes(400), cuts, fc.integer({ min: 0, max: 1 << 16 }), (raw, cutAt, max) => {
          spy.mockClear();
          const f = new PacketFramer({ maxPacketSize: max }, () => undefined);
          onlyOurErrors(() => {
            for (const c of chunk(raw, cutAt)) f.push(c);
          });
          for (const call of spy.mock.calls) expect(call[0]).toBeLessThanOrEqual(max);
        }),
        params,
      );
    } finally {
      spy.mockRestore();
    }
  });
});

describe("PacketScanner on hostile bytes", () => {
  it("never throws, and ends in the same state with the same events whatever the chunking", () => {
    fc.assert(
      fc.property(fc.oneof(bytes(400), fc.array(bytes(40), { maxLength: 10 }).map((ps) => new Uint8Array(frame(ps)))), cuts, fc.integer({ min: 0, max: 100 }), (raw, cutAt, max) => {
        const run = (chunks: Buffer[]) => {
          const s = new PacketScanner(true, max);
          let events = 0;
          for (const c of chunks) events |= s.scan(c);
          return { events, boundary: s.atBoundary(), commands: s.commandCount, last: s.lastCommand, remaining: s.remaining };
        };
        const whole = run([Buffer.from(raw)]);
        expect(run(chunk(raw, cutAt))).toEqual(whole);
      }),
      params,
    );
  });

  it("counts one command per framed packet and flags the oversize ones", () => {
    fc.assert(
      fc.property(fc.array(bytes(60).filter((p) => p.length > 0), { maxLength: 10 }), cuts, fc.integer({ min: 1, max: 60 }), (payloads, cutAt, max) => {
        const s = new PacketScanner(true, max);
        let events = 0;
        // every packet starts a command: sequence id 0
        for (const c of chunk(Buffer.concat(payloads.map((p) => frame([p]))), cutAt)) events |= s.scan(c);
        expect(s.commandCount).toBe(payloads.length);
        expect(s.atBoundary()).toBe(true);
        expect((events & ScanEvent.Oversize) !== 0).toBe(payloads.some((p) => p.length > max));
      }),
      params,
    );
  });
});

describe("handshake and reply parsers on hostile bytes", () => {
  it("parseHandshakeResponse41 throws only our errors, for any bytes and any announced capabilities", () => {
    fc.assert(
      fc.property(bytes(400), fc.nat({ max: 0xffffffff }), fc.boolean(), (raw, serverCaps, as41) => {
        const b = Buffer.from(raw);
        // half of the inputs claim the 4.1 protocol, to get past the first check
        if (as41 && b.length > 1) b[1] |= Capability.Protocol41 >>> 8;
        onlyOurErrors(() => parseHandshakeResponse41(b, serverCaps));
      }),
      params,
    );
  });

  const response = fc.record({
    // every 4.1 client sets SECURE_CONNECTION (without it the token is NUL-terminated and cannot hold a NUL)
    capabilities: fc.nat({ max: 0xffffffff }).map((c) => ((c | Capability.Protocol41 | Capability.SecureConnection) & ~Capability.Ssl) >>> 0),
    mariadbCapabilities: fc.nat({ max: 0xffffffff }),
    maxPacketSize: fc.nat({ max: 0xffffffff }),
    characterSet: fc.nat({ max: 255 }),
    username: fc.string({ maxLength: 40 }).filter((s) => !s.includes("\0")),
    authResponse: bytes(255).map((b) => Buffer.from(b)),
    database: fc.option(fc.string({ maxLength: 30 }).filter((s) => !s.includes("\0")), { nil: null }),
    authPluginName: fc.option(fc.stringMatching(/^[a-z_0-9]{0,30}$/), { nil: null }),
    connectAttributes: fc.array(fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 })), { maxLength: 5 }).map((kv) => new Map(kv)),
  });

  it("parseHandshakeResponse41 reads back what a client wrote, and any truncation of it throws only our errors", () => {
    fc.assert(
      fc.property(response, fc.nat(), (r: HandshakeResponse41, cut) => {
        const wire = buildHandshakeResponse41(r, 1).subarray(4);
        const back = parseHandshakeResponse41(wire);
        expect(back.username).toBe(r.username);
        expect(back.authResponse.equals(r.authResponse)).toBe(true);
        if ((r.capabilities & Capability.ConnectAttrs) !== 0) expect(back.connectAttributes).toEqual(r.connectAttributes);
        onlyOurErrors(() => parseHandshakeResponse41(wire.subarray(0, cut % (wire.length + 1))));
      }),
      params,
    );
  });

  it("the backend-side parsers throw only our errors", () => {
    fc.assert(
      fc.property(bytes(300), fc.nat({ max: 0xffffffff }), (raw, caps) => {
        const b = Buffer.from(raw);
        onlyOurErrors(() => parseHandshakeV10(b));
        onlyOurErrors(() => parseErr(b));
        onlyOurErrors(() => parseOk(b, caps));
        onlyOurErrors(() => parseAuthSwitchRequest(b));
      }),
      params,
    );
  });
});
