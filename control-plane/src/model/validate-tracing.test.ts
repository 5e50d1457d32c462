import { create } from "@bufbuild/protobuf";
import { PolicySchema, type Policy } from "@mysqlgw/proto";
import { validatePolicy } from "./validate";

function withTracing(tracing: Record<string, unknown>): Policy {
  return create(PolicySchema, {
    clusters: [{ name: "orders", backends: [{ name: "db1", address: "127.0.0.1:3306" }] }],
    listeners: [{ name: "rw", port: 6033, cluster: "orders" }],
    users: [{ name: "shop", passwordHash: "*F142931D9296BB66D4600D47418DBC1475D27D29" }],
    gateway: { tracing },
  });
}

describe("Gateway.tracing", () => {
  it("accepts ratios 0..1, absent ratio, and thresholds 0..1 h", () => {
    expect(validatePolicy(withTracing({}))).toEqual([]);
    expect(validatePolicy(withTracing({ samplingRatio: 0, slowThreshold: { seconds: 0n, nanos: 0 } }))).toEqual([]);
    expect(validatePolicy(withTracing({ samplingRatio: 1, slowThreshold: { seconds: 3600n, nanos: 0 } }))).toEqual([]);
    expect(validatePolicy(withTracing({ samplingRatio: 0.01, slowThreshold: { seconds: 0n, nanos: 500_000_000 } }))).toEqual([]);
  });

  it("names a ratio outside 0..1 and a threshold out of range, saying what to write", () => {
    for (const r of [1.5, -0.1, Number.NaN]) {
      const v = validatePolicy(withTracing({ samplingRatio: r }));
      expect(v.map((x) => `${x.kind}/${x.name}/${x.field}`)).toEqual(["Gateway/gateway/tracing.samplingRatio"]);
      expect(v[0]!.description).toContain("from 0");
    }
    const v = validatePolicy(withTracing({ slowThreshold: { seconds: 7200n, nanos: 0 } }));
    expect(v.map((x) => x.field)).toEqual(["tracing.slowThreshold"]);
    expect(v[0]!.description).toContain("7200000 ms is out of range");
    expect(validatePolicy(withTracing({ slowThreshold: { seconds: -1n, nanos: 0 } })).map((x) => x.field)).toEqual(["tracing.slowThreshold"]);
  });
});
