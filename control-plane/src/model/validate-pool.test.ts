import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { PolicySchema } from "@mysqlgw/proto";
import { validatePolicy } from "./validate";

function withPool(pool: Record<string, unknown>) {
  return create(PolicySchema, { clusters: [{ name: "orders", backends: [{ name: "db1", address: "127.0.0.1:3306" }], pool }] });
}

describe("Cluster.pool validation", () => {
  it("accepts defaults and a complete pool", () => {
    expect(validatePolicy(withPool({}))).toEqual([]);
    expect(validatePolicy(withPool({
      minIdle: 4, maxConnections: 50, maxLifetime: durationFromMs(3_600_000), idleTimeout: durationFromMs(300_000),
      checkAfterIdle: durationFromMs(5000), acquireTimeout: durationFromMs(60_000),
    }))).toEqual([]);
    // minIdle up to the default maxConnections (100) when maxConnections is absent
    expect(validatePolicy(withPool({ minIdle: 100 }))).toEqual([]);
  });

  it("names each bad field with what to do", () => {
    const v = validatePolicy(withPool({
      minIdle: 20, maxConnections: 10, maxLifetime: durationFromMs(0), idleTimeout: { seconds: BigInt(-5), nanos: 0 },
      checkAfterIdle: durationFromMs(2 * 86_400_000), acquireTimeout: durationFromMs(61_000),
    }));
    expect(v.map((x) => x.field)).toEqual(["pool.minIdle", "pool.maxLifetime", "pool.idleTimeout", "pool.checkAfterIdle", "pool.acquireTimeout"]);
    expect(v[0]!.description).toBe("20 is more than maxConnections (10); lower minIdle or raise maxConnections");
    expect(v[1]!.description).toMatch(/^0 ms is out of range; use 1 ms to 30 days \(e\.g\. 3600s\)/);
    expect(v[2]!.description).toMatch(/^-5000 ms is out of range/);
    expect(v[3]!.description).toMatch(/use 1 ms to 1 day/);
    expect(v[4]!.description).toMatch(/^61000 ms is out of range; use 1 ms to 60 s \(e\.g\. 2s\)/);
    expect(v.every((x) => x.kind === "Cluster" && x.name === "orders" && x.index === 0)).toBe(true);
  });

  it("bounds maxConnections and compares minIdle with the default when it is absent", () => {
    const v = validatePolicy(withPool({ maxConnections: 200_000 }));
    expect(v.map((x) => [x.field, x.description])).toEqual([
      ["pool.maxConnections", "200000 is too large; use 1..100000 (0 or absent means 100); it is per data-plane worker and backend"],
    ]);
    const w = validatePolicy(withPool({ minIdle: 101 }));
    expect(w.map((x) => [x.field, x.description])).toEqual([
      ["pool.minIdle", "101 is more than maxConnections (100, the default); lower minIdle or raise maxConnections"],
    ]);
  });
});
