import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { BackendPoolSchema } from "@mysqlgw/proto";
import { DEFAULT_POOL_SETTINGS, compilePoolSettings, samePoolSettings } from "./pool-settings";

describe("compilePoolSettings", () => {
  it("gives the proto's defaults for an absent pool and absent fields", () => {
    const d = { minIdle: 0, maxConnections: 100, maxLifetimeMs: 3_600_000, idleTimeoutMs: 300_000, checkAfterIdleMs: 5000, acquireTimeoutMs: 2000 };
    expect(compilePoolSettings(undefined)).toEqual(d);
    expect(compilePoolSettings(create(BackendPoolSchema, {}))).toEqual(d);
    expect(DEFAULT_POOL_SETTINGS).toEqual(d);
  });

  it("takes every field, in milliseconds", () => {
    const p = create(BackendPoolSchema, {
      minIdle: 3, maxConnections: 10, maxLifetime: durationFromMs(60_000), idleTimeout: durationFromMs(1500),
      checkAfterIdle: durationFromMs(250), acquireTimeout: { seconds: BigInt(1), nanos: 500_000_000 },
    });
    expect(compilePoolSettings(p)).toEqual({ minIdle: 3, maxConnections: 10, maxLifetimeMs: 60_000, idleTimeoutMs: 1500, checkAfterIdleMs: 250, acquireTimeoutMs: 1500 });
  });

  it("caps minIdle at maxConnections and replaces zero or negative durations by the defaults", () => {
    const p = create(BackendPoolSchema, { minIdle: 500, maxLifetime: durationFromMs(0), acquireTimeout: { seconds: BigInt(-1), nanos: 0 } });
    const s = compilePoolSettings(p);
    expect(s.minIdle).toBe(100);
    expect(s.maxLifetimeMs).toBe(3_600_000);
    expect(s.acquireTimeoutMs).toBe(2000);
  });

  it("samePoolSettings compares every field", () => {
    const a = compilePoolSettings(undefined);
    expect(samePoolSettings(a, { ...a })).toBe(true);
    for (const k of Object.keys(a) as (keyof typeof a)[]) expect(samePoolSettings(a, { ...a, [k]: a[k] + 1 })).toBe(false);
  });
});
