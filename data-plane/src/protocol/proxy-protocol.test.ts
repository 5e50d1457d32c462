import { Buffer } from "node:buffer";
import { ProxyProtocolError } from "../errors";
import {
  ProxyHeaderParser,
  ProxyParseStatus,
  ProxySniff,
  V1_MAX_LENGTH,
  V2_SIGNATURE,
  buildProxyV1Header,
  buildProxyV2Header,
  formatIPv6,
  parseIPv6,
  sniffProxyHeader,
  type ProxyHeader,
} from "./proxy-protocol";

/** What a MySQL client sends after the greeting: must come out untouched as `rest`. */
const HANDSHAKE = Buffer.from("2000000185a6ff0100000001210000000000000000000000000000000000000000000000", "hex");

interface Outcome {
  status: ProxyParseStatus;
  header: ProxyHeader | null;
  rest: string;
}

/** Feeds `parts` until the parser decides; what it decided and the bytes after the header. */
function feed(parts: Buffer[]): Outcome {
  const p = new ProxyHeaderParser();
  let status = ProxyParseStatus.NeedMore;
  let i = 0;
  for (; i < parts.length && status === ProxyParseStatus.NeedMore; i++) status = p.push(parts[i]);
  const tail = Buffer.concat([p.rest ?? Buffer.alloc(0), ...parts.slice(i)]);
  return { status, header: p.header, rest: tail.toString("hex") };
}

/** Every 1-split and a sample of 2-splits of `wire`: all must give `whole`'s outcome. */
function expectSplitInvariant(wire: Buffer, whole: Outcome): void {
  for (let a = 0; a <= wire.length; a++) {
    expect(feed([wire.subarray(0, a), wire.subarray(a)])).toEqual(whole);
  }
  for (let a = 0; a <= wire.length; a += 3) {
    for (let b = a; b <= wire.length; b += 5) {
      expect(feed([wire.subarray(0, a), wire.subarray(a, b), wire.subarray(b)])).toEqual(whole);
    }
  }
  // byte by byte
  expect(feed([...wire].map((x) => Buffer.from([x])))).toEqual(whole);
}

describe("PROXY v1", () => {
  it("parses TCP4 and leaves what follows", () => {
    const wire = Buffer.concat([Buffer.from("PROXY TCP4 127.0.0.99 10.1.2.3 40000 6033\r\n"), HANDSHAKE]);
    const whole = feed([wire]);
    expect(whole).toEqual({
      status: ProxyParseStatus.Done,
      header: { version: 1, source: { address: "127.0.0.99", port: 40000 }, destination: { address: "10.1.2.3", port: 6033 } },
      rest: HANDSHAKE.toString("hex"),
    });
    expectSplitInvariant(wire, whole);
  });

  it("parses TCP6 into canonical text", () => {
    const wire = Buffer.from("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 65535 0\r\n");
    expect(feed([wire])).toEqual({
      status: ProxyParseStatus.Done,
      header: { version: 1, source: { address: "2001:db8::1", port: 65535 }, destination: { address: "::1", port: 0 } },
      rest: "",
    });
  });

  it("parses UNKNOWN (with or without addresses) as no address", () => {
    for (const line of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"]) {
      expect(feed([Buffer.from(line)]).header).toEqual({ version: 1, source: null, destination: null });
    }
  });

  it("accepts the longest line (107 bytes) and refuses one byte more", () => {
    // the spec's worst case
    const max = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    expect(max.length).toBe(V1_MAX_LENGTH);
    expect(feed([Buffer.from(max)]).status).toBe(ProxyParseStatus.Done);
    const p = new ProxyHeaderParser();
    expect(() => p.push(Buffer.from("PROXY UNKNOWN " + "x".repeat(100)))).toThrow(ProxyProtocolError);
    // an endless line without CRLF is refused once 107 bytes are in, whatever the chunking
    const q = new ProxyHeaderParser();
    let thrown: unknown = null;
    for (let i = 0; i < 200 && thrown === null; i++) {
      try {
        expect(q.push(Buffer.from(i === 0 ? "PROXY " : "x"))).toBe(ProxyParseStatus.NeedMore);
      } catch (e) {
        thrown = e;
      }
    }
    expect(thrown).toBeInstanceOf(ProxyProtocolError);
  });

  it.each([
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "CRLF"],
    ["PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "address"],
    ["PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "address"],
    ["PROXY TCP4 ::1 ::1 1 2\r\n", "address"],
    ["PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "address"],
    ["PROXY TCP6 1::2::3 ::1 1 2\r\n", "address"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "port"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "port"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "PROXY TCP4|TCP6"],
    ["PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4|TCP6"],
    ["PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"],
  ])("refuses %j (%s)", (line, what) => {
    expect(() => new ProxyHeaderParser().push(Buffer.from(line))).toThrow(new RegExp(what.replace("|", "\\|")));
  });
});

describe("PROXY v2", () => {
  it("builds and parses TCP4, leaving what follows", () => {
    const header = buildProxyV2Header({ address: "127.0.0.99", port: 40000 }, { address: "127.0.0.1", port: 6033 });
    expect(header.toString("hex")).toBe(V2_SIGNATURE.toString("hex") + "2111000c" + "7f000063" + "7f000001" + "9c40" + "1791");
    const wire = Buffer.concat([header, HANDSHAKE]);
    const whole = feed([wire]);
    expect(whole).toEqual({
      status: ProxyParseStatus.Done,
      header: { version: 2, source: { address: "127.0.0.99", port: 40000 }, destination: { address: "127.0.0.1", port: 6033 } },
      rest: HANDSHAKE.toString("hex"),
    });
    expectSplitInvariant(wire, whole);
  });

  it("builds and parses TCP6; a mixed pair is written IPv4-mapped", () => {
    const h6 = buildProxyV2Header({ address: "2001:db8::7", port: 1 }, { address: "fe80::1:2", port: 2 });
    expect(h6[13]).toBe(0x21);
    expect(h6.readUInt16BE(14)).toBe(36);
    expect(feed([h6]).header).toEqual({ version: 2, source: { address: "2001:db8::7", port: 1 }, destination: { address: "fe80::1:2", port: 2 } });
    const mixed = buildProxyV2Header({ address: "10.0.0.1", port: 3 }, { address: "::1", port: 4 });
    expect(feed([mixed]).header).toEqual({ version: 2, source: { address: "::ffff:10.0.0.1", port: 3 }, destination: { address: "::1", port: 4 } });
    expect(() => buildProxyV2Header({ address: "db.example", port: 1 }, { address: "::1", port: 1 })).toThrow(ProxyProtocolError);
  });

  it("skips TLVs (bounded by the length field), at every split", () => {
    const base = buildProxyV2Header({ address: "192.0.2.1", port: 5 }, { address: "192.0.2.2", port: 6 });
    const tlvs = Buffer.from("0100026832" + "0400050000000000" + "2000050100000000", "hex"); // ALPN, NOOP, SSL
    const header = Buffer.concat([base, tlvs]);
    header.writeUInt16BE(12 + tlvs.length, 14);
    const wire = Buffer.concat([header, HANDSHAKE]);
    const whole = feed([wire]);
    expect(whole.header).toEqual({ version: 2, source: { address: "192.0.2.1", port: 5 }, destination: { address: "192.0.2.2", port: 6 } });
    expect(whole.rest).toBe(HANDSHAKE.toString("hex"));
    expectSplitInvariant(wire, whole);
  });

  it("LOCAL, UNSPEC and UNIX carry no address", () => {
    const local = Buffer.concat([V2_SIGNATURE, Buffer.from("20000000", "hex")]);
    expect(feed([local, HANDSHAKE])).toEqual({ status: ProxyParseStatus.Done, header: { version: 2, source: null, destination: null }, rest: HANDSHAKE.toString("hex") });
    const unspec = Buffer.concat([V2_SIGNATURE, Buffer.from("21000003aabbcc", "hex")]);
    expect(feed([unspec]).header).toEqual({ version: 2, source: null, destination: null });
    const unix = Buffer.concat([V2_SIGNATURE, Buffer.from("213100d8", "hex"), Buffer.alloc(216)]);
    expect(feed([unix]).header).toEqual({ version: 2, source: null, destination: null });
  });

  it.each([
    ["version 1", "1111000c" + "00".repeat(12), /version 1/],
    ["unknown command", "2f11000c" + "00".repeat(12), /command/],
    ["short TCP4 block", "21110008" + "00".repeat(8), /want 12/],
    ["short TCP6 block", "2121000c" + "00".repeat(12), /want 36/],
    ["UDP", "2112000c" + "00".repeat(12), /datagram/],
    ["unknown family", "2141000c" + "00".repeat(12), /family/],
  ])("refuses %s", (_what, rest, msg) => {
    expect(() => new ProxyHeaderParser().push(Buffer.concat([V2_SIGNATURE, Buffer.from(rest, "hex")]))).toThrow(msg);
  });

  it("refuses a header longer than maxV2Length as soon as the length is known", () => {
    const p = new ProxyHeaderParser({ maxV2Length: 100 });
    expect(() => p.push(Buffer.concat([V2_SIGNATURE, Buffer.from("21110060", "hex")]))).toThrow(/exceeds the limit of 100/);
    const q = new ProxyHeaderParser();
    expect(() => q.push(Buffer.concat([V2_SIGNATURE, Buffer.from("2111ffff", "hex")]))).toThrow(/limit of 4096/);
  });
});

describe("no PROXY header", () => {
  it("a MySQL handshake response is NotProxy and comes back whole, as the same view when unsplit", () => {
    const p = new ProxyHeaderParser();
    expect(p.push(HANDSHAKE)).toBe(ProxyParseStatus.NotProxy);
    expect(p.rest).toBe(HANDSHAKE);
    expectSplitInvariant(HANDSHAKE, { status: ProxyParseStatus.NotProxy, header: null, rest: HANDSHAKE.toString("hex") });
  });

  it("a near miss of either prefix is NotProxy with every byte kept", () => {
    for (const s of ["PROXX ", "\r\n\r\n\0\r\nQUIX\n", "P", "\r"]) {
      const wire = Buffer.concat([Buffer.from(s, "latin1"), HANDSHAKE]);
      expect(feed([wire])).toEqual({ status: ProxyParseStatus.NotProxy, header: null, rest: wire.toString("hex") });
    }
  });

  it("signatureOnly: Done at the signature, with no header", () => {
    for (const wire of [Buffer.from("PROXY TCP4 1.2.3.4"), V2_SIGNATURE]) {
      for (let at = 0; at < 12 && at < wire.length; at++) {
        const p = new ProxyHeaderParser({ signatureOnly: true });
        const sigLength = wire[0] === 0x50 ? 6 : 12;
        const first = p.push(wire.subarray(0, at));
        expect(first).toBe(at >= sigLength ? ProxyParseStatus.Done : ProxyParseStatus.NeedMore);
        if (first === ProxyParseStatus.NeedMore) expect(p.push(wire.subarray(at))).toBe(ProxyParseStatus.Done);
        expect(p.header).toBeNull();
      }
    }
    const q = new ProxyHeaderParser({ signatureOnly: true });
    expect(q.push(HANDSHAKE)).toBe(ProxyParseStatus.NotProxy);
  });

  it("sniffs prefixes", () => {
    expect(sniffProxyHeader(Buffer.alloc(0))).toBe(ProxySniff.Maybe);
    expect(sniffProxyHeader(Buffer.from("PRO"))).toBe(ProxySniff.Maybe);
    expect(sniffProxyHeader(Buffer.from("PROXY"))).toBe(ProxySniff.Maybe);
    expect(sniffProxyHeader(Buffer.from("PROXY "))).toBe(ProxySniff.Proxy);
    expect(sniffProxyHeader(V2_SIGNATURE.subarray(0, 11))).toBe(ProxySniff.Maybe);
    expect(sniffProxyHeader(V2_SIGNATURE)).toBe(ProxySniff.Proxy);
    expect(sniffProxyHeader(HANDSHAKE)).toBe(ProxySniff.NotProxy);
    expect(sniffProxyHeader(Buffer.from([0x50, 0x00]))).toBe(ProxySniff.NotProxy); // an 80-byte packet
  });
});

describe("IPv6 text", () => {
  it.each([
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"],
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"],
    ["::ffff:10.0.0.1", "::ffff:10.0.0.1"],
    ["::FFFF:0a00:0001", "::ffff:10.0.0.1"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
  ])("%s → %s", (input, canonical) => {
    const b = parseIPv6(input);
    expect(b).not.toBeNull();
    expect(formatIPv6(b!, 0)).toBe(canonical);
  });

  it.each(["", ":", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", "::1.2.3", "1:2:3:4:5:6:7::8:9"])("refuses %j", (input) => {
    expect(parseIPv6(input)).toBeNull();
  });
});

describe("buildProxyV1Header", () => {
  it("writes a line the parser reads back", () => {
    const h = buildProxyV1Header({ address: "127.0.0.98", port: 40001 }, { address: "127.0.0.1", port: 3306 });
    expect(h.toString()).toBe("PROXY TCP4 127.0.0.98 127.0.0.1 40001 3306\r\n");
    expect(feed([h]).header?.source).toEqual({ address: "127.0.0.98", port: 40001 });
  });
});
