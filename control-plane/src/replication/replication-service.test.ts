import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import {
  AttachReplicaRequestSchema,
  ClusterEpochSchema,
  DetachReplicaRequestSchema,
  ListOperationsRequestSchema,
  OperationRecordSchema,
  PauseBackendRequestSchema,
  PolicySchema,
  RegisterBackendRequestSchema,
  RejoinBackendRequestSchema,
  ReplicationService,
  ResumeBackendRequestSchema,
  UnregisterBackendRequestSchema,
  type OperationRecord,
} from "@mysqlgw/proto";
import { createAdminService } from "../api/admin-service";
import { normalizePolicy } from "../model/normalize";
import { createMemoryConfigStore, type MemoryConfigStore } from "../store/memory-config-store";
import type { BackendConnection, BackendConnector } from "./backend-sql";
import { createMemoryOperationStore, type MemoryOperationStore } from "./operation-store";
import { createReplicationService, type ReplicationServiceImpl } from "./replication-service";
import { REQUESTED_BY_HEADER } from "./requested-by";

/**
 * A MariaDB server as far as the replication operations see it: the state
 * they read and the statements they run (anything else fails the test).
 */
interface FakeServer {
  serverId: number;
  readOnly: boolean;
  binlogState: string;
  slavePos: string;
  currentPos: string;
  source: { host: string; port: number; user: string } | null;
  io: boolean;
  sql: boolean;
  semiMaster: boolean;
  /** Statements run, in order. */
  ran: string[];
  down?: boolean;
}

function server(id: number, p: Partial<FakeServer> = {}): FakeServer {
  return { serverId: id, readOnly: true, binlogState: "", slavePos: "", currentPos: "", source: null, io: false, sql: false, semiMaster: false, ran: [], ...p };
}

function connector(servers: Map<string, FakeServer>): BackendConnector {
  return async (t) => {
    const s = servers.get(t.address);
    if (s === undefined || s.down === true) throw new Error(`${t.name} (${t.address}) refused the connection; the server is not running or not listening there`);
    const conn: BackendConnection = {
      target: t,
      async query(sql, params) {
        if (sql.startsWith("SELECT @@GLOBAL.read_only")) {
          return [{ ro: s.readOnly ? 1 : 0, sid: s.serverId, log_bin: 1, binlog_pos: "", binlog_state: s.binlogState, current_pos: s.currentPos, slave_pos: s.slavePos }];
        }
        if (sql === "SHOW SLAVE STATUS") {
          return s.source === null ? [] : [{ Master_Host: s.source.host, Master_Port: s.source.port, Master_User: s.source.user, Slave_IO_Running: s.io ? "Yes" : "No", Slave_SQL_Running: s.sql ? "Yes" : "No", Last_IO_Error: "", Last_SQL_Error: "" }];
        }
        if (sql.startsWith("SHOW GLOBAL VARIABLES")) return [{ Variable_name: "rpl_semi_sync_master_enabled", Value: s.semiMaster ? "ON" : "OFF" }, { Variable_name: "rpl_semi_sync_slave_enabled", Value: "ON" }];
        s.ran.push(params === undefined ? sql : `${sql} ${JSON.stringify(params)}`);
        if (sql === "SET GLOBAL read_only=1") s.readOnly = true;
        else if (sql === "SET GLOBAL read_only=0") s.readOnly = false;
        else if (sql === "STOP SLAVE") s.io = s.sql = false;
        else if (sql === "START SLAVE") s.io = s.sql = s.source !== null;
        else if (sql === "RESET SLAVE ALL") s.source = null;
        else if (sql === "SET GLOBAL rpl_semi_sync_master_enabled=OFF") s.semiMaster = false;
        else if (sql === "SET GLOBAL gtid_slave_pos=?") s.slavePos = String(params![0]);
        else if (sql.startsWith("CHANGE MASTER TO")) s.source = { host: String(params![0]), port: Number(params![1]), user: params!.length > 2 ? String(params![2]) : (s.source?.user ?? "") };
        else throw new Error(`unexpected statement ${sql}`);
        return [];
      },
      close() {},
    };
    return conn;
  };
}

const ADDR = { db1: "10.0.0.1:3306", db2: "10.0.0.2:3306", db3: "10.0.0.3:3306", db4: "10.0.0.4:3306" } as const;
const asReplica = (of: keyof typeof ADDR, p: Partial<FakeServer> = {}): Partial<FakeServer> => ({ source: { host: ADDR[of].split(":")[0]!, port: 3306, user: "repl" }, io: true, sql: true, ...p });

let store: MemoryConfigStore;
let ops: MemoryOperationStore;
let servers: Map<string, FakeServer>;
let svc: ReplicationServiceImpl;

function ctx(name: keyof typeof ReplicationService.method, who = "cli:alice@laptop"): HandlerContext {
  return createHandlerContext({ service: ReplicationService, method: ReplicationService.method[name], protocolName: "test", requestMethod: "POST", url: "/", requestHeader: { [REQUESTED_BY_HEADER]: who } });
}

beforeEach(async () => {
  store = createMemoryConfigStore();
  const policy = normalizePolicy(create(PolicySchema, {
    clusters: [{
      name: "shop",
      backends: [{ name: "db1", address: ADDR.db1 }, { name: "db2", address: ADDR.db2 }, { name: "db3", address: ADDR.db3 }],
      health: { credentials: { user: "mgw", secretRef: "env:MGW_PW" } },
    }],
  }));
  await store.applyIfChanged(policy, 0n, "test");
  ops = createMemoryOperationStore();
  servers = new Map([
    [ADDR.db1, server(1, { readOnly: false, binlogState: "0-1-100", currentPos: "0-1-100" })],
    [ADDR.db2, server(2, { ...asReplica("db1"), binlogState: "0-1-100", slavePos: "0-1-100", currentPos: "0-1-100" })],
    [ADDR.db3, server(3, { ...asReplica("db1"), binlogState: "0-1-99", slavePos: "0-1-99", currentPos: "0-1-99" })],
  ]);
  svc = createReplicationService({
    store,
    admin: createAdminService({ store }),
    operations: ops,
    env: { MGW_PW: "secret-pw" },
    connect: connector(servers),
    settings: { replicationWaitMs: 500 },
  });
});

const srv = (name: keyof typeof ADDR): FakeServer => servers.get(ADDR[name])!;

type Verb = "detachReplica" | "attachReplica" | "pauseBackend" | "resumeBackend" | "rejoinBackend" | "unregisterBackend";
const SCHEMA = {
  detachReplica: DetachReplicaRequestSchema,
  attachReplica: AttachReplicaRequestSchema,
  pauseBackend: PauseBackendRequestSchema,
  resumeBackend: ResumeBackendRequestSchema,
  rejoinBackend: RejoinBackendRequestSchema,
  unregisterBackend: UnregisterBackendRequestSchema,
} as const;

/** Calls one of the per-backend RPCs on cluster shop; resolves to its OperationRecord. */
async function call(verb: Verb, backend: string, dryRun: boolean): Promise<{ operation: OperationRecord }> {
  const req = create(SCHEMA[verb], { cluster: "shop", backend, dryRun });
  const fn = svc[verb] as (r: typeof req, c: HandlerContext) => Promise<{ operation: OperationRecord }>;
  return fn(req, ctx(verb));
}

async function refused(p: unknown): Promise<{ err: ConnectError; rec: OperationRecord | undefined }> {
  const err = await Promise.resolve(p).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
  const ce = err as ConnectError;
  return { err: ce, rec: ce.findDetails(OperationRecordSchema)[0] };
}

test("detach then attach: the statements in order, the password never in a step, each recorded with who asked", async () => {
  const d = await call("detachReplica", "db3", false);
  expect(d.operation).toMatchObject({ sequence: 1n, operation: "DETACH_REPLICA", ok: true, requestedBy: "cli:alice@laptop", steps: ["db3: STOP SLAVE", "db3: RESET SLAVE ALL", "check: db3 stays read_only"] });
  expect(srv("db3").source).toBeNull();
  const a = await call("attachReplica", "db3", false);
  expect(srv("db3").ran.slice(2)).toEqual([`CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos ["10.0.0.1",3306,"mgw","secret-pw"]`, "START SLAVE"]);
  expect(a.operation!.steps).toContain("db3: CHANGE MASTER TO MASTER_HOST='10.0.0.1', MASTER_PORT=3306, MASTER_USER='mgw', MASTER_PASSWORD=<health.credentials secret>, MASTER_USE_GTID=slave_pos");
  expect(JSON.stringify(ops.records.map((r) => r.steps))).not.toContain("secret-pw");
  expect(ops.records.map((r) => [r.sequence, r.operation, r.ok])).toEqual([[1n, "DETACH_REPLICA", true], [2n, "ATTACH_REPLICA", true]]);
  const listed = (await svc.listOperations(create(ListOperationsRequestSchema, { cluster: "shop", limit: 0 }), ctx("listOperations"))) as { operations: OperationRecord[] };
  expect(listed.operations.map((o) => o.sequence)).toEqual([2n, 1n]);
});

test("dry run: the checks run, the statements are listed, nothing runs and nothing is recorded", async () => {
  const r = await call("pauseBackend", "db1", true);
  expect(r.operation).toMatchObject({ sequence: 0n, ok: true, steps: ["would run db1: SET GLOBAL read_only=1"] });
  expect(srv("db1").readOnly).toBe(false);
  expect(ops.records).toEqual([]);
});

test("refusals change nothing, say why and what to do, and are recorded (the record is in the error)", async () => {
  const cases: [() => Promise<unknown>, RegExp][] = [
    [() => call("unregisterBackend", "db1", false), /^db1 is the primary of cluster shop \(the other backends replicate from it\); .*switch over to a replica first/],
    [() => call("attachReplica", "db1", false), /^db1 is the primary of cluster shop .*name a replica/],
    [() => call("detachReplica", "db1", false), /^db1 is the primary of cluster shop .*only a replica can be detached/],
  ];
  for (const [p, re] of cases) {
    const { err, rec } = await refused(p());
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(re);
    expect(rec).toMatchObject({ ok: false, error: err.rawMessage });
  }
  expect(ops.records.map((r) => r.ok)).toEqual([false, false, false]);
  expect([...servers.values()].flatMap((s) => s.ran)).toEqual([]);
  // unknown names
  const nf = await refused(call("pauseBackend", "db9", false));
  expect(nf.err.code).toBe(Code.NotFound);
  expect(nf.err.rawMessage).toBe("cluster shop has no backend db9 (backends: db1, db2, db3); check the name (mysqlgw backends --cluster shop)");
});

test("errant GTIDs: a writable detached replica that wrote its own transaction is refused, made writable again, told what to do", async () => {
  Object.assign(srv("db3"), { source: null, io: false, sql: false, readOnly: false, binlogState: "0-1-99,0-3-100", currentPos: "0-3-100" });
  srv("db1").binlogState = "0-1-105";
  const { err } = await refused(call("rejoinBackend", "db3", false));
  expect(err.rawMessage).toMatch(/^db3 has transactions the primary db1 lacks: 0-3-100 \(db1 has no transaction of server 3 in domain 0\) — .*RESET MASTER on db3/);
  expect(srv("db3").ran).toEqual(["SET GLOBAL read_only=1", "SET GLOBAL read_only=0"]);
  expect(srv("db3").readOnly).toBe(false);
  expect(ops.records[0]!.steps).toEqual(["db3: SET GLOBAL read_only=1", "db3: SET GLOBAL read_only=0 (undo: it was writable before this refused operation)"]);
});

test("rejoin of a fenced former primary: semi-sync master side off, gtid_slave_pos from its own binlog, re-pointed, unfenced; resume refused before", async () => {
  // db2 promoted at epoch 1; db3 follows it; db1 came back writable, semi-sync master on
  ops.epochs.set("shop", create(ClusterEpochSchema, { cluster: "shop", epoch: 1n, primary: "db2", fenced: ["db1"] }));
  Object.assign(srv("db2"), { source: null, io: false, sql: false, readOnly: false, binlogState: "0-1-100,0-2-150", currentPos: "0-2-150" });
  Object.assign(srv("db3"), asReplica("db2"));
  Object.assign(srv("db1"), { readOnly: false, semiMaster: true, binlogState: "0-1-100", currentPos: "0-1-100", slavePos: "" });
  const res = await refused(call("resumeBackend", "db1", false));
  expect(res.err.rawMessage).toMatch(/^db1 is a former primary fenced at failover epoch 1 \(the primary is now db2\); it must never take writes again beside db2 — rejoin it/);
  const att = await refused(call("attachReplica", "db1", false));
  expect(att.err.rawMessage).toMatch(/use|rejoin it instead: mysqlgw backend rejoin --cluster shop --backend db1/);

  const r = await call("rejoinBackend", "db1", false);
  expect(srv("db1").ran).toEqual([
    "SET GLOBAL read_only=1",
    "SET GLOBAL rpl_semi_sync_master_enabled=OFF",
    `SET GLOBAL gtid_slave_pos=? ["0-1-100"]`,
    `CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos ["10.0.0.2",3306,"mgw","secret-pw"]`,
    "START SLAVE",
  ]);
  expect(r.operation!.steps.at(-1)).toBe("etcd: db1 taken off the fenced list of shop's epoch 1; it may serve reads");
  expect(ops.epochs.get("shop")!.fenced).toEqual([]);
  expect(ops.epochs.get("shop")!.primary).toBe("db2");
});

test("rejoin refused when the old primary has writes the new primary never got (lost at failover)", async () => {
  ops.epochs.set("shop", create(ClusterEpochSchema, { cluster: "shop", epoch: 1n, primary: "db2", fenced: ["db1"] }));
  Object.assign(srv("db2"), { source: null, io: false, sql: false, readOnly: false, binlogState: "0-1-100,0-2-150", currentPos: "0-2-150" });
  Object.assign(srv("db1"), { readOnly: true, binlogState: "0-1-102", currentPos: "0-1-102" });
  const { err } = await refused(call("rejoinBackend", "db1", false));
  expect(err.rawMessage).toMatch(/^db1 has transactions the primary db2 lacks: up to 0-1-102 \(db2 has server 1's in domain 0 only up to 0-1-100\)/);
  expect(srv("db1").ran).toEqual([]);
  expect(ops.epochs.get("shop")!.fenced).toEqual(["db1"]);
});

test("pause/resume: the primary's read_only, a replica's threads; resume of the primary refused while another server is writable", async () => {
  await call("pauseBackend", "db2", false);
  expect([srv("db2").io, srv("db2").sql]).toEqual([false, false]);
  await call("resumeBackend", "db2", false);
  expect([srv("db2").io, srv("db2").sql]).toEqual([true, true]);
  await call("pauseBackend", "db1", false);
  expect(srv("db1").readOnly).toBe(true);
  Object.assign(srv("db3"), { source: null, io: false, sql: false, readOnly: false });
  const { err } = await refused(call("resumeBackend", "db1", false));
  expect(err.rawMessage).toMatch(/^db3 is writable and replicates from nobody: making db1 writable too would give cluster shop two primaries/);
  srv("db3").readOnly = true;
  await call("resumeBackend", "db1", false);
  expect(srv("db1").readOnly).toBe(false);
});

test("register: a server_id clash, an unreachable server and a second writable root are refused; a good one is a new config version", async () => {
  servers.set(ADDR.db4, server(2));
  let r = await refused(svc.registerBackend(create(RegisterBackendRequestSchema, { cluster: "shop", backend: { name: "db4", address: ADDR.db4 }, dryRun: false }), ctx("registerBackend")));
  expect(r.err.rawMessage).toMatch(/^10\.0\.0\.4:3306 has server_id 2, as backend db2 does; every server of a replication topology needs its own server_id/);
  servers.get(ADDR.db4)!.serverId = 4;
  servers.get(ADDR.db4)!.readOnly = false;
  r = await refused(svc.registerBackend(create(RegisterBackendRequestSchema, { cluster: "shop", backend: { name: "db4", address: ADDR.db4 }, dryRun: false }), ctx("registerBackend")));
  expect(r.err.rawMessage).toMatch(/^db4 \(10\.0\.0\.4:3306\) is writable and replicates from nobody: the monitor would report it as a second PRIMARY/);
  servers.get(ADDR.db4)!.down = true;
  r = await refused(svc.registerBackend(create(RegisterBackendRequestSchema, { cluster: "shop", backend: { name: "db4", address: ADDR.db4 }, dryRun: false }), ctx("registerBackend")));
  expect(r.err.code).toBe(Code.Aborted);
  expect(r.err.rawMessage).toMatch(/^cannot reach the new server 10\.0\.0\.4:3306 .*refused the connection/);
  expect(store.history).toHaveLength(1);
  Object.assign(servers.get(ADDR.db4)!, { down: false, readOnly: true });
  const ok = (await svc.registerBackend(create(RegisterBackendRequestSchema, { cluster: "shop", backend: { name: "db4", address: ADDR.db4, weight: 2 }, dryRun: false }), ctx("registerBackend"))) as { operation: OperationRecord };
  expect(ok.operation).toMatchObject({ ok: true, configVersion: 2n });
  expect(store.history[1]!.appliedBy).toBe("cli:alice@laptop (register backend db4 (10.0.0.4:3306) in cluster shop)");
  expect(store.history[1]!.policy!.clusters[0]!.backends.map((b) => `${b.name}:${b.weight}`)).toEqual(["db1:1", "db2:1", "db3:1", "db4:2"]);
  // unregister refused while a backend replicates from it
  Object.assign(srv("db3"), asReplica("db4"));
  const u = await refused(call("unregisterBackend", "db4", false));
  expect(u.err.rawMessage).toMatch(/^db3 replicates from db4; re-point it first/);
});

test("the cluster lock held elsewhere: refused (Aborted), recorded; no statement runs", async () => {
  ops.lockHeld = true;
  const { err, rec } = await refused(call("pauseBackend", "db2", false));
  expect(err.code).toBe(Code.Aborted);
  expect(rec).toMatchObject({ ok: false, operation: "PAUSE", sequence: 1n });
  expect(srv("db2").ran).toEqual([]);
});

test("requested_by: the client's header, else api", async () => {
  const r = (await svc.pauseBackend(create(PauseBackendRequestSchema, { cluster: "shop", backend: "db2", dryRun: true }), createHandlerContext({ service: ReplicationService, method: ReplicationService.method.pauseBackend, protocolName: "test", requestMethod: "POST", url: "/" }))) as { operation: OperationRecord };
  expect(r.operation.requestedBy).toBe("api");
});

test("a failover while the operation runs (the epoch moved since the survey) stops it before its next statement", async () => {
  let reads = 0;
  const first = ops.readEpoch.bind(ops);
  ops.readEpoch = async (c) => (++reads === 1 ? first(c) : create(ClusterEpochSchema, { cluster: "shop", epoch: 1n, primary: "db2", fenced: ["db1"] }));
  const { err, rec } = await refused(call("detachReplica", "db3", false));
  expect(err.code).toBe(Code.Aborted);
  expect(err.rawMessage).toMatch(/^cluster shop failed over while this operation ran \(epoch 0 → 1, primary now db2\); it stopped before its next statement/);
  expect(srv("db3").ran).toEqual([]);
  expect(rec).toMatchObject({ ok: false, steps: [] });
});
