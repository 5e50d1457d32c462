import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { BackendHealth_Role, BackendHealth_State, BackendHealthSchema, LoadBalancing, type BackendHealth } from "@mysqlgw/proto";
import type { BackendTarget } from "../session/config-snapshot";
import { BackendRole, ClusterState, type ClusterStateOptions } from "./backend-state";

/** mulberry32: a small seeded PRNG, so that distributions are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function target(name: string, weight = 1, expectedRole = BackendRole.Unknown): BackendTarget {
  return { name, host: "127.0.0.1", port: 3306, weight, expectedRole };
}

function health(fields: Partial<{ state: BackendHealth_State; role: BackendHealth_Role; lagMs: number; current: string; slave: string; disagreement: string; error: string }>): BackendHealth {
  return create(BackendHealthSchema, {
    state: fields.state ?? BackendHealth_State.UP,
    role: fields.role ?? BackendHealth_Role.UNSPECIFIED,
    replicationLag: fields.lagMs === undefined ? undefined : durationFromMs(fields.lagMs),
    gtidCurrentPos: fields.current ?? "",
    gtidSlavePos: fields.slave ?? "",
    roleDisagreement: fields.disagreement ?? "",
    lastError: fields.error ?? "",
  });
}
const replica = (extra: Parameters<typeof health>[0] = {}) => health({ role: BackendHealth_Role.REPLICA, lagMs: 0, ...extra });
const primaryUp = () => health({ role: BackendHealth_Role.PRIMARY });

interface LogLine {
  level: "info" | "warn";
  msg: string;
}
function recorder(): { lines: LogLine[]; logger: ClusterStateOptions["logger"] } {
  const lines: LogLine[] = [];
  return {
    lines,
    logger: {
      info: (_o, msg) => lines.push({ level: "info", msg }),
      warn: (_o, msg) => lines.push({ level: "warn", msg }),
    },
  };
}

function counts(pick: () => BackendTarget | null, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const t = pick();
    const k = t === null ? "null" : t.name;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** A cluster of one monitor-reported primary p and the given replicas (all up, no lag). */
function withReplicas(lb: LoadBalancing, replicas: [string, number][], options: ClusterStateOptions = {}): ClusterState {
  const s = new ClusterState("c", options);
  s.setBackends([target("p"), ...replicas.map(([n, w]) => target(n, w))], lb, null);
  s.applyHealth("p", primaryUp(), 0);
  for (const [n] of replicas) s.applyHealth(n, replica(), 0);
  return s;
}

describe("role resolution", () => {
  it("takes the monitor's fresh report first, then the policy's expected role, else Unknown", () => {
    const s = new ClusterState("c");
    s.setBackends([target("a", 1, BackendRole.Replica), target("b"), target("x")], LoadBalancing.ROUND_ROBIN, null);
    expect(s.roleOf("a")).toBe(BackendRole.Replica); // policy
    expect(s.roleOf("b")).toBe(BackendRole.Unknown);
    expect(s.roleOf("nope")).toBe(BackendRole.Unknown);
    s.applyHealth("a", primaryUp(), 0);
    expect(s.roleOf("a")).toBe(BackendRole.Primary); // the monitor wins over the policy
    s.applyHealth("b", replica(), 0);
    expect(s.roleOf("b")).toBe(BackendRole.Replica);
  });

  it("ignores the role of a report that is not UP (DOWN or not answering yet) and of a deleted key", () => {
    const s = new ClusterState("c");
    s.setBackends([target("a", 1, BackendRole.Replica)], LoadBalancing.ROUND_ROBIN, null);
    s.applyHealth("a", health({ state: BackendHealth_State.DOWN, role: BackendHealth_Role.PRIMARY }), 0);
    expect(s.roleOf("a")).toBe(BackendRole.Replica);
    s.applyHealth("a", health({ state: BackendHealth_State.UNSPECIFIED, role: BackendHealth_Role.PRIMARY }), 0);
    expect(s.roleOf("a")).toBe(BackendRole.Replica);
    s.applyHealth("a", primaryUp(), 0);
    expect(s.roleOf("a")).toBe(BackendRole.Primary);
    s.applyHealth("a", null, 0);
    expect(s.roleOf("a")).toBe(BackendRole.Replica);
  });

  it("logs each role change once, and a disagreement with the policy once, following the monitor", () => {
    const { lines, logger } = recorder();
    const s = new ClusterState("orders", { logger });
    s.setBackends([target("db1", 1, BackendRole.Primary)], LoadBalancing.ROUND_ROBIN, null);
    s.applyHealth("db1", primaryUp(), 0);
    s.applyHealth("db1", primaryUp(), 1000); // refresh: no change
    s.setBackends([target("db1", 1, BackendRole.Primary)], LoadBalancing.ROUND_ROBIN, null); // new version: no change
    s.applyHealth("db1", replica({ disagreement: "policy expects PRIMARY…" }), 2000);
    s.applyHealth("db1", replica({ disagreement: "policy expects PRIMARY…" }), 3000);
    expect(lines.map((l) => l.msg)).toEqual([
      "backend db1 of cluster orders is now PRIMARY (policy)",
      "backend db1 of cluster orders is UP (monitor)",
      "backend db1 of cluster orders is now PRIMARY (monitor)",
      "backend db1 of cluster orders is now REPLICA (monitor)",
      "backend db1 of cluster orders: the monitor reports REPLICA, the policy expects PRIMARY; routing follows the monitor (fix the server or the policy's expectedRole)",
    ]);
    expect(s.roleOf("db1")).toBe(BackendRole.Replica);
  });

  it("keeps health that arrives before any config names the backend, and applies it once one does", () => {
    const s = new ClusterState("c");
    s.applyHealth("late", primaryUp(), 0);
    expect(s.roleOf("late")).toBe(BackendRole.Unknown);
    expect(s.snapshot(0)).toEqual([expect.objectContaining({ name: "late", inConfig: false, role: "PRIMARY", roleSource: "monitor", up: false })]);
    s.setBackends([target("late"), target("other")], LoadBalancing.ROUND_ROBIN, null);
    expect(s.roleOf("late")).toBe(BackendRole.Primary);
    expect(s.primary(0)?.name).toBe("late");
  });
});

describe("primary()", () => {
  it("returns the usable backend whose role is Primary", () => {
    const s = withReplicas(LoadBalancing.ROUND_ROBIN, [["r1", 1]]);
    expect(s.primary(0)?.name).toBe("p");
    s.applyHealth("p", health({ state: BackendHealth_State.DOWN, role: BackendHealth_Role.PRIMARY }), 0);
    expect(s.primary(0)).toBeNull();
    // failover: r1 promoted
    s.applyHealth("r1", primaryUp(), 0);
    expect(s.primary(0)?.name).toBe("r1");
  });

  it("prefers a monitor-reported primary to one only expected by policy", () => {
    const { lines, logger } = recorder();
    const s = new ClusterState("c", { logger });
    s.setBackends([target("a", 1, BackendRole.Primary), target("b")], LoadBalancing.ROUND_ROBIN, null);
    expect(s.primary(0)?.name).toBe("a");
    s.applyHealth("b", primaryUp(), 0);
    expect(s.primary(0)?.name).toBe("b");
    expect(lines.filter((l) => l.msg.includes("several usable PRIMARY"))).toHaveLength(1);
  });

  it("takes the only backend of a one-backend cluster without role information", () => {
    const s = new ClusterState("c");
    s.setBackends([target("solo")], LoadBalancing.ROUND_ROBIN, null);
    expect(s.primary(0)?.name).toBe("solo");
    s.applyHealth("solo", replica(), 0); // known to be a replica: not a primary
    expect(s.primary(0)).toBeNull();
    // two backends without roles: no primary is known
    const two = new ClusterState("c2");
    two.setBackends([target("a"), target("b")], LoadBalancing.ROUND_ROBIN, null);
    expect(two.primary(0)).toBeNull();
    expect(two.pickAny(0)).not.toBeNull();
  });
});

describe("pickReplica() conditions", () => {
  it("skips replicas lagging beyond maxReplicationLag, and those whose lag is unknown", () => {
    const s = new ClusterState("c");
    s.setBackends([target("p"), target("r1"), target("r2"), target("r3")], LoadBalancing.ROUND_ROBIN, 5000);
    s.applyHealth("p", primaryUp(), 0);
    s.applyHealth("r1", replica({ lagMs: 6000 }), 0);
    s.applyHealth("r2", replica({ lagMs: 5000 }), 0);
    s.applyHealth("r3", health({ role: BackendHealth_Role.REPLICA }), 0); // threads stopped: Seconds_Behind_Master NULL
    expect(counts(() => s.pickReplica(0), 10)).toEqual({ r2: 10 });
    expect(s.snapshot(0).find((v) => v.name === "r1")).toMatchObject({ lagMs: 6000, lagging: true });
    // no bound configured: every replica qualifies
    s.setBackends([target("p"), target("r1"), target("r2"), target("r3")], LoadBalancing.ROUND_ROBIN, null);
    expect(Object.keys(counts(() => s.pickReplica(0), 30)).sort()).toEqual(["r1", "r2", "r3"]);
  });

  it("does not skip a policy-only replica for lag (nothing is known about it)", () => {
    const s = new ClusterState("c");
    s.setBackends([target("r1", 1, BackendRole.Replica)], LoadBalancing.ROUND_ROBIN, 1000);
    expect(s.pickReplica(0)?.name).toBe("r1");
  });

  it("with a GTID, picks only replicas that applied it (per gtid_current_pos / gtid_slave_pos)", () => {
    const s = new ClusterState("c");
    s.setBackends([target("p"), target("r1"), target("r2"), target("r3", 1, BackendRole.Replica)], LoadBalancing.ROUND_ROBIN, null);
    s.applyHealth("p", primaryUp(), 0);
    s.applyHealth("r1", replica({ current: "0-1-100", slave: "0-1-100" }), 0);
    s.applyHealth("r2", replica({ current: "0-1-90", slave: "0-1-120,1-1-4" }), 0);
    // r3: no report, so its position is unknown
    expect(counts(() => s.pickReplica(0, { gtid: "0-1-110" }), 10)).toEqual({ r2: 10 });
    expect(counts(() => s.pickReplica(0, { gtid: "0-1-100" }), 10)).toEqual({ r1: 5, r2: 5 });
    expect(s.pickReplica(0, { gtid: "0-1-100,1-1-5" })).toBeNull();
    expect(s.pickReplica(0, { gtid: "junk" })).toBeNull();
    expect(s.pickReplica(0, { gtid: "0-1-100", exclude: "r1" })?.name).toBe("r2");
    expect(counts(() => s.pickReplica(0), 30)).toEqual({ r1: 10, r2: 10, r3: 10 });
  });

  it("never returns the primary, a DOWN replica or the excluded one", () => {
    const s = withReplicas(LoadBalancing.ROUND_ROBIN, [["r1", 1], ["r2", 1]]);
    s.applyHealth("r2", health({ state: BackendHealth_State.DOWN, role: BackendHealth_Role.REPLICA }), 0);
    expect(counts(() => s.pickReplica(0), 10)).toEqual({ r1: 10 });
    expect(s.pickReplica(0, { exclude: "r1" })).toBeNull();
    s.applyHealth("r2", null, 0); // no report: up again (its role is now unknown, though)
    expect(s.usable("r2", 0)).toBe(true);
    expect(counts(() => s.pickReplica(0), 10)).toEqual({ r1: 10 });
  });
});

describe("load balancing", () => {
  it("ROUND_ROBIN: weights 1:3 → 25% / 75% (smooth WRR, exact over any window of 4)", () => {
    const s = withReplicas(LoadBalancing.ROUND_ROBIN, [["r1", 1], ["r2", 3]]);
    const c = counts(() => s.pickReplica(0), 10000);
    expect(c.r1).toBe(2500);
    expect(c.r2).toBe(7500);
    const seq = Array.from({ length: 8 }, () => s.pickReplica(0)!.name).join(",");
    expect(seq.split(",").filter((x) => x === "r1")).toHaveLength(2);
    expect(seq).not.toContain("r1,r1");
  });

  it("ROUND_ROBIN keeps the remaining weights exact while one replica is skipped", () => {
    const s = withReplicas(LoadBalancing.ROUND_ROBIN, [["r1", 1], ["r2", 2], ["r3", 3]]);
    s.applyHealth("r3", health({ state: BackendHealth_State.DOWN, role: BackendHealth_Role.REPLICA }), 0);
    const c = counts(() => s.pickReplica(0), 9000);
    expect(c).toEqual({ r1: 3000, r2: 6000 });
  });

  it("LEAST_OUTSTANDING avoids a backend with 10 in flight", () => {
    const s = withReplicas(LoadBalancing.LEAST_OUTSTANDING, [["r1", 1], ["r2", 1]]);
    for (let i = 0; i < 10; i++) s.statementStarted("r1");
    expect(counts(() => s.pickReplica(0), 100)).toEqual({ r2: 100 });
    // picks that start statements even out
    const c: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      const t = s.pickReplica(0)!;
      s.statementStarted(t.name);
      c[t.name] = (c[t.name] ?? 0) + 1;
    }
    expect(c).toEqual({ r1: 5, r2: 15 });
    for (let i = 0; i < 15; i++) s.statementFinished("r1", 100);
    expect(s.snapshot(0).find((v) => v.name === "r1")?.outstanding).toBe(0); // never below 0
  });

  it("LEAST_OUTSTANDING: ties go to the higher weight, then rotate", () => {
    const s = withReplicas(LoadBalancing.LEAST_OUTSTANDING, [["r1", 1], ["r2", 2], ["r3", 2]]);
    expect(counts(() => s.pickReplica(0), 100)).toEqual({ r2: 50, r3: 50 });
  });

  it("POWER_OF_TWO_LATENCY: two distinct candidates drawn by weight → 1:3 weights with equal latency give 25% / 75% ± 3%", () => {
    const s = withReplicas(LoadBalancing.POWER_OF_TWO_LATENCY, [["r1", 1], ["r2", 3], ["r3", 4]], { random: seeded(7), clock: () => 0 });
    // equal latency everywhere: the first drawn wins the tie, so the draw's weights show
    for (const n of ["r1", "r2", "r3"]) s.statementFinished(n, 1000);
    const c = counts(() => s.pickReplica(0), 10000);
    expect(c.r1 / 10000).toBeCloseTo(1 / 8, 1);
    expect(Math.abs(c.r1 / 10000 - 0.125)).toBeLessThan(0.03);
    expect(Math.abs(c.r2 / 10000 - 0.375)).toBeLessThan(0.03);
    expect(Math.abs(c.r3 / 10000 - 0.5)).toBeLessThan(0.03);
    const two = withReplicas(LoadBalancing.POWER_OF_TWO_LATENCY, [["a", 1], ["b", 3]], { random: seeded(1), clock: () => 0 });
    two.statementFinished("a", 1000);
    two.statementFinished("b", 1000);
    const c2 = counts(() => two.pickReplica(0), 10000);
    expect(Math.abs(c2.a / 10000 - 0.25)).toBeLessThan(0.03);
    expect(Math.abs(c2.b / 10000 - 0.75)).toBeLessThan(0.03);
  });

  it("POWER_OF_TWO_LATENCY sends ≥ 80% to the faster of two with a 10× latency difference", () => {
    let now = 0;
    const s = withReplicas(LoadBalancing.POWER_OF_TWO_LATENCY, [["fast", 1], ["slow", 1]], { random: seeded(42), clock: () => now });
    const c: Record<string, number> = {};
    for (let i = 0; i < 10000; i++) {
      now += 1; // 1 ms per statement, 10 s in all
      const t = s.pickReplica(now)!;
      c[t.name] = (c[t.name] ?? 0) + 1;
      s.statementStarted(t.name);
      s.statementFinished(t.name, t.name === "fast" ? 500 : 5000);
    }
    expect(c.fast / 10000).toBeGreaterThanOrEqual(0.8);
    expect(c.slow).toBeGreaterThanOrEqual(1); // it was tried (unknown latency counts as best)
  });

  it("POWER_OF_TWO_LATENCY tries a backend of unknown latency, and a slow one again once its average is stale", () => {
    let now = 0;
    const s = withReplicas(LoadBalancing.POWER_OF_TWO_LATENCY, [["a", 1], ["b", 1]], { random: seeded(3), clock: () => now, latencyDecayMs: 10000 });
    s.statementFinished("a", 500);
    expect(s.pickReplica(now)?.name).toBe("b"); // unknown: best
    s.statementStarted("b"); // tried, no answer yet: not again
    expect(counts(() => s.pickReplica(now), 10)).toEqual({ a: 10 });
    s.statementFinished("b", 5000);
    expect(counts(() => s.pickReplica(now), 10)).toEqual({ a: 10 });
    now = 30000; // a's average (500) refreshed, b's (5000) 30 s old: exp(-3) × 5000 ≈ 249 < 500
    s.statementFinished("a", 500);
    expect(s.pickReplica(now)?.name).toBe("b");
    // the new sample outweighs the stale average
    s.statementFinished("b", 400);
    expect(s.snapshot(now).find((v) => v.name === "b")?.latencyEwmaUs).toBeLessThan(700);
  });

  it("all balancers return null when nothing qualifies, and the one candidate when one does", () => {
    for (const lb of [LoadBalancing.ROUND_ROBIN, LoadBalancing.LEAST_OUTSTANDING, LoadBalancing.POWER_OF_TWO_LATENCY, LoadBalancing.UNSPECIFIED]) {
      const s = withReplicas(lb, [["r1", 1], ["r2", 1]], { random: seeded(9) });
      expect(s.pickReplica(0, { exclude: "r1" })?.name).toBe("r2");
      s.applyHealth("r2", health({ state: BackendHealth_State.DOWN }), 0);
      expect(s.pickReplica(0, { exclude: "r1" })).toBeNull();
      expect(new ClusterState("empty").pickReplica(0)).toBeNull();
    }
  });
});

describe("local ejection", () => {
  const opts = { ejectAfterFailures: 2, ejectBaseMs: 1000, ejectMaxMs: 8000, trialTimeoutMs: 5000 };

  it("ejects after consecutive connect failures, with exponential backoff and one half-open trial", () => {
    const { lines, logger } = recorder();
    const s = new ClusterState("c", { ...opts, logger });
    s.setBackends([target("a"), target("b")], LoadBalancing.ROUND_ROBIN, null);
    s.connectFailed("a", 0);
    expect(s.usable("a", 0)).toBe(true); // one failure: not yet
    s.connectFailed("a", 10);
    expect(s.usable("a", 10)).toBe(false); // ejected until 1010
    expect(s.snapshot(10)[0]).toMatchObject({ up: false, ejectedUntil: 1010, consecutiveConnectFailures: 2 });
    expect(s.usable("a", 1009)).toBe(false);
    // backoff over: exactly one trial goes through
    expect(s.usable("a", 1010)).toBe(true);
    expect(s.usable("a", 1011)).toBe(false);
    expect(s.available("a", 1011)).toBe(false);
    // the trial fails: ejected for twice as long
    s.connectFailed("a", 1100);
    expect(s.usable("a", 3099)).toBe(false);
    expect(s.usable("a", 3100)).toBe(true);
    s.connectFailed("a", 3100); // 4000
    expect(s.usable("a", 7099)).toBe(false);
    expect(s.usable("a", 7100)).toBe(true);
    s.connectFailed("a", 7100); // 8000 (the max)
    expect(s.usable("a", 15099)).toBe(false);
    expect(s.usable("a", 15100)).toBe(true);
    s.connectFailed("a", 15100); // still 8000
    expect(s.snapshot(15100)[0]?.ejectedUntil).toBe(23100);
    // a trial succeeds: back, failures forgotten
    expect(s.usable("a", 23100)).toBe(true);
    s.connectSucceeded("a");
    expect(s.usable("a", 23101)).toBe(true);
    expect(s.usable("a", 23102)).toBe(true);
    s.connectFailed("a", 23200);
    expect(s.usable("a", 23200)).toBe(true); // counts from zero again, the backoff from the base
    s.connectFailed("a", 23300);
    expect(s.snapshot(23300)[0]?.ejectedUntil).toBe(24300);
    expect(s.usable("b", 23300)).toBe(true); // the other one was never affected
    expect(lines.filter((l) => l.msg.includes("ejected")).map((l) => l.msg)[0]).toBe(
      "backend a of cluster c ejected on this data plane for 1000 ms after 2 consecutive connect failures; one connection is tried then",
    );
    expect(lines.some((l) => l.msg === "backend a of cluster c accepts connections again; no longer ejected")).toBe(true);
  });

  it("a failure reported during an ejection (a connect started before it) does not extend it", () => {
    const s = new ClusterState("c", opts);
    s.setBackends([target("a")], LoadBalancing.ROUND_ROBIN, null);
    s.connectFailed("a", 0);
    s.connectFailed("a", 0);
    s.connectFailed("a", 500);
    expect(s.usable("a", 1000)).toBe(true);
  });

  it("lets another trial through when the first reports nothing within trialTimeoutMs", () => {
    const s = new ClusterState("c", opts);
    s.setBackends([target("a")], LoadBalancing.ROUND_ROBIN, null);
    s.connectFailed("a", 0);
    s.connectFailed("a", 0);
    expect(s.usable("a", 1000)).toBe(true);
    expect(s.usable("a", 5999)).toBe(false);
    expect(s.usable("a", 6000)).toBe(true);
  });

  it("pickers skip an ejected backend and claim the trial of the one they return", () => {
    const s = withReplicas(LoadBalancing.ROUND_ROBIN, [["r1", 1], ["r2", 1]], opts);
    s.connectFailed("r1", 0);
    s.connectFailed("r1", 0);
    expect(counts(() => s.pickReplica(500), 10)).toEqual({ r2: 10 });
    const c = counts(() => s.pickReplica(1000), 10);
    expect(c).toEqual({ r1: 1, r2: 9 }); // one trial only
    s.connectFailed("p", 0);
    s.connectFailed("p", 0);
    expect(s.primary(999)).toBeNull();
    expect(s.primary(1000)?.name).toBe("p");
    expect(s.primary(1000)).toBeNull(); // trial taken
  });

  it("a statement answered by the backend (a pooled connection, no login) ends its ejection", () => {
    const s = withReplicas(LoadBalancing.ROUND_ROBIN, [["r1", 1]], opts);
    s.statementStarted("r1");
    s.connectFailed("r1", 0);
    s.connectFailed("r1", 0);
    expect(s.pickReplica(1000)?.name).toBe("r1"); // the trial, claimed
    expect(s.pickReplica(1001)).toBeNull();
    s.statementFinished("r1", -1); // no answer: nothing learned
    expect(s.pickReplica(1002)).toBeNull();
    s.statementStarted("r1");
    s.statementFinished("r1", 800);
    expect(s.snapshot(1003)[1]).toMatchObject({ name: "r1", up: true, ejectedUntil: 0, consecutiveConnectFailures: 0 });
  });

  it("a monitor report turning UP lets the ejected backend's trial through at once", () => {
    const s = withReplicas(LoadBalancing.ROUND_ROBIN, [["r1", 1]], opts);
    s.applyHealth("r1", health({ state: BackendHealth_State.DOWN, role: BackendHealth_Role.REPLICA }), 0);
    s.connectFailed("r1", 0);
    s.connectFailed("r1", 0);
    expect(s.usable("r1", 100)).toBe(false);
    s.applyHealth("r1", replica(), 200);
    expect(s.usable("r1", 200)).toBe(true);
    expect(s.usable("r1", 201)).toBe(false);
  });

  it("survives a new config version by backend name", () => {
    const s = new ClusterState("c", opts);
    s.setBackends([target("a"), target("b")], LoadBalancing.ROUND_ROBIN, null);
    s.connectFailed("a", 0);
    s.connectFailed("a", 0);
    s.statementStarted("b");
    s.setBackends([target("b", 5), target("a", 2)], LoadBalancing.LEAST_OUTSTANDING, null);
    expect(s.usable("a", 10)).toBe(false);
    expect(s.snapshot(10).map((v) => [v.name, v.outstanding])).toEqual([["b", 1], ["a", 0]]);
    s.setBackends([target("b")], LoadBalancing.ROUND_ROBIN, null);
    expect(s.usable("a", 10)).toBe(false); // gone from the config
    s.connectFailed("a", 10); // unknown names are ignored
    s.statementFinished("a", 10);
  });
});

describe("snapshot()", () => {
  it("describes every backend without claiming a trial", () => {
    const s = new ClusterState("c", { ejectBaseMs: 1000, ejectAfterFailures: 1, clock: () => 0 });
    s.setBackends([target("p", 1, BackendRole.Primary), target("r1")], LoadBalancing.ROUND_ROBIN, 2000);
    s.applyHealth("r1", replica({ lagMs: 3000 }), 0);
    s.statementStarted("r1");
    s.statementFinished("r1", 1234.4);
    s.connectFailed("p", 0);
    expect(s.snapshot(0)).toEqual([
      { name: "p", inConfig: true, role: "PRIMARY", roleSource: "policy", monitorState: "NONE", up: false, ejectedUntil: 1000, consecutiveConnectFailures: 1, lagMs: null, lagging: false, outstanding: 0, latencyEwmaUs: null },
      { name: "r1", inConfig: true, role: "REPLICA", roleSource: "monitor", monitorState: "UP", up: true, ejectedUntil: 0, consecutiveConnectFailures: 0, lagMs: 3000, lagging: true, outstanding: 0, latencyEwmaUs: 1234 },
    ]);
    expect(s.snapshot(1000)[0]?.up).toBe(true);
    expect(s.snapshot(1000)[0]?.up).toBe(true); // still: nothing was claimed
  });
});
