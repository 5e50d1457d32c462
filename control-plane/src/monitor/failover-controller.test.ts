// FailoverController with a fake etcd (a Map) and a fake SqlRunner that
// records every statement: what is run, in which order, and what is written.
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import type { Etcd3 } from "etcd3";
import {
  BackendHealth_Role,
  BackendHealth_State,
  BackendHealthSchema,
  BackendViewSchema,
  ClusterEpochSchema,
  etcdKeys,
  FailoverRecord_Outcome,
  FailoverRecordSchema,
} from "@mysqlgw/proto";
import { FailoverController, type BackendHandle, type SqlRunner } from "./failover";
import { newTracker, probeSettings, type ProbeObservation } from "./health";

const keys = etcdKeys("/t");

/** The etcd3 calls the controller makes, over a Map. */
function fakeEtcd(store: Map<string, string>): Etcd3 {
  const range = (p: string) => [...store].filter(([k]) => k.startsWith(p));
  return {
    getAll: () => ({
      prefix: (p: string) => ({
        strings: async () => Object.fromEntries(range(p)),
        keys: async () => range(p).map(([k]) => k),
      }),
    }),
    get: (k: string) => ({ string: async () => store.get(k) ?? null }),
    put: (k: string) => ({ value: (v: string) => ({ k, v }) }),
    if: () => ({ then: (op: { k: string; v: string }) => ({ commit: async () => (store.set(op.k, op.v), { succeeded: true }) }) }),
  } as unknown as Etcd3;
}

const obs = (o: Partial<ProbeObservation>): ProbeObservation => ({
  readOnly: false, serverId: 1, gtidBinlogPos: "", gtidCurrentPos: "", gtidSlavePos: "", replicationConfigured: false,
  ioRunning: false, sqlRunning: false, lagSeconds: null, sourceAddress: "", ...o,
});

function handle(backend: string, port: number, state: BackendHealth_State, o: ProbeObservation | null): BackendHandle & { probes: number } {
  const tracker = newTracker();
  tracker.state = state;
  tracker.last = o;
  const h = {
    spec: { cluster: "shop", backend, address: `127.0.0.1:${port}`, user: "mon", secretRef: "", settings: probeSettings(undefined) },
    tracker,
    probes: 0,
    probeNow: async () => {
      h.probes++;
    },
  };
  return h;
}

interface Setup {
  counted: string[];
  store: Map<string, string>;
  ran: string[];
  logs: string[];
  ctl: FailoverController;
  db: (BackendHandle & { probes: number })[];
}

/** db1 (port 1) the primary, DOWN; db2/db3 replicas, UP; `answers` per port and statement prefix. */
function setup(answers: (port: number, sql: string, params: unknown[] | undefined) => Record<string, unknown>[] | Error | undefined, views: { dp: string; reachable: boolean }[] = [{ dp: "dp1", reachable: false }], cooldownMs = 60_000): Setup {
  const store = new Map<string, string>();
  for (const v of views) {
    store.set(keys.dataPlane(v.dp), "{}");
    store.set(keys.backendView(v.dp, "shop", "db1"), toJsonString(BackendViewSchema, create(BackendViewSchema, { dataPlaneId: v.dp, cluster: "shop", backend: "db1", reachable: v.reachable })));
  }
  const ran: string[] = [];
  const logs: string[] = [];
  const sql: SqlRunner = async (t, statements, params) => {
    const out: Record<string, unknown>[][] = [];
    for (let i = 0; i < statements.length; i++) {
      ran.push(`${t.port}: ${statements[i]}${params?.[i]?.length ? ` ${JSON.stringify(params[i])}` : ""}`);
      const a = answers(t.port, statements[i]!, params?.[i]);
      if (a instanceof Error) throw a;
      out.push(a ?? []);
    }
    return out;
  };
  const db = [
    handle("db1", 1, BackendHealth_State.DOWN, obs({})),
    handle("db2", 2, BackendHealth_State.UP, obs({ readOnly: true, replicationConfigured: true, sourceAddress: "127.0.0.1:1" })),
    handle("db3", 3, BackendHealth_State.UP, obs({ readOnly: true, replicationConfigured: true, sourceAddress: "127.0.0.1:1" })),
  ];
  const log = { info: (_o: object, m: string) => logs.push(m), warn: (_o: object, m: string) => logs.push(m), error: (_o: object, m: string) => logs.push(m) };
  const counted: string[] = [];
  const ctl = new FailoverController({
    client: fakeEtcd(store), keys, campaignKey: "k", callTimeoutMs: 1000, env: {}, log, monitorId: "cp-a",
    settings: { cooldownMs, catchUpTimeoutMs: 1000 }, backends: () => db, stopped: () => false, sql,
    metrics: { failover: (c, outcome, seconds) => counted.push(`${c} ${outcome} ${seconds === null ? "-" : seconds >= 0 ? "s" : "?"}`) },
  });
  return { store, ran, logs, ctl, db, counted };
}

/** Replicas: db2 received 0-1-10 (applied 0-1-4), db3 received 0-1-8; the old primary refuses. */
function replicaAnswers(catchUp: (port: number) => number = () => 0) {
  return (port: number, s: string): Record<string, unknown>[] | Error | undefined => {
    if (port === 1) return new Error("connection refused");
    if (s.startsWith("SELECT @@GLOBAL.gtid_slave_pos AS applied, ")) return [{ applied: port === 2 ? "0-1-4" : "0-1-8", semisync: "1" }];
    if (s === "SHOW SLAVE STATUS") return [{ Gtid_IO_Pos: port === 2 ? "0-1-10" : "0-1-8" }];
    if (s.startsWith("SELECT MASTER_GTID_WAIT")) return [{ r: catchUp(port) }];
    if (s.startsWith("SELECT @@GLOBAL.gtid_slave_pos AS applied")) return [{ applied: port === 2 ? "0-1-4" : "0-1-8" }];
    return undefined;
  };
}

/** The one failover record written. */
function record(store: Map<string, string>) {
  const recs = [...store].filter(([k]) => k.startsWith(`${keys.failoverHistoryPrefix}shop/`));
  expect(recs).toHaveLength(1);
  return fromJsonString(FailoverRecordSchema, recs[0]![1]);
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

test("the replica that received the most is promoted after applying it; the statements run in a safe order; epoch and record written", async () => {
  const s = setup(replicaAnswers());
  s.ctl.onProbed(s.db[0]!);
  await settle();
  expect(s.ran).toEqual([
    "1: SET GLOBAL read_only=1",
    "2: SELECT @@GLOBAL.gtid_slave_pos AS applied, @@GLOBAL.rpl_semi_sync_slave_enabled AS semisync",
    "2: START SLAVE SQL_THREAD",
    "2: STOP SLAVE IO_THREAD",
    "2: SHOW SLAVE STATUS",
    "3: SELECT @@GLOBAL.gtid_slave_pos AS applied, @@GLOBAL.rpl_semi_sync_slave_enabled AS semisync",
    "3: START SLAVE SQL_THREAD",
    "3: STOP SLAVE IO_THREAD",
    "3: SHOW SLAVE STATUS",
    "2: SELECT MASTER_GTID_WAIT(?, ?) AS r [\"0-1-10\",1]",
    "3: SELECT MASTER_GTID_WAIT(?, ?) AS r [\"0-1-8\",1]",
    "2: STOP SLAVE",
    "2: RESET SLAVE ALL",
    "2: SET GLOBAL rpl_semi_sync_master_enabled=ON",
    "2: SET GLOBAL read_only=0",
    "3: STOP SLAVE",
    "3: CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USE_GTID=slave_pos [\"127.0.0.1\",2]",
    "3: START SLAVE",
  ]);
  const epoch = fromJsonString(ClusterEpochSchema, s.store.get(keys.clusterEpoch("shop"))!);
  expect(epoch).toMatchObject({ cluster: "shop", epoch: 1n, primary: "db2", fenced: ["db1"] });
  const rec = record(s.store);
  expect(rec).toMatchObject({ oldPrimary: "db1", newPrimary: "db2", outcome: FailoverRecord_Outcome.PROMOTED, confirmedBy: ["dp1"], reportingDataPlanes: 1, repointed: ["db3"], monitorId: "cp-a" });
  expect(rec.candidates).toEqual(["db2 received=0-1-10 applied=0-1-4", "db3 received=0-1-8 applied=0-1-8"]);
  for (const t of ["detectedAt", "confirmedAt", "chosenAt", "caughtUpAt", "promotedAt", "repointedAt", "rolesPublishedAt"] as const) expect(rec[t]).toBeDefined();
  expect(s.db.map((d) => d.probes)).toEqual([1, 1, 1]);
  expect(s.counted).toEqual(["shop promoted s"]);
  // fenced: the old primary is published DOWN whatever it answers
  const up = create(BackendHealthSchema, { cluster: "shop", backend: "db1", state: BackendHealth_State.UP, role: BackendHealth_Role.PRIMARY });
  expect(s.ctl.adjustHealth(up)).toMatchObject({ state: BackendHealth_State.DOWN, role: BackendHealth_Role.REPLICA });
  expect(s.ctl.adjustHealth(up).lastError).toMatch(/^fenced: former primary, replaced by db2 at failover epoch 1/);
});

test("the chosen replica not catching up in time: aborted, nothing promoted, IO threads back only where all was applied", async () => {
  const s = setup(replicaAnswers((port) => (port === 2 ? -1 : 0)));
  s.ctl.onProbed(s.db[0]!);
  await settle();
  expect(s.ran.some((r) => r.includes("RESET SLAVE") || r.includes("read_only=0"))).toBe(false);
  expect(s.ran.filter((r) => r.endsWith("START SLAVE IO_THREAD"))).toEqual(["3: START SLAVE IO_THREAD"]);
  expect(s.store.has(keys.clusterEpoch("shop"))).toBe(false);
  const rec = record(s.store);
  expect(rec.outcome).toBe(FailoverRecord_Outcome.ABORTED);
  expect(s.counted).toEqual(["shop aborted -"]);
  expect(rec.error).toMatch(/^db2 did not apply what it received \(0-1-10\) within 1000 ms; not promoted/);
  expect(s.logs).toContain("monitor: db2's IO thread stays stopped (it has not applied all it received, 0-1-10); START SLAVE IO_THREAD by hand once it has");
});

test("not confirmed by the data plane: nothing is run; no data plane at all: nothing either (withoutDataPlanes off)", async () => {
  const s = setup(replicaAnswers(), [{ dp: "dp1", reachable: true }]);
  s.ctl.onProbed(s.db[0]!);
  await settle();
  expect(s.ran).toEqual([]);
  expect(s.logs[0]).toMatch(/^monitor: primary shop\/db1 fails the monitor's probes; not failing over: only 0 of 1 reporting data planes/);
  const none = setup(replicaAnswers(), []);
  none.ctl.onProbed(none.db[0]!);
  await settle();
  expect(none.ran).toEqual([]);
  expect(none.logs[0]).toMatch(/no live data plane reports on it/);
});

test("a planned switchover's hold exists: no failover (said once); the epoch a switchover wrote names the primary the controller watches", async () => {
  const s = setup(replicaAnswers());
  s.store.set(keys.switchoverHold("shop"), "{}");
  s.ctl.onProbed(s.db[0]!);
  s.ctl.onProbed(s.db[0]!);
  await settle();
  expect(s.ran).toEqual([]);
  expect(s.logs.filter((l) => l.includes("a planned switchover of shop is running; not failing over"))).toHaveLength(1);
  // the switchover made db2 the primary: db1 down no longer matters, db2 down does
  s.store.delete(keys.switchoverHold("shop"));
  s.ctl.epochChanged(create(ClusterEpochSchema, { cluster: "shop", epoch: 1n, primary: "db2" }));
  s.ctl.onProbed(s.db[0]!);
  await settle();
  expect(s.ran).toEqual([]);
});

test("cooldown: a second failure of the (new) primary within it is only logged, once; after it, a new failover with its own detection time", async () => {
  const s = setup(replicaAnswers(), undefined, 200);
  s.ctl.onProbed(s.db[0]!);
  await settle();
  const n = s.ran.length;
  const secondDown = Date.now();
  s.db[1]!.tracker.state = BackendHealth_State.DOWN; // the new primary dies too
  s.ctl.onProbed(s.db[1]!);
  s.ctl.onProbed(s.db[1]!);
  await settle();
  expect(s.ran.length).toBe(n);
  expect(s.logs.filter((l) => l.includes("not failing over again"))).toHaveLength(1);
  // past the cooldown: db2 (the epoch's primary) fails over in turn; db1 stays fenced, so db3 is the only candidate
  await new Promise((r) => setTimeout(r, 250));
  s.store.set(keys.backendView("dp1", "shop", "db2"), toJsonString(BackendViewSchema, create(BackendViewSchema, { dataPlaneId: "dp1", cluster: "shop", backend: "db2", reachable: false })));
  s.ctl.onProbed(s.db[1]!);
  await settle();
  const recs = [...s.store].filter(([k]) => k.startsWith(`${keys.failoverHistoryPrefix}shop/`)).map(([, v]) => fromJsonString(FailoverRecordSchema, v));
  expect(recs).toHaveLength(2);
  const second = recs.find((r) => r.oldPrimary === "db2")!;
  expect(second).toMatchObject({ epoch: 2n, newPrimary: "db3", outcome: FailoverRecord_Outcome.PROMOTED });
  // detected when db2 was first seen down (during the cooldown), not when db1 was
  expect(Number(second.detectedAt!.seconds) * 1000 + second.detectedAt!.nanos / 1e6).toBeGreaterThanOrEqual(secondDown - 1);
  expect(fromJsonString(ClusterEpochSchema, s.store.get(keys.clusterEpoch("shop"))!).fenced.sort()).toEqual(["db1", "db2"]);
});

test("the next leader reads the epochs: fencing and cooldown carry over", async () => {
  const s = setup(replicaAnswers());
  s.store.set(keys.clusterEpoch("shop"), toJsonString(ClusterEpochSchema, create(ClusterEpochSchema, { cluster: "shop", epoch: 4n, primary: "db1", fenced: ["db3"], at: { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: 0 } })));
  await s.ctl.load();
  expect(s.ctl.adjustHealth(create(BackendHealthSchema, { cluster: "shop", backend: "db3", state: BackendHealth_State.UP })).state).toBe(BackendHealth_State.DOWN);
  s.ctl.onProbed(s.db[0]!);
  await settle();
  expect(s.ran).toEqual([]);
  expect(s.logs.some((l) => l.includes("not failing over again"))).toBe(true);
});
