// Issue 5 point 1 (data-plane half) and issue 4 point 4's backend state: a data
// plane with 2 workers watches <prefix>/v1/health/ in etcd and acts on each
// BackendHealth at once, in every worker. The values are written here as the
// monitor writes them (proto3 JSON, one key per backend; see
// control-plane/src/monitor/monitor.ts), with a control plane that does not run
// the monitor, so that this test alone decides what the health says.
// Observed through the workers' log lines (role and state changes) and through
// where new connections land (a backend the monitor reports DOWN is tried last).
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { BackendHealth_Role, BackendHealth_State, BackendHealthSchema, etcdKeys } from "@mysqlgw/proto";
import { Etcd3 } from "etcd3";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  type DataPlane,
  type EtcdServer,
  type LogRecord,
  type MariaDBServer,
} from "../helpers";

const APP_PW = "health-app-pw-5";
const PW = "health-gw-pw-5";
const keys = etcdKeys();
/** From the etcd put to the log line of both workers: supervisor watch + one IPC hop + a log write. */
const REACT_BOUND_MS = 3000;

let etcd: EtcdServer;
let dbs: MariaDBServer[];
let dp: DataPlane;
let client: Etcd3;
let port: number;
let metricsPort: number;
/** A listener on cluster "spare": db1 and a backend nobody listens on, no roles (plain round robin). */
let sparePort: number;

function health(backend: string, state: BackendHealth_State, role: BackendHealth_Role, extra: { lastError?: string; roleDisagreement?: string } = {}): string {
  const db = dbs[backend === "db1" ? 0 : 1]!;
  return toJsonString(
    BackendHealthSchema,
    create(BackendHealthSchema, {
      cluster: "main",
      backend,
      address: db.address,
      state,
      role,
      serverId: db.serverId,
      gtidCurrentPos: "0-1-10",
      checkedAt: timestampFromMs(Date.now()),
      monitorId: "backend-health-watch.test",
      ...extra,
    }),
  );
}

/** The messages logged by workers 0 and 1 from log index `since` on, matching `msg` exactly. */
function workersThatLogged(since: number, msg: string): number[] {
  return dp.logs
    .slice(since)
    .filter((r: LogRecord) => r.role === "worker" && r.msg === msg)
    .map((r) => Number(r.worker))
    .sort();
}

/** Waits until both workers logged `msg` after `since`; returns the time it took. */
async function bothWorkersLog(since: number, msg: string, t0: number): Promise<number> {
  await dp.waitForLog((r) => r.msg === msg && r.role === "worker" && workersThatLogged(since, msg).length >= 2, REACT_BOUND_MS, since);
  expect(workersThatLogged(since, msg)).toEqual([0, 1]);
  return Date.now() - t0;
}

/** @@port of the backend each of `n` new client connections landed on. */
async function landings(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = await connect({ port, user: "app", password: PW });
    try {
      const [rows] = await c.query("SELECT @@port AS p");
      out.push(Number((rows as { p: number }[])[0]!.p));
    } finally {
      await c.end();
    }
  }
  return out;
}

/** mysqlgw_backend_up of main/<backend> as GET /metrics shows it (the minimum over the workers). */
async function backendUpGauge(backend: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = new RegExp(`^mysqlgw_backend_up\\{[^}]*backend="${backend}"[^}]*\\} (\\S+)$`, "m").exec(text);
  return m === null ? null : Number(m[1]);
}

beforeAll(async () => {
  etcd = await startEtcd();
  dbs = await Promise.all([1, 2].map(() => startMariaDB({ accounts: [{ user: "app", password: APP_PW }] })));
  const cp = await startControlPlane({ etcd, args: ["--no-monitor"] });
  client = new Etcd3({ hosts: etcd.endpoint });
  // a value present before the data plane starts: read by its first get
  await client.put(keys.backendHealth("main", "db2")).value(health("db2", BackendHealth_State.UP, BackendHealth_Role.REPLICA));
  port = await freePort();
  sparePort = await freePort();
  const deadPort = await freePort(); // nothing listens there
  const { version } = await applyPolicy(cp, {
    clusters: [
      {
        name: "main",
        backends: [
          { name: "db1", address: dbs[0]!.address, expectedRole: "ROLE_PRIMARY" },
          { name: "db2", address: dbs[1]!.address },
        ],
      },
      {
        name: "spare",
        backends: [
          { name: "db1", address: dbs[0]!.address },
          { name: "dead", address: `127.0.0.1:${deadPort}` },
        ],
      },
    ],
    listeners: [
      { name: "l", bindAddress: "127.0.0.1", port, cluster: "main" },
      { name: "spare", bindAddress: "127.0.0.1", port: sparePort, cluster: "spare" },
    ],
    users: [{ name: "app", passwordHash: nativePasswordHash(PW), backendCredentials: { user: "app", secretRef: "env:APP_PW" } }],
  });
  metricsPort = await freePort();
  dp = await startDataPlane({ etcd, workers: 2, env: { APP_PW }, waitForConfig: version, args: ["--metrics-listen", `127.0.0.1:${metricsPort}`] });
}, 120_000);

afterAll(async () => {
  client?.close();
});

test("at startup every worker takes the health already in etcd and the policy's expected roles", async () => {
  await bothWorkersLog(0, "backend db2 of cluster main is now REPLICA (monitor)", Date.now());
  await bothWorkersLog(0, "backend db1 of cluster main is now PRIMARY (policy)", Date.now());
}, 20_000);

test("a role written by the monitor reaches both workers at once; a disagreement with the policy is logged, the monitor wins", async () => {
  let since = dp.mark();
  let t0 = Date.now();
  await client.put(keys.backendHealth("main", "db1")).value(health("db1", BackendHealth_State.UP, BackendHealth_Role.PRIMARY));
  const ms = await bothWorkersLog(since, "backend db1 of cluster main is now PRIMARY (monitor)", t0);
  console.log(`health put → both workers logged the role change in ${ms} ms`);

  since = dp.mark();
  t0 = Date.now();
  await client
    .put(keys.backendHealth("main", "db1"))
    .value(health("db1", BackendHealth_State.UP, BackendHealth_Role.REPLICA, { roleDisagreement: "policy expects PRIMARY, the server is REPLICA: it is read_only" }));
  await bothWorkersLog(since, "backend db1 of cluster main is now REPLICA (monitor)", t0);
  await bothWorkersLog(
    since,
    "backend db1 of cluster main: the monitor reports REPLICA, the policy expects PRIMARY; routing follows the monitor (fix the server or the policy's expectedRole)",
    t0,
  );
  // an unchanged value rewritten (the monitor refreshes checked_at every 5 s) logs nothing new
  const quiet = dp.mark();
  await client.put(keys.backendHealth("main", "db1")).value(health("db1", BackendHealth_State.UP, BackendHealth_Role.PRIMARY));
  await bothWorkersLog(quiet, "backend db1 of cluster main is now PRIMARY (monitor)", Date.now());
  await client.put(keys.backendHealth("main", "db1")).value(health("db1", BackendHealth_State.UP, BackendHealth_Role.PRIMARY));
  await new Promise((r) => setTimeout(r, 500));
  expect(dp.logs.slice(quiet).filter((r) => String(r.msg).startsWith("backend db1 of cluster main")).length).toBe(2);
}, 20_000);

test("failover seen in etcd: new connections go to the new primary at once; back again when the roles return", async () => {
  const [p1, p2] = [dbs[0]!.port, dbs[1]!.port];
  expect(await landings(4)).toContain(p1); // db1 is the primary

  // the monitor's view of a failover: db1 DOWN, db2 promoted
  const since = dp.mark();
  const t0 = Date.now();
  await client.put(keys.backendHealth("main", "db1")).value(health("db1", BackendHealth_State.DOWN, BackendHealth_Role.PRIMARY, { lastError: "connect ECONNREFUSED (test)" }));
  await client.put(keys.backendHealth("main", "db2")).value(health("db2", BackendHealth_State.UP, BackendHealth_Role.PRIMARY));
  await bothWorkersLog(since, "backend db1 of cluster main is DOWN (monitor): connect ECONNREFUSED (test); no new statements go to it", t0);
  const ms = await bothWorkersLog(since, "backend db2 of cluster main is now PRIMARY (monitor)", t0);
  console.log(`failover written to etcd → both workers act on it in ${ms} ms`);
  // db1's server still runs: only the health says it is down
  expect(await landings(8)).toEqual(Array(8).fill(p2));
  expect(await backendUpGauge("db1")).toBe(0);
  expect(await backendUpGauge("db2")).toBe(1);

  const back = dp.mark();
  await client.put(keys.backendHealth("main", "db2")).value(health("db2", BackendHealth_State.UP, BackendHealth_Role.REPLICA));
  await client.put(keys.backendHealth("main", "db1")).value(health("db1", BackendHealth_State.UP, BackendHealth_Role.PRIMARY));
  await bothWorkersLog(back, "backend db1 of cluster main is UP (monitor)", Date.now());
  await bothWorkersLog(back, "backend db2 of cluster main is now REPLICA (monitor)", Date.now());
  expect(await landings(4)).toContain(p1);
  expect(await backendUpGauge("db1")).toBe(1);
}, 60_000);

test("a deleted key (the monitor's lease expired) is seen by both workers: back to the policy's role", async () => {
  const lease = client.lease(5, { autoKeepAlive: false });
  await lease.put(keys.backendHealth("main", "db1")).value(health("db1", BackendHealth_State.UP, BackendHealth_Role.REPLICA));
  await bothWorkersLog(0, "backend db1 of cluster main is now REPLICA (monitor)", Date.now());
  const since = dp.mark();
  const t0 = Date.now();
  await lease.revoke();
  await bothWorkersLog(
    since,
    "backend db1 of cluster main has no health report any more (monitor stopped, lease expired, or backend removed); routing on the policy's roles",
    t0,
  );
  await bothWorkersLog(since, "backend db1 of cluster main is now PRIMARY (policy)", t0);
}, 20_000);

test("a replacement worker gets every known value from the supervisor at its start", async () => {
  // the pid of worker 1, from its own log lines (a process this test's data plane forked)
  const rec = [...dp.logs].reverse().find((r) => r.role === "worker" && Number(r.worker) === 1 && typeof r.pid === "number");
  expect(rec).toBeDefined();
  const since = dp.mark();
  process.kill(Number(rec!.pid), "SIGKILL");
  await dp.waitForLog((r) => r.role === "worker" && Number(r.worker) === 1 && r.msg === "backend db2 of cluster main is now REPLICA (monitor)", 20_000, since);
}, 30_000);

test("after etcd was down, the data plane re-reads the health prefix and catches up", async () => {
  const lost = dp.mark();
  await etcd.stop();
  await etcd.restart();
  // changes made after the restart, maybe before the data plane's new session: the re-read or the new watch brings them
  // our own client may need a few tries while it reconnects (bounded)
  const value = health("db2", BackendHealth_State.DOWN, BackendHealth_Role.REPLICA, { lastError: "after the outage" });
  for (let i = 0; ; i++) {
    try {
      await client.put(keys.backendHealth("main", "db2")).value(value);
      break;
    } catch (err) {
      if (i >= 20) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  await dp.waitForLog(
    (r) => r.role === "worker" && r.msg === "backend db2 of cluster main is DOWN (monitor): after the outage; no new statements go to it" && workersThatLogged(lost, String(r.msg)).length >= 2,
    20_000,
    lost,
  );
  // the supervisor noticed the broken watch (it then re-reads the prefix; the change above arrived either way)
  const supervisorLines = dp.logs.slice(lost).filter((r) => r.role === "supervisor" && /etcd watch of backend health|backend health from etcd/.test(String(r.msg)));
  expect(supervisorLines.map((r) => r.msg)).toEqual(expect.arrayContaining(["lost the etcd watch of backend health; keeping the last known health and re-reading it"]));
}, 60_000);

test("a worker ejects a backend it cannot reach after 2 failed logins, and retries it once after the backoff (doubled when it fails again)", async () => {
  const since = dp.mark();
  const ejected = (ms: number, n: number) => `backend dead of cluster spare ejected on this data plane for ${ms} ms after ${n} consecutive connect failures; one connection is tried then`;
  const run = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const c = await connect({ port: sparePort, user: "app", password: PW }); // db1 always logs in
      await c.end();
    }
  };
  await run(10);
  await dp.waitForLog((r) => r.msg === ejected(1000, 2), 5000, since);
  const ejectedAt = Date.now();
  // while ejected, that worker tries db1 first: no more failed logins to dead from it within the second
  const mid = dp.mark();
  await run(6);
  const workerOf = (r: LogRecord) => Number(r.worker);
  const ejectedWorkers = new Set(dp.logs.slice(since).filter((r) => r.msg === ejected(1000, 2)).map(workerOf));
  if (Date.now() - ejectedAt < 900) {
    const tried = dp.logs.slice(mid).filter((r) => r.msg === "backend login failed, trying the next one" && r.backend === "dead" && ejectedWorkers.has(workerOf(r)));
    expect(tried).toEqual([]);
  }
  // after the backoff the half-open trial fails: ejected again, twice as long
  await new Promise((r) => setTimeout(r, 1100));
  await run(10);
  await dp.waitForLog((r) => r.msg === ejected(2000, 3), 5000, since);
}, 60_000);
