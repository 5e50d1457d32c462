/* eslint-disable @typescript-eslint/no-explicit-any -- protobufjs decodes to untyped objects */
import * as path from "node:path";
import * as protoLoader from "@grpc/proto-loader";
import { encodeExportTraceServiceRequest, phaseSpans, spanCount, type SpanData } from "./otlp-encode";

// The test receivers' copy of the OTLP trace protos (upstream field numbers), decoded by protobufjs.
const PROTO = path.resolve(__dirname, "../../../test/helpers/otlp/trace_service.proto");

function decode(bytes: Uint8Array): any {
  const def = protoLoader.loadSync(PROTO, { longs: String, enums: Number, defaults: false, oneofs: true });
  const svc = def["opentelemetry.proto.collector.trace.v1.TraceService"] as unknown as { Export: { requestDeserialize(b: Buffer): unknown } };
  return svc.Export.requestDeserialize(Buffer.from(bytes));
}

function span(over: Partial<SpanData> = {}): SpanData {
  return {
    name: "SELECT shop",
    kind: 2,
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    parentSpanId: "",
    remoteParent: false,
    startMs: 1_700_000_000_123.25, // exact in a double (performance.now() gives µs at best)
    endMs: 1_700_000_000_125.5,
    attributes: { "db.query.text": "SELECT ? — ünïcode", "mysqlgw.rows": 3, "mysqlgw.big": 2 ** 40, "mysqlgw.ratio": 0.25, "mysqlgw.neg": -7, "mysqlgw.tls": true },
    status: 0,
    statusMessage: "",
    ...over,
  };
}

describe("encodeExportTraceServiceRequest", () => {
  it("writes what protobufjs decodes as the OTLP message: ids, parent, flags, times in ns, attributes of each type, status, resource and scope", () => {
    const long = "x".repeat(300); // a length of two varint bytes, and a span past 16 KiB total
    const spans = [
      span(),
      span({ name: "backend", kind: 3, spanId: "1111111111111111", parentSpanId: "00f067aa0ba902b7", status: 2, statusMessage: "error 1146", attributes: { long, "mysqlgw.error_code": 1146 } }),
      span({ spanId: "2222222222222222", parentSpanId: "aaaaaaaaaaaaaaaa", remoteParent: true, attributes: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, long])) }),
    ];
    const req = decode(encodeExportTraceServiceRequest(spans, { resource: { "service.name": "mysqlgw", "service.instance.id": "dp/0" }, scopeName: "mysqlgw", scopeVersion: "1" }));
    const rs = req.resourceSpans[0];
    expect(rs.resource.attributes.map((kv: any) => [kv.key, kv.value.stringValue])).toEqual([["service.name", "mysqlgw"], ["service.instance.id", "dp/0"]]);
    expect(rs.scopeSpans[0].scope).toMatchObject({ name: "mysqlgw", version: "1" });
    const [a, b, c] = rs.scopeSpans[0].spans;
    expect(Buffer.from(a.traceId).toString("hex")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(Buffer.from(a.spanId).toString("hex")).toBe("00f067aa0ba902b7");
    expect(a.parentSpanId === undefined || a.parentSpanId.length === 0).toBe(true);
    expect(a).toMatchObject({ name: "SELECT shop", kind: 2, startTimeUnixNano: "1700000000123250000", endTimeUnixNano: "1700000000125500000", flags: 1 });
    const attrs = Object.fromEntries(a.attributes.map((kv: any) => [kv.key, kv.value[kv.value.value]]));
    expect(attrs).toEqual({ "db.query.text": "SELECT ? — ünïcode", "mysqlgw.rows": "3", "mysqlgw.big": String(2 ** 40), "mysqlgw.ratio": 0.25, "mysqlgw.neg": -7, "mysqlgw.tls": true });
    expect(a.status ?? null).toBeNull();
    expect(b).toMatchObject({ name: "backend", kind: 3, status: { code: 2, message: "error 1146" }, flags: 0x101 });
    expect(Buffer.from(b.parentSpanId).toString("hex")).toBe("00f067aa0ba902b7");
    expect(b.attributes[0].value.stringValue).toBe(long);
    expect(c.flags).toBe(0x301);
    expect(c.attributes).toHaveLength(60);
    expect(c.attributes[59]).toMatchObject({ key: "k59", value: { stringValue: long } });
  });

  it("writes a statement span's phases as its child spans, as phaseSpans() describes them", () => {
    const stmt = span({
      spanId: "00f067aa0ba902b7",
      phases: { routedMs: 1_700_000_000_123.5, acquiredMs: 1_700_000_000_124, firstByteMs: 1_700_000_000_125, pool: { "mysqlgw.backend": "db2" }, backend: { "mysqlgw.backend": "db2", "server.address": "10.0.0.7", "server.port": 3307 } },
    });
    const local = span({ spanId: "1234567812345678", phases: { routedMs: 1_700_000_000_124, acquiredMs: 1_700_000_000_124, firstByteMs: 1_700_000_000_124, pool: {}, backend: null } });
    expect([spanCount(stmt), spanCount(local), spanCount(span())]).toEqual([5, 3, 1]);
    const got = decode(encodeExportTraceServiceRequest([stmt, local], { resource: {}, scopeName: "mysqlgw", scopeVersion: "" })).resourceSpans[0].scopeSpans[0].spans;
    const want = [stmt, ...phaseSpans(stmt), local, ...phaseSpans(local)];
    expect(got.map((x: any) => x.name)).toEqual(["SELECT shop", "route", "pool acquire", "backend", "transfer", "SELECT shop", "route", "transfer"]);
    got.forEach((x: any, i: number) => {
      const w = want[i]!;
      expect(Buffer.from(x.spanId).toString("hex")).toBe(w.spanId);
      expect(x.parentSpanId?.length ? Buffer.from(x.parentSpanId).toString("hex") : "").toBe(w.parentSpanId);
      expect(x.kind).toBe(w.kind);
      expect(BigInt(x.startTimeUnixNano)).toBe(BigInt(Math.round(w.startMs * 1e3)) * 1000n);
      expect(BigInt(x.endTimeUnixNano)).toBe(BigInt(Math.round(w.endMs * 1e3)) * 1000n);
      expect(Object.fromEntries((x.attributes ?? []).map((kv: any) => [kv.key, kv.value[kv.value.value]]))).toEqual(
        Object.fromEntries(Object.entries(w.attributes).map(([k, v]) => [k, typeof v === "number" && Number.isInteger(v) && v >= 0 ? String(v) : v])),
      );
    });
    expect(new Set(want.map((x) => x.spanId)).size).toBe(want.length);
  });
});
