// Issue 5 point 5 (replication operations) and point 4's one-command rejoin,
// end to end with real parts: a MariaDB primary and 2 GTID replicas
// (semi-sync), etcd, a control plane whose monitor probes every 200 ms (with
// --failover), a data plane with a READ_WRITE listener, and the real `mysqlgw`
// CLI for every operation. Each operation's effect is read back from the
// servers themselves (SHOW SLAVE STATUS, @@read_only, rows) and from the
// monitor's health; each refusal is a non-zero exit with its reason.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { create } from "@bufbuild/protobuf";
import { Etcd3 } from "etcd3";
import { etcdKeys, OperationRecordSchema } from "@mysqlgw/proto";
import { createEtcdOperationStore } from "../../control-plane/src/replication/operation-store";
import type * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  runCli,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  startReplicatedCluster,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type MariaDBAccount,
  type MariaDBServer,
  type ReplicatedCluster,
} from "../helpers";

const MONITOR_USER = "mgw_ops";
const MONITOR_PASSWORD = "monitor-secret-ops";
const SHOP_PASSWORD = "shop-backend-pw";
const PW = "ops-gw-pw";
/** The monitor's account (also the replication account CHANGE MASTER is given), and an application account without READ_ONLY ADMIN. */
const ACCOUNTS: MariaDBAccount[] = [
  { user: MONITOR_USER, password: MONITOR_PASSWORD, grants: "REPLICATION CLIENT, SLAVE MONITOR, REPLICATION SLAVE, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, BINLOG MONITOR, RELOAD, REPLICATION MASTER ADMIN" },
  { user: "shop", password: SHOP_PASSWORD, grants: "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP" },
];
const names = ["db1", "db2", "db3"];

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane;
let port: number;
let extra: MariaDBServer | null = null;
/** The backend the failover promoted. */
let promoted = "";
const newPrimaryName = (): string => promoted;

const serverOf = (name: string): MariaDBServer => cluster.servers[names.indexOf(name)]!;

beforeAll(async () => {
  const [e, c] = await Promise.all([startEtcd(), startReplicatedCluster({ replicas: 2, semiSync: { timeoutMs: 3000 }, accounts: ACCOUNTS })]);
  etcd = e;
  cluster = c;
  cp = await startControlPlane({ etcd, env: { MONITOR_PW: MONITOR_PASSWORD }, args: ["--failover", "--failover-cooldown-ms", "600000"] });
  port = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [
      {
        name: "shop",
        backends: cluster.servers.map((s, i) => ({ name: names[i], address: s.address })),
        health: { interval: "0.2s", timeout: "1s", failureThreshold: 2, credentials: { user: MONITOR_USER, secretRef: "env:MONITOR_PW" } },
      },
    ],
    listeners: [{ name: "rw", bindAddress: "127.0.0.1", port, cluster: "shop", role: "LISTENER_ROLE_READ_WRITE" }],
    users: [{ name: "app", passwordHash: nativePasswordHash(PW), backendCredentials: { user: "shop", secretRef: "env:SHOP_PW" } }],
  });
  dp = await startDataPlane({ etcd, workers: 1, env: { SHOP_PW: SHOP_PASSWORD }, waitForConfig: version });
  await dp.waitForLog((r) => r.msg === "backend db1 of cluster shop is now PRIMARY (monitor)", 15_000);
  for (const b of names) await dp.waitForLog((r) => r.msg === `backend ${b} of cluster shop is reachable from this data plane`, 10_000);
  await cluster.primary.query("CREATE DATABASE ops");
  await cluster.primary.query("CREATE TABLE ops.t (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL)");
  await cluster.waitForReplicas();
}, 180_000);

afterAll(async () => {
  await extra?.destroy();
}, 60_000);

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(cp.url, args, { timeoutMs: 60_000 });
}

interface HealthJson {
  backend: string;
  state: string;
  role: string;
  readOnly: boolean;
  replicaIoRunning: boolean;
  replicaSqlRunning: boolean;
  sourceAddress: string;
  lastError: string;
}

async function health(backend: string): Promise<HealthJson | undefined> {
  const res = await fetch(`${cp.url}/v1/backends?cluster=shop`);
  return ((await res.json()) as { backends: HealthJson[] }).backends.find((b) => b.backend === backend);
}

async function waitUntil(what: string, ms: number, fn: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  for (let i = 0; i < 10_000; i++) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function slaveStatus(s: MariaDBServer): Promise<Record<string, unknown> | undefined> {
  return (await s.query("SHOW SLAVE STATUS"))[0];
}

async function readOnly(s: MariaDBServer): Promise<string> {
  return String((await s.query<{ ro: unknown }>("SELECT @@GLOBAL.read_only AS ro"))[0]!.ro);
}

/** Waits until `replica` applied `primary`'s whole gtid_binlog_pos. */
async function caughtUp(replica: MariaDBServer, primary: MariaDBServer): Promise<void> {
  const [{ pos }] = await primary.query<{ pos: string }>("SELECT @@GLOBAL.gtid_binlog_pos AS pos");
  const [{ r }] = await replica.query<{ r: unknown }>("SELECT MASTER_GTID_WAIT(?, 10) AS r", [pos]);
  expect(Number(r)).toBe(0);
}

test("detach a replica: it stops replicating, stays read_only, the monitor reports it; attach it again: it replicates from the primary and catches up", async () => {
  const db3 = serverOf("db3");
  const dry = await cli(["replica", "detach", "--cluster", "shop", "--backend", "db3", "--dry-run"]);
  expect(dry.code).toBe(0);
  expect(dry.stdout).toContain("would run db3: STOP SLAVE");
  expect(dry.stdout).toMatch(/^dry run: DETACH_REPLICA shop\/db3 .*nothing was changed$/m);
  expect((await slaveStatus(db3))?.Slave_IO_Running).toBe("Yes");

  const det = await cli(["replica", "detach", "--cluster", "shop", "--backend", "db3"]);
  expect(det.stderr).toBe("");
  expect(det.code).toBe(0);
  expect(det.stdout).toContain("  db3: STOP SLAVE\n  db3: RESET SLAVE ALL\n");
  expect(det.stdout).toMatch(/^done: DETACH_REPLICA shop\/db3 \(operation \d+\)$/m);
  expect(await slaveStatus(db3)).toBeUndefined();
  expect(await readOnly(db3)).toBe("1");
  await waitUntil("the monitor reporting db3 not replicating", 10_000, async () => {
    const h = await health("db3");
    return h !== undefined && h.state === "STATE_UP" && h.sourceAddress === "" && !h.replicaIoRunning && !h.replicaSqlRunning && h.role === "ROLE_REPLICA";
  });

  // written while db3 is detached
  await cluster.primary.query("INSERT INTO ops.t VALUES (1, 'while db3 was detached')");
  const att = await cli(["replica", "attach", "--cluster", "shop", "--backend", "db3"]);
  expect(att.stderr).toBe("");
  expect(att.code).toBe(0);
  expect(att.stdout).toContain(`db3: CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${cluster.primary.port}, MASTER_USER='${MONITOR_USER}', MASTER_PASSWORD=<health.credentials secret>, MASTER_USE_GTID=slave_pos`);
  expect(att.stdout).toContain("db3: START SLAVE");
  expect(att.stdout).toMatch(/wait: db3 replicates from db1 \(both threads running after \d+ ms\)/);
  expect(att.stdout).not.toContain(MONITOR_PASSWORD);
  const s = (await slaveStatus(db3))!;
  expect([Number(s.Master_Port), s.Slave_IO_Running, s.Slave_SQL_Running, s.Using_Gtid]).toEqual([cluster.primary.port, "Yes", "Yes", "Slave_Pos"]);
  await caughtUp(db3, cluster.primary);
  expect(await db3.query("SELECT note FROM ops.t WHERE id = 1")).toEqual([{ note: "while db3 was detached" }]);
  await waitUntil("the monitor reporting db3 replicating from db1", 10_000, async () => (await health("db3"))?.sourceAddress === cluster.primary.address);
  // attaching an attached replica changes nothing
  const again = await cli(["replica", "attach", "--cluster", "shop", "--backend", "db3"]);
  expect(again.code).toBe(0);
  expect(again.stdout).toContain("db3 already replicates from db1 with both threads running; nothing to do");
}, 90_000);

test("pause/resume a replica (threads stopped/started) and the primary (read_only: a write through the gateway fails with 1290, then succeeds)", async () => {
  const db2 = serverOf("db2");
  expect((await cli(["backend", "pause", "--cluster", "shop", "--backend", "db2"])).stdout).toContain("  db2: STOP SLAVE\n");
  let s = (await slaveStatus(db2))!;
  expect([s.Slave_IO_Running, s.Slave_SQL_Running, Number(s.Master_Port)]).toEqual(["No", "No", cluster.primary.port]);
  const res = await cli(["backend", "resume", "--cluster", "shop", "--backend", "db2"]);
  expect(res.code).toBe(0);
  expect(res.stdout).toContain("  db2: START SLAVE\n");
  s = (await slaveStatus(db2))!;
  expect([s.Slave_IO_Running, s.Slave_SQL_Running]).toEqual(["Yes", "Yes"]);

  const c: mysql.Connection = await connect({ port, user: "app", password: PW });
  try {
    await c.query("INSERT INTO ops.t VALUES (2, 'before the pause')");
    const p = await cli(["backend", "pause", "--cluster", "shop", "--backend", "db1"]);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain("  db1: SET GLOBAL read_only=1\n");
    expect(await readOnly(cluster.primary)).toBe("1");
    const err = await c.query("INSERT INTO ops.t VALUES (3, 'while paused')").then(() => null, (e: unknown) => e as { errno?: number; message: string });
    expect(err?.errno).toBe(1290);
    const r = await cli(["backend", "resume", "--cluster", "shop", "--backend", "db1"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("  db1: SET GLOBAL read_only=0\n");
    expect(await readOnly(cluster.primary)).toBe("0");
    await c.query("INSERT INTO ops.t VALUES (3, 'after the resume')");
  } finally {
    await c.end();
  }
  expect(await cluster.primary.query("SELECT id FROM ops.t ORDER BY id")).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
}, 60_000);

test("register a new server (a new config version, in `mysqlgw get clusters`), then unregister it", async () => {
  extra = await startMariaDB({ serverId: 4, name: "db4", readOnly: true, accounts: ACCOUNTS });
  const before = (await (await fetch(`${cp.url}/v1/policy`)).json()) as { config: { version: string } };
  const reg = await cli(["backend", "register", "--cluster", "shop", "--name", "db4", "--address", extra.address, "--weight", "2"]);
  expect(reg.stderr).toBe("");
  expect(reg.code).toBe(0);
  expect(reg.stdout).toContain("check: db4 (" + extra.address + ") answers: server_id 4, read_only ON, replicates from nobody");
  const v = Number(before.config.version) + 1;
  expect(reg.stdout).toContain(`policy: version ${v}: register backend db4 (${extra.address}) in cluster shop`);
  expect(reg.stdout).toMatch(new RegExp(`^done: REGISTER_BACKEND shop/db4 \\(operation \\d+\\), config version ${v}$`, "m"));
  const got = await cli(["get", "clusters", "shop"]);
  expect(got.code).toBe(0);
  expect(got.stdout).toContain(`name: db4\n    address: ${extra.address}\n    weight: 2`);
  const hist = await (await fetch(`${cp.url}/v1/versions?limit=1`)).json() as { versions: { version: string; appliedBy: string }[] };
  expect(hist.versions[0]!.appliedBy).toMatch(/^cli:.+ \(register backend db4 \(.+\) in cluster shop\)$/);
  // the monitor probes it
  await waitUntil("the monitor probing db4", 10_000, async () => (await health("db4"))?.state === "STATE_UP");

  const dup = await cli(["backend", "register", "--cluster", "shop", "--name", "db5", "--address", extra.address]);
  expect(dup.code).toBe(1);
  expect(dup.stderr).toBe(`error: ${extra.address} is already backend db4 of cluster shop; a server is registered once\n`);

  const bad = await cli(["backend", "register", "--cluster", "shop", "--name", "db6", "--address", "no-port-here"]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/^error: policy is invalid \(1 problem\); nothing was written:\nerror: - Cluster shop \(clusters\[0\]\) field backends\[4\]\.address: "no-port-here" has no port; /);

  // REST, dry runs: nothing recorded, nothing changed
  const restReg = await fetch(`${cp.url}/v1/clusters/shop/backends`, { method: "POST", body: JSON.stringify({ backend: { name: "db7", address: "127.0.0.1:1" }, dryRun: true }) });
  expect(restReg.status).toBe(409);
  expect(((await restReg.json()) as { message: string }).message).toMatch(/^cannot reach the new server 127\.0\.0\.1:1 .*refused the connection/);
  const restUn = await fetch(`${cp.url}/v1/clusters/shop/backends/db4?dryRun=true`, { method: "DELETE" });
  expect(restUn.status).toBe(200);
  expect(((await restUn.json()) as { operation: { steps: string[]; sequence: string } }).operation).toMatchObject({ sequence: "0", steps: [expect.stringMatching(/^check: db4 is not the primary/), expect.stringMatching(/^policy: would write version \d+: unregister backend db4/)] });
  const mismatch = await fetch(`${cp.url}/v1/clusters/shop/backends/db4:pause`, { method: "POST", body: JSON.stringify({ cluster: "other" }) });
  expect(mismatch.status).toBe(400);

  const un = await cli(["backend", "unregister", "--cluster", "shop", "--backend", "db4"]);
  expect(un.stderr).toBe("");
  expect(un.code).toBe(0);
  expect(un.stdout).toContain(`policy: version ${v + 1}: unregister backend db4`);
  const after = await cli(["get", "clusters", "shop"]);
  expect(after.stdout).toContain(`by cli:`);
  expect(after.stdout).not.toContain("name: db4");
  expect(after.stdout.split("backends:")[1]).not.toContain(extra.address);
}, 90_000);

test("refusals, each a non-zero exit with the reason: unregister the primary, attach the primary, rejoin/attach a replica with an errant GTID", async () => {
  const un = await cli(["backend", "unregister", "--cluster", "shop", "--backend", "db1"]);
  expect(un.code).toBe(1);
  expect(un.stderr).toMatch(/^error: db1 is the primary of cluster shop \(the other backends replicate from it\); unregistering it would leave the cluster without one — switch over/);
  const at = await cli(["replica", "attach", "--cluster", "shop", "--backend", "db1"]);
  expect(at.code).toBe(1);
  expect(at.stderr).toMatch(/^error: db1 is the primary of cluster shop .*; attach makes a backend replicate from the primary/);
  // REST: the same refusal, with the OperationRecord as a detail
  const rest = await fetch(`${cp.url}/v1/clusters/shop/backends/db1:attach`, { method: "POST", body: "{}" });
  expect(rest.status).toBe(400);
  const body = (await rest.json()) as { code: string; details: { type: string; debug: { operation: string; ok: boolean; error: string } }[] };
  expect(body.code).toBe("failed_precondition");
  expect(body.details[0]).toMatchObject({ type: "mysqlgw.config.v1.OperationRecord", debug: { operation: "ATTACH_REPLICA", ok: false } });

  // an errant transaction: db3 detached, made writable, written to
  const db3 = serverOf("db3");
  expect((await cli(["replica", "detach", "--cluster", "shop", "--backend", "db3"])).code).toBe(0);
  await db3.query("SET GLOBAL read_only=0");
  await db3.query("CREATE DATABASE errant");
  const [{ pos }] = await db3.query<{ pos: string }>("SELECT @@GLOBAL.gtid_binlog_pos AS pos");
  expect(pos).toMatch(/^0-3-\d+$/);
  await cluster.primary.query("INSERT INTO ops.t VALUES (4, 'the primary goes on')");
  for (const verb of [["backend", "rejoin"], ["replica", "attach"]]) {
    const r = await cli([...verb, "--cluster", "shop", "--backend", "db3"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: db3 has transactions the primary db1 lacks: ${pos} (db1 has no transaction of server 3 in domain 0)`);
    expect(r.stderr).toContain("RESET MASTER on db3");
    expect(r.stdout).toContain("  db3: SET GLOBAL read_only=1\n");
    expect(r.stdout).toContain("  db3: SET GLOBAL read_only=0 (undo: it was writable before this refused operation)\n");
    expect(await slaveStatus(db3)).toBeUndefined();
    expect(await readOnly(db3)).toBe("0");
  }
  // what the refusal says to do: drop the errant transaction, clear db3's binlog; then it attaches
  await db3.query("SET SESSION sql_log_bin=0; DROP DATABASE errant; SET SESSION sql_log_bin=1; RESET MASTER; SET GLOBAL read_only=1");
  const ok = await cli(["replica", "attach", "--cluster", "shop", "--backend", "db3"]);
  expect(ok.stderr).toBe("");
  expect(ok.code).toBe(0);
  await caughtUp(db3, cluster.primary);
  expect(await db3.query("SELECT note FROM ops.t WHERE id = 4")).toEqual([{ note: "the primary goes on" }]);
}, 90_000);

test("after a failover the old primary, restarted, is fenced: resume is refused, rejoin makes it a replica of the new primary and unfences it", async () => {
  await cluster.waitForReplicas();
  await cluster.primary.kill();
  let newPrimary = "";
  await waitUntil("a failover of shop", 20_000, async () => {
    const fo = ((await (await fetch(`${cp.url}/v1/failovers?cluster=shop`)).json()) as { failovers?: { outcome: string; newPrimary: string }[] }).failovers ?? [];
    newPrimary = fo[0]?.outcome === "OUTCOME_PROMOTED" ? fo[0].newPrimary : "";
    return newPrimary !== "";
  });
  promoted = newPrimary;
  const np = serverOf(newPrimary);
  await np.query("INSERT INTO ops.t VALUES (5, 'on the new primary')");
  const old = cluster.primary;
  await old.restart();
  await waitUntil("the monitor fencing the restarted db1", 15_000, async () => {
    const h = await health("db1");
    return h !== undefined && /^fenced: former primary, replaced by db[23]/.test(h.lastError) && (await readOnly(old)) === "1";
  });

  const res = await cli(["backend", "resume", "--cluster", "shop", "--backend", "db1"]);
  expect(res.code).toBe(1);
  expect(res.stderr).toMatch(new RegExp(`^error: db1 is a former primary fenced at failover epoch 1 \\(the primary is now ${newPrimary}\\); it must never take writes again`));

  const dry = await cli(["backend", "rejoin", "--cluster", "shop", "--backend", "db1", "--dry-run"]);
  expect(dry.code).toBe(0);
  expect(dry.stdout).toContain(`etcd: would take db1 off the fenced list of shop's epoch 1`);
  expect(await slaveStatus(old)).toBeUndefined();

  const rj = await cli(["backend", "rejoin", "--cluster", "shop", "--backend", "db1"]);
  expect(rj.stderr).toBe("");
  expect(rj.code).toBe(0);
  expect(rj.stdout).toContain(`check: db1's GTIDs`);
  expect(rj.stdout).toContain(`are all on ${newPrimary}`);
  expect(rj.stdout).toContain("db1: SET GLOBAL rpl_semi_sync_master_enabled=OFF");
  expect(rj.stdout).toMatch(/db1: SET GLOBAL gtid_slave_pos='0-1-\d+'/);
  expect(rj.stdout).toContain(`db1: CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${np.port}, MASTER_USER='${MONITOR_USER}'`);
  expect(rj.stdout).toContain(`etcd: db1 taken off the fenced list of shop's epoch 1; it may serve reads`);
  expect(rj.stdout).toMatch(/^done: REJOIN shop\/db1 \(operation \d+\)$/m);
  const s = (await slaveStatus(old))!;
  expect([Number(s.Master_Port), s.Slave_IO_Running, s.Slave_SQL_Running]).toEqual([np.port, "Yes", "Yes"]);
  expect(await readOnly(old)).toBe("1");
  expect(String((await old.query<{ v: unknown }>("SELECT @@GLOBAL.rpl_semi_sync_master_enabled AS v"))[0]!.v)).toBe("0");
  await caughtUp(old, np);
  expect(await old.query("SELECT note FROM ops.t WHERE id = 5")).toEqual([{ note: "on the new primary" }]);
  // no longer fenced: the epoch, the monitor and the data plane agree
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    const epoch = JSON.parse((await client.get("/mysqlgw/v1/failover/epoch/shop").string())!) as { primary: string; fenced?: string[] };
    expect(epoch.primary).toBe(newPrimary);
    expect(epoch.fenced ?? []).not.toContain("db1");
  } finally {
    client.close();
  }
  await waitUntil("the monitor reporting db1 UP, a replica of the new primary", 10_000, async () => {
    const h = await health("db1");
    return h !== undefined && h.state === "STATE_UP" && h.role === "ROLE_REPLICA" && h.sourceAddress === np.address && h.lastError === "";
  });
}, 120_000);

test("`mysqlgw operations` lists them all, newest first, with who asked; REST and --steps agree", async () => {
  const r = await cli(["operations", "--cluster", "shop"]);
  expect(r.code).toBe(0);
  const rows = r.stdout.trim().split("\n").slice(1).map((l) => l.split(/ {2,}/));
  const seqs = rows.map((x) => Number(x[0]));
  expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
  const ops = rows.map((x) => `${x[4]} ${x[3]} ${x[5]}`);
  expect(ops).toEqual([
    "REJOIN db1 ok",
    "RESUME db1 failed",
    "ATTACH_REPLICA db3 ok",
    "ATTACH_REPLICA db3 failed",
    "REJOIN db3 failed",
    "DETACH_REPLICA db3 ok",
    "ATTACH_REPLICA db1 failed",
    "ATTACH_REPLICA db1 failed",
    "UNREGISTER_BACKEND db1 failed",
    "UNREGISTER_BACKEND db4 ok",
    "REGISTER_BACKEND db6 failed",
    "REGISTER_BACKEND db5 failed",
    "REGISTER_BACKEND db4 ok",
    "RESUME db1 ok",
    "PAUSE db1 ok",
    "RESUME db2 ok",
    "PAUSE db2 ok",
    "ATTACH_REPLICA db3 ok",
    "ATTACH_REPLICA db3 ok",
    "DETACH_REPLICA db3 ok",
  ]);
  expect(rows.every((x) => x[6]!.startsWith("cli:") || x[6] === "api")).toBe(true);
  const json = (await (await fetch(`${cp.url}/v1/operations?cluster=shop&limit=3`)).json()) as { operations: { sequence: string; operation: string; steps: string[]; requestedBy: string }[] };
  expect(json.operations.map((o) => o.operation)).toEqual(["REJOIN", "RESUME", "ATTACH_REPLICA"]);
  expect(json.operations[0]!.sequence).toBe(String(seqs[0]));
  expect(json.operations[0]!.steps).toContain("db1: START SLAVE");
  const steps = await cli(["operations", "--cluster", "shop", "--limit", "1", "--steps"]);
  expect(steps.stdout).toContain(`${seqs[0]} REJOIN shop/db1:\n`);

  // gRPC (a @grpc/grpc-js client from the published descriptor set): a dry run and the listing
  const def = protoLoader.loadFileDescriptorSetFromBuffer(Buffer.from(await (await fetch(`${cp.url}/v1/descriptor`)).arrayBuffer()), { keepCase: true, longs: String, defaults: true, enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { mysqlgw: { admin: { v1: { ReplicationService: grpc.ServiceClientConstructor } } } };
  const other = ["db2", "db3"].find((b) => b !== promoted)!;
  const client = new pkg.mysqlgw.admin.v1.ReplicationService(cp.address, grpc.credentials.createInsecure()) as grpc.Client & Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void>;
  const call = <T>(method: string, req: unknown): Promise<T> => new Promise((resolve, reject) => client[method]!(req, (err, res) => (err ? reject(err) : resolve(res as T))));
  try {
    const dry = await call<{ operation: { ok: boolean; steps: string[]; sequence: string } }>("PauseBackend", { cluster: "shop", backend: other, dry_run: true });
    expect(dry.operation).toMatchObject({ ok: true, sequence: "0", steps: [`would run ${other}: STOP SLAVE`] });
    const refused = await call("AttachReplica", { cluster: "shop", backend: newPrimaryName(), dry_run: true }).then(() => null, (e: grpc.ServiceError) => e);
    expect(refused?.code).toBe(grpc.status.FAILED_PRECONDITION);
    const listed = await call<{ operations: { sequence: string }[] }>("ListOperations", { cluster: "shop", limit: 2 });
    expect(listed.operations.map((o) => Number(o.sequence))).toEqual(seqs.slice(0, 2));
  } finally {
    client.close();
  }
  expect((await slaveStatus(serverOf(other)))?.Slave_IO_Running).toBe("Yes");
}, 30_000);

test("an operation waits for the cluster lock (held here as a switchover or failover would) and is refused, recorded, when it stays held", async () => {
  const client = new Etcd3({ hosts: etcd.endpoint });
  const lock = client.lock("/mysqlgw/v1/locks/cluster/shop").ttl(30);
  await lock.acquire();
  const other = ["db2", "db3"].find((b) => b !== promoted)!;
  let r;
  try {
    r = await cli(["backend", "pause", "--cluster", "shop", "--backend", other]);
  } finally {
    await lock.release();
    client.close();
  }
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^error: another replication change of cluster shop is under way \(a switchover, a failover or another operation holds the lock \/mysqlgw\/v1\/locks\/cluster\/shop\) and did not finish within 10000 ms; nothing was done/);
  expect((await slaveStatus(serverOf(other)))?.Slave_IO_Running).toBe("Yes");
  const json = (await (await fetch(`${cp.url}/v1/operations?limit=1`)).json()) as { operations: { operation: string; ok: boolean; backend: string }[] };
  expect(json.operations[0]).toMatchObject({ operation: "PAUSE", ok: false, backend: other });
  // free again: it runs
  const ok = await cli(["backend", "pause", "--cluster", "shop", "--backend", other]);
  expect(ok.code).toBe(0);
  expect((await cli(["backend", "resume", "--cluster", "shop", "--backend", other])).code).toBe(0);
}, 60_000);

test("the etcd operation store: the cluster lock serialises two holders (the second waits), and records beyond the retention are deleted", async () => {
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    const store = createEtcdOperationStore({ client, keys: etcdKeys("/rt"), description: "etcd (test)", callTimeoutMs: 3000, retention: 3 });
    const order: string[] = [];
    const holder = (name: string, ms: number) =>
      store.withClusterLock("c1", 5000, async () => {
        order.push(`${name} in`);
        await new Promise((r) => setTimeout(r, ms));
        order.push(`${name} out`);
      });
    const first = holder("a", 600);
    await new Promise((r) => setTimeout(r, 100));
    await Promise.all([first, holder("b", 10)]);
    expect(order).toEqual(["a in", "a out", "b in", "b out"]);
    // a lock held past the wait: refused
    const long = holder("c", 1500);
    await new Promise((r) => setTimeout(r, 100));
    await expect(store.withClusterLock("c1", 300, async () => undefined)).rejects.toMatchObject({ code: "MGW_ERR_REPLICATION_BUSY" });
    await long;
    for (let i = 0; i < 5; i++) await store.record(create(OperationRecordSchema, { operation: "PAUSE", cluster: "c1", backend: `b${i}` }));
    expect((await store.list("", 100)).map((r) => [r.sequence, r.backend])).toEqual([[5n, "b4"], [4n, "b3"], [3n, "b2"]]);
    expect((await client.getAll().prefix("/rt/v1/operations/").keys()).length).toBe(3);
  } finally {
    client.close();
  }
}, 30_000);
