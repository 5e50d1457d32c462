// Issue 5 points 3 and 6: a planned switchover under a steady write load, with
// real parts: a primary and 2 GTID replicas with MariaDB's semi-sync
// (AFTER_SYNC), etcd, a control plane with its monitor (probes every 200 ms),
// a data plane (one worker) with a SPLIT listener, and 8 client connections
// writing through it — autocommit inserts and small BEGIN … COMMIT
// transactions — that record every acknowledged id. `mysqlgw switchover`
// runs while they write: no client may see an error, and every acknowledged
// row must be on the new primary.
import { Etcd3 } from "etcd3";
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
  startReplicatedCluster,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type MariaDBServer,
  type ReplicatedCluster,
} from "../helpers";

const MONITOR_USER = "mgw_monitor";
const MONITOR_PASSWORD = "monitor-secret-sw";
const PW = "switchover-gw-pw";
const WRITERS = 8;
const names = ["db1", "db2", "db3"];

let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane;
let port: number;
/** A READ_WRITE listener without multiplexing: pass-through sessions. */
let rwPort: number;
let etcd: EtcdServer;

beforeAll(async () => {
  const [e, c] = await Promise.all([
    startEtcd(),
    startReplicatedCluster({
      replicas: 2,
      semiSync: true,
      // the monitor's account also runs the switchover; the old primary replicates with it (REPLICATION SLAVE)
      accounts: [{ user: MONITOR_USER, password: MONITOR_PASSWORD, grants: "REPLICATION CLIENT, SLAVE MONITOR, REPLICATION SLAVE, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, BINLOG MONITOR, RELOAD, REPLICATION MASTER ADMIN" }],
    }),
  ]);
  cluster = c;
  etcd = e;
  cp = await startControlPlane({ etcd, env: { MONITOR_PW: MONITOR_PASSWORD }, args: ["--failover"] });
  port = await freePort();
  rwPort = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [
      {
        name: "shop",
        backends: cluster.servers.map((s, i) => ({ name: names[i], address: s.address })),
        health: { interval: "0.2s", timeout: "1s", failureThreshold: 2, credentials: { user: MONITOR_USER, secretRef: "env:MONITOR_PW" } },
      },
    ],
    listeners: [
      { name: "split", bindAddress: "127.0.0.1", port, cluster: "shop", role: "LISTENER_ROLE_SPLIT" },
      { name: "rw", bindAddress: "127.0.0.1", port: rwPort, cluster: "shop", role: "LISTENER_ROLE_READ_WRITE" },
    ],
    users: [{ name: "app", passwordHash: nativePasswordHash(PW), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } }],
  });
  dp = await startDataPlane({ etcd, workers: 1, env: { APP_PW: cluster.app.password }, waitForConfig: version });
  await dp.waitForLog((r) => r.msg === "backend db1 of cluster shop is now PRIMARY (monitor)", 15_000);
  for (const b of ["db2", "db3"]) await dp.waitForLog((r) => r.msg === `backend ${b} of cluster shop is now REPLICA (monitor)`, 15_000);
  const c0 = await connect({ port, user: "app", password: PW });
  await c0.query("CREATE DATABASE sw");
  await c0.query("CREATE TABLE sw.t (id INT AUTO_INCREMENT PRIMARY KEY, w INT NOT NULL, kind CHAR(1) NOT NULL, at BIGINT NOT NULL)");
  await c0.end();
  await cluster.waitForReplicas();
}, 180_000);

interface Ack {
  id: number;
  /** When the client got the OK (of the insert, or of the COMMIT of its transaction). */
  at: number;
}

/**
 * Writer loops through the gateway, each on one connection: two autocommit
 * inserts, then a BEGIN; INSERT; INSERT; COMMIT, round and round. Every id
 * acknowledged (an insert's OK in autocommit, a COMMIT's OK for the
 * transaction's inserts) is recorded; every error too (none is expected).
 */
function startWriters(n: number): { acks: Ack[]; errors: string[]; stop: () => Promise<void> } {
  const acks: Ack[] = [];
  const errors: string[] = [];
  let stopping = false;
  const loop = async (w: number): Promise<void> => {
    let c: mysql.Connection | null = null;
    const deadline = Date.now() + 120_000;
    for (let i = 0; i < 1_000_000 && !stopping && Date.now() < deadline; i++) {
      try {
        if (c === null) c = await connect({ port, user: "app", password: PW, connectTimeout: 2000 });
        if (i % 3 !== 2) {
          const [r] = await c.query({ sql: "INSERT INTO sw.t (w, kind, at) VALUES (?, 'a', ?)", timeout: 10_000 }, [w, Date.now()]);
          acks.push({ id: (r as mysql.ResultSetHeader).insertId, at: Date.now() });
        } else {
          await c.query({ sql: "BEGIN", timeout: 10_000 });
          const ids: number[] = [];
          for (let k = 0; k < 2; k++) {
            const [r] = await c.query({ sql: "INSERT INTO sw.t (w, kind, at) VALUES (?, 't', ?)", timeout: 10_000 }, [w, Date.now()]);
            ids.push((r as mysql.ResultSetHeader).insertId);
          }
          await c.query({ sql: "COMMIT", timeout: 10_000 });
          const at = Date.now();
          for (const id of ids) acks.push({ id, at });
        }
      } catch (err) {
        errors.push(`${(err as { code?: string }).code ?? ""} ${(err as { errno?: number }).errno ?? ""} ${(err as Error).message}`.slice(0, 200));
        const dead = c;
        c = null;
        dead?.destroy();
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await c?.end().catch(() => undefined);
  };
  const loops = Array.from({ length: n }, (_, w) => loop(w));
  return {
    acks,
    errors,
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

interface RecordJson {
  cluster: string;
  epoch: string;
  kind?: string;
  oldPrimary: string;
  newPrimary: string;
  outcome: string;
  error?: string;
  repointed?: string[];
  requestedBy?: string;
  transactionsEnded?: number;
  detectedAt?: string;
  holdStartedAt?: string;
  drainedAt?: string;
  caughtUpAt?: string;
  promotedAt?: string;
  repointedAt?: string;
  rolesPublishedAt?: string;
  releasedAt?: string;
}

async function failovers(): Promise<RecordJson[]> {
  const res = await fetch(`${cp.url}/v1/failovers?cluster=shop`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { failovers?: RecordJson[] }).failovers ?? [];
}

const serverOf = (name: string): MariaDBServer => cluster.servers[names.indexOf(name)]!;

async function waitUntil(what: string, ms: number, fn: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  for (let i = 0; i < 10_000; i++) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** On a failure: what the control and data planes said. */
function dumpLogs(since: number): void {
  const pick = (logs: readonly Record<string, unknown>[]): string =>
    logs
      .filter((r) => Number(r.time) >= since - 500 && Number(r.level) >= 30)
      .slice(-60)
      .map((r) => `${String(r.time)} ${String(r.msg)} ${r.err !== undefined ? String(r.err) : ""}`)
      .join("\n");
  console.log(`control plane:\n${pick(cp.logs)}\ndata plane:\n${pick(dp.logs)}`);
}

test("a dry run plans the switchover and changes nothing", async () => {
  const cli = await runCli(cp.url, ["switchover", "--cluster", "shop", "--dry-run"], { timeoutMs: 30_000 });
  expect(cli.stderr).toBe("");
  expect(cli.code).toBe(0);
  expect(cli.stdout).toMatch(/^shop: db1 → db[23] \(epoch 1\)$/m);
  expect(cli.stdout).toContain("db1: SET GLOBAL read_only=1");
  // the same over REST
  const res = await fetch(`${cp.url}/v1/clusters/shop:switchover`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ to: "db3", dryRun: true }) });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { record?: { newPrimary?: string }; operation?: { ok?: boolean; steps?: string[] } };
  expect(body.record?.newPrimary).toBe("db3");
  expect(body.operation?.ok).toBe(true);
  expect(body.operation?.steps).toContain("db3: RESET SLAVE ALL");
  expect(await failovers()).toEqual([]);
  expect((await cluster.primary.query<{ ro: string }>("SELECT @@read_only AS ro"))[0]!.ro).toBe("0");
}, 60_000);

test("refused with a clear reason, nothing changed: an unknown target, the primary itself, a stopped replica", async () => {
  const unknown = await runCli(cp.url, ["switchover", "--cluster", "shop", "--to", "db9"], { timeoutMs: 30_000 });
  expect(unknown.code).not.toBe(0);
  expect(unknown.stderr).toContain("switchover refused: cluster shop has no backend 'db9' (backends: db1, db2, db3)");
  const self = await runCli(cp.url, ["switchover", "--cluster", "shop", "--to", "db1"], { timeoutMs: 30_000 });
  expect(self.code).not.toBe(0);
  expect(self.stderr).toContain("shop/db1 is already the primary");
  const noCluster = await runCli(cp.url, ["switchover", "--cluster", "nope"], { timeoutMs: 30_000 });
  expect(noCluster.code).not.toBe(0);
  expect(noCluster.stderr).toContain("the current policy has no cluster 'nope'");
  // a replica whose SQL thread is stopped is not replicating: refused
  await serverOf("db3").query("STOP SLAVE SQL_THREAD");
  try {
    const stopped = await runCli(cp.url, ["switchover", "--cluster", "shop", "--to", "db3"], { timeoutMs: 30_000 });
    expect(stopped.code).not.toBe(0);
    expect(stopped.stderr).toContain("switchover refused: shop/db3 cannot be promoted: it is not replicating (IO thread running, SQL thread stopped); START SLAVE on it first");
  } finally {
    await serverOf("db3").query("START SLAVE SQL_THREAD");
  }
  expect(await failovers()).toEqual([]);
  expect((await cluster.primary.query<{ ro: string }>("SELECT @@read_only AS ro"))[0]!.ro).toBe("0");
  // the operations record says so too
  const ops = await (await fetch(`${cp.url}/v1/operations?cluster=shop`)).json() as { operations?: { operation: string; ok?: boolean; error?: string }[] };
  const refusedOps = (ops.operations ?? []).filter((o) => o.operation === "SWITCHOVER");
  expect(refusedOps.length).toBeGreaterThanOrEqual(3);
  expect(refusedOps.every((o) => o.ok !== true)).toBe(true);
}, 90_000);

test("switchover under a steady write load: zero client errors, every acknowledged row on the new primary, the old primary replicating from it", async () => {
  // a pass-through session (READ_WRITE listener, no multiplexing) on db1: it cannot be held, it is closed after the release
  const pt = await connect({ port: rwPort, user: "app", password: PW });
  pt.on("error", () => undefined);
  expect((await pt.query<mysql.RowDataPacket[]>("SELECT @@server_id AS id"))[0][0]!.id).toBe("1");
  const dpMark = dp.mark();
  const writers = startWriters(WRITERS);
  const t0 = Date.now();
  let cliAt = 0;
  let cliDone = 0;
  let cli: Awaited<ReturnType<typeof runCli>>;
  try {
    await new Promise((r) => setTimeout(r, 1500));
    cliAt = Date.now();
    cli = await runCli(cp.url, ["switchover", "--cluster", "shop", "--to", "db2"], { timeoutMs: 60_000 });
    cliDone = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    await writers.stop();
  }
  if (cli.code !== 0 || writers.errors.length > 0) {
    console.log(cli.stdout, cli.stderr, writers.errors.slice(0, 20));
    dumpLogs(cliAt);
  }
  expect(cli.code).toBe(0);
  expect(writers.errors).toEqual([]);
  const rec = (await failovers())[0]!;
  const ms = (s: string | undefined): number => (s === undefined ? NaN : Date.parse(s));
  // the write pause: the longest gap between two acknowledged writes while the switchover ran
  const times = writers.acks.map((a) => a.at).sort((a, b) => a - b);
  let pause = 0;
  let pauseAt = 0;
  for (let i = 1; i < times.length; i++) {
    if (times[i]! < cliAt) continue;
    if (times[i]! - times[i - 1]! > pause) {
      pause = times[i]! - times[i - 1]!;
      pauseAt = times[i - 1]!;
    }
  }
  const before = writers.acks.filter((a) => a.at < cliAt).length;
  console.log(
    `switchover: longest gap between acknowledged writes ${pause} ms (from +${pauseAt - cliAt} ms after the command started); ` +
      `command ${cliDone - cliAt} ms; hold → release ${ms(rec.releasedAt) - ms(rec.holdStartedAt)} ms; ` +
      `timeline from the request (ms): hold ${ms(rec.holdStartedAt) - ms(rec.detectedAt)}, drained ${ms(rec.drainedAt) - ms(rec.detectedAt)}, caught up ${ms(rec.caughtUpAt) - ms(rec.detectedAt)}, ` +
      `promoted ${ms(rec.promotedAt) - ms(rec.detectedAt)}, re-pointed ${ms(rec.repointedAt) - ms(rec.detectedAt)}, roles published ${ms(rec.rolesPublishedAt) - ms(rec.detectedAt)}, released ${ms(rec.releasedAt) - ms(rec.detectedAt)}; ` +
      `${writers.acks.length} acknowledged inserts (${before} before the command, ${(writers.acks.length / ((Date.now() - t0) / 1000)).toFixed(0)}/s overall) from ${WRITERS} connections; transactions ended ${rec.transactionsEnded ?? 0}\n${cli.stdout}`,
  );
  expect(rec).toMatchObject({ cluster: "shop", epoch: "1", kind: "KIND_SWITCHOVER", oldPrimary: "db1", newPrimary: "db2", outcome: "OUTCOME_PROMOTED" });
  expect(rec.error ?? "").toBe("");
  expect(rec.repointed?.sort()).toEqual(["db1", "db3"]);
  expect(cli.stdout).toMatch(/^switchover of shop done: db2 is the primary$/m);
  expect(cli.stdout).toMatch(/writes held for \d+ ms/);

  // every acknowledged insert is on the new primary
  const db2 = serverOf("db2");
  const rows = await db2.query<{ id: string }>("SELECT id FROM sw.t");
  const have = new Set(rows.map((r) => Number(r.id)));
  expect(writers.acks.filter((a) => !have.has(a.id))).toEqual([]);
  // writes went on after the switchover, on db2
  expect(writers.acks.filter((a) => a.at > cliDone).length).toBeGreaterThan(0);
  // db2 is the primary: writable, replicating from nobody, semi-sync master side on
  expect((await db2.query<{ ro: string }>("SELECT @@read_only AS ro"))[0]!.ro).toBe("0");
  expect(await db2.query("SHOW SLAVE STATUS")).toEqual([]);
  expect((await db2.query<{ ss: string }>("SELECT @@rpl_semi_sync_master_enabled AS ss"))[0]!.ss).toBe("1");
  // the old primary is read_only and replicates from db2, as does db3; both have every row
  const [{ pos }] = await db2.query<{ pos: string }>("SELECT @@gtid_binlog_pos AS pos");
  for (const name of ["db1", "db3"]) {
    const s = serverOf(name);
    expect((await s.query<{ ro: string }>("SELECT @@read_only AS ro"))[0]!.ro).toBe("1");
    await waitUntil(`${name} replicating from db2`, 10_000, async () => {
      const [st] = await s.query("SHOW SLAVE STATUS");
      return st !== undefined && Number(st.Master_Port) === db2.port && st.Slave_IO_Running === "Yes" && st.Slave_SQL_Running === "Yes";
    });
    const [{ r }] = await s.query<{ r: string }>("SELECT MASTER_GTID_WAIT(?, 10) AS r", [pos]);
    expect(Number(r)).toBe(0);
    expect(Number((await s.query<{ n: string }>("SELECT COUNT(*) AS n FROM sw.t"))[0]!.n)).toBe(rows.length);
  }
  expect((await serverOf("db1").query<{ ss: string }>("SELECT @@rpl_semi_sync_master_enabled AS ss"))[0]!.ss).toBe("0");
  // the monitor and the data plane see the new roles; the old primary serves reads (not fenced)
  await waitUntil("the monitor's roles", 5000, async () => {
    const b = ((await (await fetch(`${cp.url}/v1/backends?cluster=shop`)).json()) as { backends: { backend: string; state: string; role: string }[] }).backends;
    const role = (n: string) => b.find((x) => x.backend === n);
    return role("db2")?.role === "ROLE_PRIMARY" && role("db1")?.role === "ROLE_REPLICA" && role("db1")?.state === "STATE_UP";
  });
  // mysqlgw failovers lists it, with its kind and timeline
  const list = await runCli(cp.url, ["failovers", "--cluster", "shop"]);
  expect(list.code).toBe(0);
  expect(list.stdout).toMatch(/^shop +1 +\S+ +db1 +db2 +PROMOTED +SWITCHOVER /m);
  // the pass-through session on db1 was closed (its client reconnects, to db2)
  await dp.waitForLog((x) => typeof x.msg === "string" && x.msg.startsWith("switchover of shop: closed 1 pass-through session(s) of READ_WRITE listeners on db1"), 5000, dpMark);
  expect(await pt.query("SELECT 1").then(() => "answered", () => "closed")).toBe("closed");
  pt.destroy();
  const again = await connect({ port: rwPort, user: "app", password: PW });
  expect((await again.query<mysql.RowDataPacket[]>("SELECT @@server_id AS id"))[0][0]!.id).toBe("2");
  await again.query("INSERT INTO sw.t (w, kind, at) VALUES (100, 'p', 0)");
  await again.end();
}, 180_000);

test("a data plane that never answers the hold: aborted before anything changed, the old primary stays writable, writes go on without an error", async () => {
  // a registered data plane that does not ack (as one older than this control plane would)
  const client = new Etcd3({ hosts: etcd.endpoint });
  const lease = client.lease(30);
  const writers = startWriters(4);
  let cli: Awaited<ReturnType<typeof runCli>>;
  try {
    await lease.put("/mysqlgw/v1/dataplanes/ghost").value(JSON.stringify({ id: "ghost" }));
    await new Promise((r) => setTimeout(r, 500));
    cli = await runCli(cp.url, ["switchover", "--cluster", "shop", "--to", "db3", "--hold-timeout", "3s", "--drain-timeout", "0.5s"], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 1000));
    // the hold is gone with the abort
    expect(await client.get("/mysqlgw/v1/switchover/hold/shop").string()).toBeNull();
  } finally {
    await writers.stop();
    await lease.revoke().catch(() => undefined);
    client.close();
  }
  expect(cli.code).toBe(1);
  expect(cli.stderr).toContain("switchover of shop aborted: data plane(s) ghost did not report their open transactions finished in time");
  expect(writers.errors).toEqual([]);
  const rec = (await failovers())[0]!;
  expect(rec).toMatchObject({ kind: "KIND_SWITCHOVER", oldPrimary: "db2", newPrimary: "db3", outcome: "OUTCOME_ABORTED" });
  // nothing changed: db2 writable and the primary, db3 still its replica; the writes went to db2
  expect((await serverOf("db2").query<{ ro: string }>("SELECT @@read_only AS ro"))[0]!.ro).toBe("0");
  const [st] = await serverOf("db3").query("SHOW SLAVE STATUS");
  expect(Number(st!.Master_Port)).toBe(serverOf("db2").port);
  const ids = writers.acks.map((a) => a.id);
  expect(ids.length).toBeGreaterThan(0);
  expect(Number((await serverOf("db2").query<{ n: string }>(`SELECT COUNT(*) AS n FROM sw.t WHERE id IN (${ids.join(",")})`))[0]!.n)).toBe(ids.length);
}, 90_000);

test("a transaction still open at the end of the drain window is ended: ERR 1927 at its next statement, rolled back; every other write goes through", async () => {
  const idle = await connect({ port, user: "app", password: PW });
  idle.on("error", () => undefined); // the gateway closes it after the ERR
  await idle.query("BEGIN");
  const [r] = await idle.query("INSERT INTO sw.t (w, kind, at) VALUES (99, 'x', 0)");
  const openId = (r as mysql.ResultSetHeader).insertId;
  const writers = startWriters(WRITERS);
  let cli: Awaited<ReturnType<typeof runCli>>;
  let cliAt = 0;
  try {
    await new Promise((r2) => setTimeout(r2, 500));
    cliAt = Date.now();
    cli = await runCli(cp.url, ["switchover", "--cluster", "shop", "--to", "db1", "--drain-timeout", "1s"], { timeoutMs: 60_000 });
    await new Promise((r2) => setTimeout(r2, 1000));
  } finally {
    await writers.stop();
  }
  if (cli.code !== 0) dumpLogs(cliAt);
  expect(cli.code).toBe(0);
  expect(writers.errors).toEqual([]);
  const err = await idle.query("COMMIT").then(
    () => null,
    (e: { errno?: number; sqlState?: string; message?: string }) => e,
  );
  idle.destroy();
  expect(err).toMatchObject({ errno: 1927, sqlState: "70100" });
  expect(err?.message).toContain("mysqlgw ended this transaction for a planned switchover of cluster 'shop'");
  const rec = (await failovers())[0]!;
  expect(rec).toMatchObject({ kind: "KIND_SWITCHOVER", oldPrimary: "db2", newPrimary: "db1", outcome: "OUTCOME_PROMOTED", transactionsEnded: 1 });
  const ms = (t: string | undefined): number => (t === undefined ? NaN : Date.parse(t));
  console.log(`switchover back to db1 with a transaction left open: drained after ${ms(rec.drainedAt) - ms(rec.holdStartedAt)} ms (drain window 1 s), writes held ${ms(rec.releasedAt) - ms(rec.holdStartedAt)} ms`);
  // the ended transaction was rolled back; every acknowledged write is on db1
  const db1 = serverOf("db1");
  expect((await db1.query<{ n: string }>("SELECT COUNT(*) AS n FROM sw.t WHERE id = ?", [openId]))[0]!.n).toBe("0");
  const have = new Set((await db1.query<{ id: string }>("SELECT id FROM sw.t")).map((x) => Number(x.id)));
  expect(writers.acks.filter((a) => !have.has(a.id))).toEqual([]);
  // db2 (which never had a source before its promotion) replicates from db1 with the monitor's account
  await waitUntil("db2 replicating from db1", 10_000, async () => {
    const [st] = await serverOf("db2").query("SHOW SLAVE STATUS");
    return st !== undefined && Number(st.Master_Port) === db1.port && st.Slave_IO_Running === "Yes" && st.Slave_SQL_Running === "Yes";
  });
  const list = await runCli(cp.url, ["failovers", "--cluster", "shop"]);
  expect(list.stdout).toMatch(/^shop +2 +\S+ +db2 +db1 +PROMOTED +SWITCHOVER /m);
}, 120_000);
