// Issue 5 point 4: automatic failover without losing acknowledged writes, end
// to end with real parts: a primary and 2 GTID replicas with MariaDB's
// semi-sync (AFTER_SYNC), etcd, a control plane whose monitor probes every
// 200 ms (2 failures → DOWN) with --failover, a data plane with a READ_WRITE
// listener (pass-through, the primary from the monitor's health) and writer
// loops through it that record every acknowledged insert id. The replicas'
// SQL threads are stopped shortly before the primary is killed (-9), so that
// the last acknowledged inserts are in their relay logs only — received, not
// applied — which the textbook promotion (STOP SLAVE; RESET SLAVE ALL) throws
// away.
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
const MONITOR_PASSWORD = "monitor-secret-fo";
const PW = "failover-gw-pw";
const WRITERS = 4;
/** The target; the goal is 2 s. */
const FAILOVER_BOUND_MS = 5000;

let cluster: ReplicatedCluster;
let cp: ControlPlane;
let etcd: EtcdServer;
const CP_ARGS = ["--failover", "--failover-cooldown-ms", "60000"];
let dp: DataPlane;
let port: number;
const names = ["db1", "db2", "db3"];

beforeAll(async () => {
  const [e, c] = await Promise.all([
    startEtcd(),
    startReplicatedCluster({
      replicas: 2,
      semiSync: true,
      accounts: [{ user: MONITOR_USER, password: MONITOR_PASSWORD, grants: "REPLICATION CLIENT, SLAVE MONITOR, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, BINLOG MONITOR, RELOAD, REPLICATION MASTER ADMIN" }],
    }),
  ]);
  cluster = c;
  etcd = e;
  cp = await startControlPlane({ etcd, env: { MONITOR_PW: MONITOR_PASSWORD }, args: CP_ARGS });
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
    users: [{ name: "app", passwordHash: nativePasswordHash(PW), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } }],
  });
  dp = await startDataPlane({ etcd, workers: 1, env: { APP_PW: cluster.app.password }, waitForConfig: version });
  await dp.waitForLog((r) => r.msg === "backend db1 of cluster shop is now PRIMARY (monitor)", 15_000);
  for (const b of names) await dp.waitForLog((r) => r.msg === `backend ${b} of cluster shop is reachable from this data plane`, 10_000);
  const c0 = await connect({ port, user: "app", password: PW });
  await c0.query("CREATE DATABASE fo");
  await c0.query("CREATE TABLE fo.t (id INT AUTO_INCREMENT PRIMARY KEY, w INT NOT NULL, at BIGINT NOT NULL)");
  await c0.end();
  await cluster.waitForReplicas();
}, 180_000);

interface Ack {
  id: number;
  at: number;
  /** @@server_id of the backend the gateway connected this writer to (read once per connection). */
  server: number;
}

/** Writer loops through the gateway: every acknowledged insert id is recorded; errors reconnect; every attempt is bounded. */
function startWriters(n: number): { acks: Ack[]; errors: string[]; stop: () => Promise<void> } {
  const acks: Ack[] = [];
  const errors: string[] = [];
  let stopping = false;
  const loop = async (w: number): Promise<void> => {
    let c: mysql.Connection | null = null;
    let server = 0;
    const deadline = Date.now() + 120_000;
    for (let i = 0; i < 1_000_000 && !stopping && Date.now() < deadline; i++) {
      try {
        if (c === null) {
          c = await connect({ port, user: "app", password: PW, connectTimeout: 1000 });
          const [s] = await c.query({ sql: "SELECT @@server_id AS id", timeout: 2000 });
          server = Number((s as { id: string }[])[0]!.id);
        }
        const [r] = await c.query({ sql: "INSERT INTO fo.t (w, at) VALUES (?, ?)", timeout: 2000 }, [w, Date.now()]);
        acks.push({ id: (r as mysql.ResultSetHeader).insertId, at: Date.now(), server });
      } catch (err) {
        errors.push(`${(err as { code?: string }).code ?? ""} ${(err as Error).message}`.slice(0, 160));
        const dead = c;
        c = null;
        dead?.destroy();
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    c?.destroy();
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

interface FailoverJson {
  cluster: string;
  epoch: string;
  oldPrimary: string;
  newPrimary: string;
  outcome: string;
  candidates?: string[];
  confirmedBy?: string[];
  repointed?: string[];
  detectedAt?: string;
  confirmedAt?: string;
  chosenAt?: string;
  caughtUpAt?: string;
  promotedAt?: string;
  repointedAt?: string;
  rolesPublishedAt?: string;
}

async function failovers(): Promise<FailoverJson[]> {
  const res = await fetch(`${cp.url}/v1/failovers?cluster=shop`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { failovers?: FailoverJson[] }).failovers ?? [];
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

let newPrimary = "";

test("a monitor cut off from the primary alone does not fail over: the data plane still reaches it", async () => {
  // The monitor's account locked on the primary only (not replicated): its probes fail, the data plane's check does not.
  const mark = cp.mark();
  const dpMark = dp.mark();
  await cluster.primary.query(`SET sql_log_bin=0; ALTER USER '${MONITOR_USER}'@'%' ACCOUNT LOCK; SET sql_log_bin=1`);
  try {
    await cp.waitForLog((r) => typeof r.msg === "string" && r.msg.startsWith("monitor: primary shop/db1 fails the monitor's probes; not failing over: only 0 of 1 reporting data planes cannot reach it"), 10_000, mark);
    await dp.waitForLog((r) => typeof r.msg === "string" && r.msg.startsWith("backend db1 of cluster shop is DOWN (monitor)"), 5000, dpMark);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await failovers()).toEqual([]);
  } finally {
    await cluster.primary.query(`SET sql_log_bin=0; ALTER USER '${MONITOR_USER}'@'%' ACCOUNT UNLOCK; SET sql_log_bin=1`);
  }
  await dp.waitForLog((r) => r.msg === "backend db1 of cluster shop is UP (monitor)", 10_000, dpMark);
  expect((await cluster.primary.query<{ ro: string }>("SELECT @@read_only AS ro"))[0]!.ro).toBe("0");
}, 60_000);

/** On a failure: what the monitor and the data plane said since `since`. */
function dumpLogs(since: number): void {
  const pick = (logs: readonly Record<string, unknown>[]): string =>
    logs
      .filter((r) => Number(r.time) >= since - 500 && Number(r.level) >= 30)
      .slice(-40)
      .map((r) => `${String(r.time)} ${String(r.msg)} ${r.err !== undefined ? String(r.err) : ""}`)
      .join("\n");
  console.log(`control plane:\n${pick(cp.logs)}\ndata plane:\n${pick(dp.logs)}`);
}

test("kill -9 of the primary under writes: a replica that had applied less than it received is promoted within 5 s, and every acknowledged insert is on it", async () => {
  const writers = startWriters(WRITERS);
  let killedAt = 0;
  let sqlStoppedAt = 0;
  try {
    await new Promise((r) => setTimeout(r, 1000));
    // Replicas keep receiving (semi-sync acks) but stop applying: a backlog of acknowledged, unapplied writes.
    await Promise.all(cluster.replicas.map((r) => r.query("STOP SLAVE SQL_THREAD")));
    sqlStoppedAt = Date.now();
    await new Promise((r) => setTimeout(r, 400));
    // From the SIGKILL on; an OK the old primary sent just before it may still arrive after this
    // instant, so the first write that counts is the first acknowledged by another server.
    killedAt = Date.now();
    await cluster.primary.kill();
    await waitUntil("a write acknowledged by the new primary", 20_000, async () => writers.acks.some((a) => a.server !== 1)).catch((err: unknown) => {
      dumpLogs(killedAt);
      throw err;
    });
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    await writers.stop();
  }
  const before = writers.acks.filter((a) => a.server === 1);
  const backlog = before.filter((a) => a.at > sqlStoppedAt);
  const firstAfter = writers.acks.find((a) => a.server !== 1)!;
  const fo = (await failovers())[0]!;
  const t = (s: string | undefined): number => (s === undefined ? NaN : Date.parse(s) - killedAt);
  console.log(
    `failover: kill → first acknowledged write through the gateway ${firstAfter.at - killedAt} ms; ` +
      `${before.length} inserts acknowledged by the old primary, ${backlog.length} of them while the replicas' SQL threads were stopped; ` +
      `timeline after the kill (ms): detected ${t(fo.detectedAt)}, confirmed ${t(fo.confirmedAt)}, chosen ${t(fo.chosenAt)}, caught up ${t(fo.caughtUpAt)}, ` +
      `promoted ${t(fo.promotedAt)}, re-pointed ${t(fo.repointedAt)}, roles published ${t(fo.rolesPublishedAt)}; ` +
      `${fo.oldPrimary} → ${fo.newPrimary}; candidates ${JSON.stringify(fo.candidates)}; ${writers.errors.length} failed attempts`,
  );
  expect(backlog.length).toBeGreaterThan(0);
  expect(fo).toMatchObject({ cluster: "shop", epoch: "1", oldPrimary: "db1", outcome: "OUTCOME_PROMOTED" });
  expect(["db2", "db3"]).toContain(fo.newPrimary);
  // every write after the old primary's went to the new one
  expect(new Set(writers.acks.map((a) => a.server))).toEqual(new Set([1, names.indexOf(fo.newPrimary) + 1]));
  expect(fo.confirmedBy).toHaveLength(1);
  // when chosen, the new primary had received more than it had applied (the backlog of the stopped SQL thread)
  const chosen = /received=(\S*) applied=(\S*)/.exec(fo.candidates!.find((c) => c.startsWith(`${fo.newPrimary} `))!)!;
  expect(chosen[1]).not.toBe(chosen[2]);
  expect(fo.repointed).toEqual(["db2", "db3"].filter((b) => b !== fo.newPrimary));
  expect(firstAfter.at - killedAt).toBeLessThanOrEqual(FAILOVER_BOUND_MS);
  newPrimary = fo.newPrimary;

  // every acknowledged insert, before and after the kill, is on the new primary
  const np = serverOf(newPrimary);
  const rows = await np.query<{ id: string }>("SELECT id FROM fo.t");
  const have = new Set(rows.map((r) => Number(r.id)));
  const missing = writers.acks.filter((a) => !have.has(a.id));
  expect(missing).toEqual([]);
  // the new primary is writable, semi-sync on its master side, and the other replica follows it
  expect((await np.query<{ ro: string }>("SELECT @@read_only AS ro"))[0]!.ro).toBe("0");
  expect((await np.query<{ ss: string }>("SELECT @@rpl_semi_sync_master_enabled AS ss"))[0]!.ss).toBe("1");
  const status = Object.fromEntries((await np.query<{ Variable_name: string; Value: string }>("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'")).map((r) => [r.Variable_name, r.Value]));
  console.log(`new primary: semi-sync commits acknowledged by a replica ${status.Rpl_semi_sync_master_yes_tx}, without ${status.Rpl_semi_sync_master_no_tx}`);
  expect(Number(status.Rpl_semi_sync_master_yes_tx)).toBeGreaterThan(0);
  expect(status.Rpl_semi_sync_master_no_tx).toBe("0");
  // counted in the control plane's metrics
  const metricsText = await (await fetch(`${cp.url}/metrics`)).text();
  expect(metricsText).toMatch(/^mysqlgw_monitor_failovers_total\{cluster="shop",outcome="promoted"\} 1$/m);
  expect(metricsText).toMatch(/^mysqlgw_monitor_failover_duration_seconds_count\{cluster="shop"\} 1$/m);
  // the CLI lists it
  const cli = await runCli(cp.url, ["failovers", "--cluster", "shop"]);
  expect(cli.code).toBe(0);
  expect(cli.stdout).toMatch(new RegExp(`^shop +1 +\\S+ +db1 +${fo.newPrimary} +PROMOTED `, "m"));
  const other = serverOf(["db2", "db3"].find((b) => b !== newPrimary)!);
  await waitUntil("the other replica replicating from the new primary", 10_000, async () => {
    const [s] = await other.query("SHOW SLAVE STATUS");
    return s !== undefined && Number(s.Master_Port) === np.port && s.Slave_IO_Running === "Yes" && s.Slave_SQL_Running === "Yes";
  });
  const [{ pos }] = await np.query<{ pos: string }>("SELECT @@gtid_binlog_pos AS pos");
  const [{ r }] = await other.query<{ r: string }>("SELECT MASTER_GTID_WAIT(?, 10) AS r", [pos]);
  expect(Number(r)).toBe(0);
  expect((await other.query<{ n: string }>("SELECT COUNT(*) AS n FROM fo.t"))[0]!.n).toBe(String(have.size));
}, 120_000);

test("the old primary, restarted, is set read_only by the monitor and gets no writes through the gateway", async () => {
  expect(newPrimary).not.toBe("");
  const old = cluster.primary;
  const mark = cp.mark();
  await old.restart();
  await cp.waitForLog((r) => typeof r.msg === "string" && r.msg.startsWith("monitor: former primary shop/db1 is back with read_only OFF"), 15_000, mark);
  expect((await old.query<{ ro: string }>("SELECT @@read_only AS ro"))[0]!.ro).toBe("1");
  const oldCount = Number((await old.query<{ n: string }>("SELECT COUNT(*) AS n FROM fo.t"))[0]!.n);
  const writers = startWriters(2);
  await new Promise((r) => setTimeout(r, 1500));
  await writers.stop();
  expect(writers.acks.length).toBeGreaterThan(10);
  expect(writers.errors).toEqual([]);
  expect(Number((await old.query<{ n: string }>("SELECT COUNT(*) AS n FROM fo.t"))[0]!.n)).toBe(oldCount);
  const ids = writers.acks.map((a) => a.id);
  const onNew = await serverOf(newPrimary).query<{ n: string }>(`SELECT COUNT(*) AS n FROM fo.t WHERE id IN (${ids.join(",")})`);
  expect(Number(onNew[0]!.n)).toBe(ids.length);
  // the monitor publishes it DOWN (fenced) whatever it answers
  const res = await fetch(`${cp.url}/v1/backends?cluster=shop`);
  const backends = ((await res.json()) as { backends: { backend: string; state: string; lastError?: string }[] }).backends;
  const db1 = backends.find((b) => b.backend === "db1")!;
  expect(db1.state).toBe("STATE_DOWN");
  expect(db1.lastError).toMatch(/^fenced: former primary, replaced by db[23] at failover epoch 1/);
}, 60_000);

test("with the monitor gone (control plane killed, its health keys expired), writes still go to the new primary by the epoch, never to the fenced old one", async () => {
  const mark = dp.mark();
  await cp.stop("SIGKILL", 5000);
  await dp.waitForLog((r) => r.msg === `backend ${newPrimary} of cluster shop has no health report any more (monitor stopped, lease expired, or backend removed); routing on the policy's roles`, 10_000, mark);
  await dp.waitForLog((r) => r.msg === `backend ${newPrimary} of cluster shop is now PRIMARY (epoch)`, 5000, mark);
  const writers = startWriters(2);
  await new Promise((r) => setTimeout(r, 1000));
  await writers.stop();
  expect(writers.errors).toEqual([]);
  expect(writers.acks.length).toBeGreaterThan(10);
  const ids = writers.acks.map((a) => a.id).join(",");
  expect(Number((await serverOf(newPrimary).query<{ n: string }>(`SELECT COUNT(*) AS n FROM fo.t WHERE id IN (${ids})`))[0]!.n)).toBe(writers.acks.length);
  expect(Number((await cluster.primary.query<{ n: string }>(`SELECT COUNT(*) AS n FROM fo.t WHERE id IN (${ids})`))[0]!.n)).toBe(0);
  // a new control plane leads the monitor again, with the fencing and the cooldown read back from etcd
  const again = dp.mark();
  cp = await startControlPlane({ etcd, env: { MONITOR_PW: MONITOR_PASSWORD }, args: CP_ARGS });
  await dp.waitForLog((r) => r.msg === `backend ${newPrimary} of cluster shop is now PRIMARY (monitor)`, 15_000, again);
}, 60_000);

test("flapping: the new primary killed and restarted twice within the cooldown causes no second failover", async () => {
  const victim = serverOf(newPrimary);
  for (let round = 0; round < 2; round++) {
    const mark = cp.mark();
    await victim.kill();
    await cp.waitForLog((r) => typeof r.msg === "string" && r.msg.includes("not failing over again"), 10_000, mark);
    await victim.restart();
    await new Promise((r) => setTimeout(r, 800));
  }
  const all = await failovers();
  expect(all).toHaveLength(1);
  expect(all[0]!.epoch).toBe("1");
}, 90_000);
