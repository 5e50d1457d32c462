import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Backend_Role, BackendHealth_Role, BackendHealth_State, BackendHealthSchema, HealthCheckSchema } from "@mysqlgw/proto";
import { applyProbe, buildHealth, discoverRole, healthFingerprint, newTracker, observe, probeSettings, roleDisagreement, shouldWrite, type ProbeObservation } from "./health";
import { resolveMonitorSecret } from "./secret";
import { isMgwError } from "../errors";

const PRIMARY_VARS = { "@@read_only": 0, "@@server_id": 1, "@@gtid_binlog_pos": "0-1-7", "@@gtid_current_pos": "0-1-7", "@@gtid_slave_pos": "" };
const REPLICA_VARS = { "@@read_only": 1, "@@server_id": "2", "@@gtid_binlog_pos": "", "@@gtid_current_pos": "0-1-7", "@@gtid_slave_pos": "0-1-7" };
const SLAVE_ROW = { Slave_IO_Running: "Yes", Slave_SQL_Running: "Yes", Seconds_Behind_Master: 0, Master_Host: "127.0.0.1", Master_Port: 3307 };

const ids = { cluster: "orders", backend: "db1", address: "127.0.0.1:3306", monitorId: "cp-1" };

function obs(vars: Record<string, unknown>, slave?: Record<string, unknown>): ProbeObservation {
  return observe(vars, slave);
}

describe("observe and discoverRole", () => {
  it("a writable server without a source is PRIMARY", () => {
    const o = obs(PRIMARY_VARS);
    expect(o).toEqual({
      readOnly: false, serverId: 1, gtidBinlogPos: "0-1-7", gtidCurrentPos: "0-1-7", gtidSlavePos: "",
      replicationConfigured: false, ioRunning: false, sqlRunning: false, lagSeconds: null, sourceAddress: "",
    });
    expect(discoverRole(o)).toBe(BackendHealth_Role.PRIMARY);
  });

  it("a replicating read_only server is REPLICA with its source, threads and lag", () => {
    const o = obs(REPLICA_VARS, { ...SLAVE_ROW, Seconds_Behind_Master: "12" });
    expect(o.serverId).toBe(2);
    expect(o.sourceAddress).toBe("127.0.0.1:3307");
    expect([o.ioRunning, o.sqlRunning, o.lagSeconds]).toEqual([true, true, 12]);
    expect(discoverRole(o)).toBe(BackendHealth_Role.REPLICA);
  });

  it("replicating but writable is still REPLICA (it has a source)", () => {
    expect(discoverRole(obs({ ...REPLICA_VARS, "@@read_only": 0 }, SLAVE_ROW))).toBe(BackendHealth_Role.REPLICA);
  });

  it("read_only without a source is REPLICA (fenced or not yet promoted)", () => {
    expect(discoverRole(obs({ ...PRIMARY_VARS, "@@read_only": 1 }))).toBe(BackendHealth_Role.REPLICA);
  });

  it("a paused replica (threads stopped, NULL lag) stays REPLICA with lag unknown", () => {
    const o = obs(REPLICA_VARS, { ...SLAVE_ROW, Slave_IO_Running: "No", Slave_SQL_Running: "No", Seconds_Behind_Master: null });
    expect([o.ioRunning, o.sqlRunning, o.lagSeconds, discoverRole(o)]).toEqual([false, false, null, BackendHealth_Role.REPLICA]);
  });

  it("IO thread connecting counts as not running; an IPv6 source is bracketed", () => {
    const o = obs(REPLICA_VARS, { ...SLAVE_ROW, Slave_IO_Running: "Connecting", Master_Host: "::1" });
    expect(o.ioRunning).toBe(false);
    expect(o.sourceAddress).toBe("[::1]:3307");
  });

  it("an empty SHOW SLAVE STATUS row (RESET SLAVE ALL leaves none; a blank Master_Host) is no replication", () => {
    expect(obs(PRIMARY_VARS, { ...SLAVE_ROW, Master_Host: "" }).replicationConfigured).toBe(false);
  });
});

describe("applyProbe: UP and DOWN", () => {
  const ok = { ok: true as const, observation: obs(PRIMARY_VARS) };
  const fail = { ok: false as const, error: "connection refused" };

  it("UP at the first success; DOWN only at the threshold-th consecutive failure", () => {
    const t = newTracker();
    expect(t.state).toBe(BackendHealth_State.UNSPECIFIED);
    applyProbe(t, ok, 3);
    expect(t.state).toBe(BackendHealth_State.UP);
    applyProbe(t, fail, 3);
    applyProbe(t, fail, 3);
    expect([t.state, t.consecutiveFailures, t.lastError]).toEqual([BackendHealth_State.UP, 2, "connection refused"]);
    applyProbe(t, fail, 3);
    expect([t.state, t.consecutiveFailures]).toEqual([BackendHealth_State.DOWN, 3]);
    applyProbe(t, ok, 3);
    expect([t.state, t.consecutiveFailures, t.lastError]).toEqual([BackendHealth_State.UP, 0, ""]);
  });

  it("a success between failures resets the count (flapping under the threshold never goes DOWN)", () => {
    const t = newTracker();
    for (let i = 0; i < 20; i++) applyProbe(t, i % 3 === 2 ? ok : fail, 3);
    expect(t.state).toBe(BackendHealth_State.UP);
  });

  it("a backend never seen up stays UNSPECIFIED until the threshold, then DOWN; threshold 1 is immediate", () => {
    const t = newTracker();
    applyProbe(t, fail, 2);
    expect(t.state).toBe(BackendHealth_State.UNSPECIFIED);
    applyProbe(t, fail, 2);
    expect(t.state).toBe(BackendHealth_State.DOWN);
    const u = newTracker();
    applyProbe(u, fail, 1);
    expect(u.state).toBe(BackendHealth_State.DOWN);
  });

  it("while DOWN the last known role and positions are kept", () => {
    const t = newTracker();
    applyProbe(t, { ok: true, observation: obs(REPLICA_VARS, SLAVE_ROW) }, 1);
    applyProbe(t, fail, 1);
    const h = buildHealth(t, ids, 1_700_000_000_000);
    expect([h.state, h.role, h.serverId, h.gtidSlavePos, h.lastError]).toEqual([BackendHealth_State.DOWN, BackendHealth_Role.REPLICA, 2, "0-1-7", "connection refused"]);
  });
});

describe("buildHealth and write decisions", () => {
  it("fills every field and survives proto3 JSON", () => {
    const t = newTracker();
    applyProbe(t, { ok: true, observation: obs(REPLICA_VARS, { ...SLAVE_ROW, Seconds_Behind_Master: 4 }) }, 3);
    const h = buildHealth(t, ids, 1_700_000_000_123);
    const back = fromJsonString(BackendHealthSchema, toJsonString(BackendHealthSchema, h));
    expect(back.state).toBe(BackendHealth_State.UP);
    expect(back.role).toBe(BackendHealth_Role.REPLICA);
    expect(back.sourceAddress).toBe("127.0.0.1:3307");
    expect(durationMs(back.replicationLag!)).toBe(4000);
    expect(timestampMs(back.checkedAt!)).toBe(1_700_000_000_123);
    expect(back.monitorId).toBe("cp-1");
    expect(JSON.parse(toJsonString(BackendHealthSchema, h))).toMatchObject({ state: "STATE_UP", role: "ROLE_REPLICA", serverId: 2 });
  });

  it("the fingerprint ignores checked_at and failures beyond the threshold", () => {
    const t = newTracker();
    applyProbe(t, { ok: false, error: "x" }, 2);
    applyProbe(t, { ok: false, error: "x" }, 2);
    const a = healthFingerprint(buildHealth(t, ids, 1000), 2);
    applyProbe(t, { ok: false, error: "x" }, 2);
    const b = healthFingerprint(buildHealth(t, ids, 9000), 2);
    expect(a).toBe(b);
    applyProbe(t, { ok: true, observation: obs(PRIMARY_VARS) }, 2);
    expect(healthFingerprint(buildHealth(t, ids, 9000), 2)).not.toBe(b);
  });

  it("writes on change, or when the last write is refreshMs old", () => {
    expect(shouldWrite(undefined, "a", 0)).toBe(true);
    expect(shouldWrite({ fingerprint: "a", atMs: 1000 }, "a", 5999, 5000)).toBe(false);
    expect(shouldWrite({ fingerprint: "a", atMs: 1000 }, "a", 6000, 5000)).toBe(true);
    expect(shouldWrite({ fingerprint: "a", atMs: 1000 }, "b", 1001, 5000)).toBe(true);
  });
});

describe("probeSettings", () => {
  it("defaults: 1 s interval, 1 s timeout, threshold 3, no lag bound", () => {
    expect(probeSettings(undefined)).toEqual({ intervalMs: 1000, timeoutMs: 1000, failureThreshold: 3, maxReplicationLagMs: 0 });
  });

  it("takes the cluster's values, with a floor on the interval", () => {
    const hc = create(HealthCheckSchema, { interval: durationFromMs(250), timeout: durationFromMs(700), failureThreshold: 2, maxReplicationLag: durationFromMs(30_000) });
    expect(probeSettings(hc)).toEqual({ intervalMs: 250, timeoutMs: 700, failureThreshold: 2, maxReplicationLagMs: 30_000 });
    expect(probeSettings(create(HealthCheckSchema, { interval: durationFromMs(1) })).intervalMs).toBe(100);
  });
});

describe("resolveMonitorSecret", () => {
  it("env:, empty, and errors with MGW_ERR_MONITOR_SECRET", async () => {
    await expect(resolveMonitorSecret("env:PW", { PW: "s3cret" })).resolves.toBe("s3cret");
    await expect(resolveMonitorSecret("", {})).resolves.toBe("");
    for (const ref of ["env:MISSING", "env:", "file:", "file:/nonexistent/mysqlgw-monitor", "vault:x"]) {
      const err: unknown = await resolveMonitorSecret(ref, {}).catch((e: unknown) => e);
      expect(isMgwError(err, "MGW_ERR_MONITOR_SECRET")).toBe(true);
    }
  });
});

describe("roleDisagreement: policy roles are expectations", () => {
  it("empty without an expectation, before the first probe, or when they agree", () => {
    expect(roleDisagreement(Backend_Role.UNSPECIFIED, obs(PRIMARY_VARS))).toBe("");
    expect(roleDisagreement(Backend_Role.PRIMARY, null)).toBe("");
    expect(roleDisagreement(Backend_Role.PRIMARY, obs(PRIMARY_VARS))).toBe("");
    expect(roleDisagreement(Backend_Role.REPLICA, obs(REPLICA_VARS, SLAVE_ROW))).toBe("");
  });

  it("describes a disagreement, and buildHealth reports it without changing the discovered role", () => {
    expect(roleDisagreement(Backend_Role.PRIMARY, obs(REPLICA_VARS, SLAVE_ROW))).toBe(
      "policy expects PRIMARY, the server is REPLICA: it replicates from 127.0.0.1:3307 and is read_only; fix the server or the policy's expectedRole",
    );
    expect(roleDisagreement(Backend_Role.REPLICA, obs(PRIMARY_VARS))).toMatch(/^policy expects REPLICA, the server is PRIMARY: read_only is OFF/);
    const t = newTracker();
    applyProbe(t, { ok: true, observation: obs(PRIMARY_VARS) }, 3);
    const h = buildHealth(t, ids, 0, Backend_Role.REPLICA);
    expect(h.role).toBe(BackendHealth_Role.PRIMARY);
    expect(h.roleDisagreement).toMatch(/^policy expects REPLICA/);
  });
});
