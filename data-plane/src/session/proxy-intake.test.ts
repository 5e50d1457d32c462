import { Buffer } from "node:buffer";
import { ProxyProtocolError } from "../errors";
import { IntakeMode, ProxyIntake, TrustedPeers, compileProxyProtocol, parseCidr, proxyHeaderFor } from "./proxy-intake";

const settings = (trustedCidrs: string[], required: boolean) => compileProxyProtocol({ $typeName: "mysqlgw.config.v1.ProxyProtocol", trustedCidrs, required });
const V2 = proxyHeaderFor("127.0.0.99", 40000, "127.0.0.1", 6033);
const RESPONSE = Buffer.from("2000000185a6ff01", "hex");

describe("TrustedPeers", () => {
  it("matches IPv4 and IPv6 ranges, IPv4-mapped peers against IPv4 ranges, and skips invalid entries", () => {
    const t = new TrustedPeers(["10.0.0.0/8", "192.0.2.7", "fd00::/64", "nonsense", "10.0.0.0/33"]);
    expect(t.invalid).toEqual(["nonsense", "10.0.0.0/33"]);
    expect(t.has("10.1.2.3")).toBe(true);
    expect(t.has("::ffff:10.1.2.3")).toBe(true);
    expect(t.has("11.0.0.1")).toBe(false);
    expect(t.has("192.0.2.7")).toBe(true);
    expect(t.has("192.0.2.8")).toBe(false);
    expect(t.has("fd00::1")).toBe(true);
    expect(t.has("fd01::1")).toBe(false);
    expect(t.has("unknown")).toBe(false);
  });

  it("parses CIDRs", () => {
    expect(parseCidr("::/0")).toEqual({ address: "::", prefix: 0, family: "ipv6" });
    expect(parseCidr("1.2.3.4")).toEqual({ address: "1.2.3.4", prefix: 32, family: "ipv4" });
    expect(parseCidr("1.2.3.4/010")).toBeNull();
  });

  it("compiles to null when nothing is configured", () => {
    expect(compileProxyProtocol(undefined)).toBeNull();
    expect(settings([], false)).toBeNull();
  });
});

describe("ProxyIntake", () => {
  it("untrusted: a MySQL response passes as the same bytes; any PROXY signature throws", () => {
    const a = new ProxyIntake(settings(["10.0.0.0/8"], true), "127.0.0.1");
    expect(a.mode).toBe(IntakeMode.Untrusted);
    expect(a.waitsBeforeGreeting).toBe(false);
    expect(a.push(RESPONSE)).toBe(true);
    expect(a.rest).toBe(RESPONSE);
    for (const first of [V2, Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")]) {
      const b = new ProxyIntake(null, "127.0.0.1");
      expect(b.push(first.subarray(0, 3))).toBe(false);
      expect(() => b.push(first.subarray(3))).toThrow(/not in the listener's proxyProtocol.trustedCidrs/);
    }
  });

  it("trusted and required: waits, takes the header and what follows; refuses anything else", () => {
    const a = new ProxyIntake(settings(["127.0.0.1/32"], true), "::ffff:127.0.0.1");
    expect(a.mode).toBe(IntakeMode.TrustedRequired);
    expect(a.waitsBeforeGreeting).toBe(true);
    expect(a.push(V2.subarray(0, 20))).toBe(false);
    expect(a.push(Buffer.concat([V2.subarray(20), RESPONSE]))).toBe(true);
    expect(a.header?.source).toEqual({ address: "127.0.0.99", port: 40000 });
    expect(a.rest?.equals(RESPONSE)).toBe(true);
    const b = new ProxyIntake(settings(["127.0.0.1/32"], true), "127.0.0.1");
    expect(() => b.push(RESPONSE)).toThrow(ProxyProtocolError);
    const c = new ProxyIntake(settings(["127.0.0.1/32"], true), "127.0.0.1");
    expect(() => c.push(Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n"))).toThrow(/port/);
  });

  it("trusted, optional: a header or none", () => {
    const a = new ProxyIntake(settings(["127.0.0.0/8"], false), "127.0.0.1");
    expect(a.mode).toBe(IntakeMode.TrustedOptional);
    expect(a.waitsBeforeGreeting).toBe(false);
    expect(a.push(RESPONSE)).toBe(true);
    expect(a.header).toBeNull();
    expect(a.rest).toBe(RESPONSE);
    const b = new ProxyIntake(settings(["127.0.0.0/8"], false), "127.0.0.1");
    expect(b.push(V2)).toBe(true);
    expect(b.header?.source?.address).toBe("127.0.0.99");
    expect(b.rest).toBeNull();
  });
});

describe("proxyHeaderFor", () => {
  it("writes TCP4 for IPv4 (IPv4-mapped addresses unmapped) and TCP6 otherwise", () => {
    expect(proxyHeaderFor("::ffff:127.0.0.5", 1, "::ffff:127.0.0.1", 2)[13]).toBe(0x11);
    expect(proxyHeaderFor("::1", 1, "::1", 2)[13]).toBe(0x21);
  });
});
