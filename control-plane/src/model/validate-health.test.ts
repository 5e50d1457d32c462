import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { PolicySchema } from "@mysqlgw/proto";
import { validatePolicy } from "./validate";

function withHealth(health: Record<string, unknown>) {
  return create(PolicySchema, { clusters: [{ name: "orders", backends: [{ name: "db1", address: "127.0.0.1:3306" }], health }] });
}

describe("Cluster.health validation", () => {
  it("accepts defaults and a complete health check", () => {
    expect(validatePolicy(withHealth({}))).toEqual([]);
    expect(validatePolicy(withHealth({
      interval: durationFromMs(500), timeout: durationFromMs(800), failureThreshold: 3, maxReplicationLag: durationFromMs(30_000),
      credentials: { user: "mgw_monitor", secretRef: "env:MONITOR_PW" },
    }))).toEqual([]);
  });

  it("names each bad field with what to do", () => {
    const v = validatePolicy(withHealth({
      interval: durationFromMs(10), timeout: durationFromMs(120_000), failureThreshold: 1000,
      credentials: { user: "", secretRef: "hunter2" },
    }));
    expect(v.map((x) => x.field)).toEqual(["health.interval", "health.timeout", "health.failureThreshold", "health.credentials.user", "health.credentials.secretRef"]);
    expect(v[0]!.description).toMatch(/^10 ms is out of range; use 100 ms to 3600 s/);
    expect(v[4]!.description).toMatch(/not a secret reference \(value not shown\).*control plane/);
    expect(v[4]!.description).not.toContain("hunter2");
    expect(v.every((x) => x.kind === "Cluster" && x.name === "orders" && x.index === 0)).toBe(true);
  });
});
