import { create } from "@bufbuild/protobuf";
import { BackendHealth_Role, BackendHealth_State, BackendHealthSchema, ClusterEpochSchema, ClusterSchema, type BackendHealth } from "@mysqlgw/proto";
import { planSwitchover, sameAddress, switchoverWindows, type BackendState } from "./plan";

const cluster = create(ClusterSchema, {
  name: "shop",
  backends: [
    { name: "db1", address: "10.0.0.1:3306" },
    { name: "db2", address: "10.0.0.2:3306" },
    { name: "db3", address: "10.0.0.3:3306" },
  ],
});

function state(name: string, o: Partial<BackendState> = {}): BackendState {
  const replica = name !== "db1";
  return {
    name,
    address: cluster.backends.find((b) => b.name === name)!.address,
    error: null,
    readOnly: replica,
    replicating: replica,
    sourceAddress: replica ? "10.0.0.1:3306" : "",
    ioRunning: replica,
    sqlRunning: replica,
    lagSeconds: replica ? 0 : null,
    gtidBinlogPos: "0-1-100",
    gtidSlavePos: replica ? "0-1-100" : "",
    gtidIoPos: replica ? "0-1-100" : "",
    semiSyncSlave: true,
    ...o,
  };
}

const none = new Map<string, BackendHealth>();

describe("planSwitchover", () => {
  it("promotes the named replica and re-points the other one", () => {
    const r = planSwitchover(cluster, [state("db1"), state("db2"), state("db3")], none, null, "db3", 5);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.plan.oldPrimary.name).toBe("db1");
    expect(r.plan.target.name).toBe("db3");
    expect(r.plan.others.map((s) => s.name)).toEqual(["db2"]);
    expect(r.plan.skipped).toEqual([]);
  });

  it("without --to, picks the replica that received the most (ties: policy order)", () => {
    const more = planSwitchover(cluster, [state("db1"), state("db2", { gtidIoPos: "0-1-90" }), state("db3", { gtidIoPos: "0-1-99" })], none, null, "", 5);
    expect(more.ok && more.plan.target.name).toBe("db3");
    const tie = planSwitchover(cluster, [state("db1"), state("db2"), state("db3")], none, null, "", 5);
    expect(tie.ok && tie.plan.target.name).toBe("db2");
  });

  it("skips a replica that does not answer or replicates from elsewhere, and never picks it", () => {
    const r = planSwitchover(cluster, [state("db1"), state("db2", { error: "connect ECONNREFUSED" }), state("db3")], none, null, "", 5);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.plan.target.name).toBe("db3");
    expect(r.plan.others).toEqual([]);
    expect(r.plan.skipped).toEqual(["db2: does not answer (connect ECONNREFUSED); re-point it by hand"]);
  });

  it.each([
    ["an unknown target", [state("db1"), state("db2"), state("db3")], "db9", "cluster shop has no backend 'db9' (backends: db1, db2, db3)"],
    ["the primary itself", [state("db1"), state("db2"), state("db3")], "db1", "shop/db1 is already the primary"],
    ["a target that does not answer", [state("db1"), state("db2", { error: "timeout" }), state("db3")], "db2", "shop/db2 cannot be promoted: it does not answer (timeout)"],
    ["a target with its SQL thread stopped", [state("db1"), state("db2", { sqlRunning: false, lagSeconds: null }), state("db3")], "db2", "it is not replicating (IO thread running, SQL thread stopped)"],
    ["a lagging target", [state("db1"), state("db2", { lagSeconds: 7 }), state("db3")], "db2", "lags 7 s behind db1, as long as the hold window (5 s) or more"],
    ["a target replicating from elsewhere", [state("db1"), state("db2", { sourceAddress: "10.0.0.9:3306" }), state("db3")], "db2", "does not replicate from the primary db1 (its source is 10.0.0.9:3306)"],
    ["a primary that does not answer", [state("db1", { error: "connect ECONNREFUSED" }), state("db2"), state("db3")], "", "use failover"],
    ["two writable servers", [state("db1"), state("db2", { readOnly: false, replicating: false }), state("db3")], "", "several writable servers that replicate from nobody (db1, db2)"],
    ["no usable replica", [state("db1"), state("db2", { ioRunning: false }), state("db3", { error: "x" })], "", "no replica of shop can be promoted: db2 is not replicating"],
  ])("refuses %s", (_what, states, to, reason) => {
    const health = new Map([["db1", create(BackendHealthSchema, { backend: "db1", state: BackendHealth_State.UP, role: BackendHealth_Role.PRIMARY })]]);
    const r = planSwitchover(cluster, states, health, null, to, 5);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toContain(reason);
  });

  it("refuses a fenced or monitor-DOWN target", () => {
    const epoch = create(ClusterEpochSchema, { cluster: "shop", epoch: 3n, primary: "db1", fenced: ["db2"] });
    const fenced = planSwitchover(cluster, [state("db1"), state("db2"), state("db3")], none, epoch, "db2", 5);
    expect(!fenced.ok && fenced.reason).toContain("is fenced (a former primary, epoch 3)");
    const down = new Map([["db3", create(BackendHealthSchema, { backend: "db3", state: BackendHealth_State.DOWN, lastError: "probe timeout" })]]);
    const r = planSwitchover(cluster, [state("db1"), state("db2"), state("db3")], down, null, "db3", 5);
    expect(!r.ok && r.reason).toContain("is DOWN in the monitor's view (probe timeout)");
  });
});

describe("switchoverWindows", () => {
  it("defaults to 5 s and 3 s and checks the bounds", () => {
    expect(switchoverWindows(null, null)).toEqual({ ok: true, holdMs: 5000, drainMs: 3000 });
    expect(switchoverWindows(500, null).ok).toBe(false);
    expect(switchoverWindows(2000, 1600)).toMatchObject({ ok: false });
    expect(switchoverWindows(2000, 1500)).toEqual({ ok: true, holdMs: 2000, drainMs: 1500 });
  });
});

test("sameAddress treats localhost and ::1 as 127.0.0.1", () => {
  expect(sameAddress("localhost:3306", "127.0.0.1:3306")).toBe(true);
  expect(sameAddress("[::1]:3307", "127.0.0.1:3307")).toBe(true);
  expect(sameAddress("10.0.0.1:3306", "10.0.0.1:3307")).toBe(false);
});
