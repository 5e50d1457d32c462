// Issue 4, point 7: 2,000 client connections through ONE multiplexed SPLIT
// listener over a real primary and two GTID replicas, sharing at most 48 backend
// connections (16 per server), running a mixed workload whose every result is
// checked per client: its own row inserted, read back from the replicas, updated,
// updated again in a short transaction read on the primary, a second insert
// counted per client on the primary, tracked settings (time_zone) carried to
// whichever connection runs a read and never leaking to other clients, and user
// variables (a pin) read back. The backend connections are counted from
// information_schema.PROCESSLIST on every server while the workload runs.
import type * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  sleep,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startReplicatedCluster,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type ReplicatedCluster,
} from "../helpers";

const CLIENTS = Number(process.env.MYSQLGW_MUX_CLIENTS ?? 2000);
/** Connections opened at once while the clients log in. */
const CONNECT_BATCH = 100;
/** Per backend (one data-plane worker, so per server): 3 × 16 = 48 ≤ 50. */
const POOL_MAX = 16;
const MAX_BACKEND_CONNECTIONS = 50;
/** Every TZ_EVERY-th client sets a time zone; every VAR_EVERY-th sets a user variable (a pin). */
const TZ_EVERY = 50;
const VAR_EVERY = 250;
const USER = "muxapp";
const PASSWORD = "mux-pw-7";
/** Backend user of the one-connection pools (its own account, so the main count never sees them). */
const SMALL_POOL_USER = "muxsmall";

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane;
let port = 0;
let smallPort = 0;
const clients: mysql.Connection[] = [];

beforeAll(async () => {
  [etcd, cluster] = await Promise.all([
    startEtcd(),
    startReplicatedCluster({ replicas: 2, accounts: [{ user: SMALL_POOL_USER, password: PASSWORD }] }),
  ]);
  await cluster.primary.query(
    "CREATE DATABASE mux; CREATE TABLE mux.kv (id INT PRIMARY KEY, val INT NOT NULL, note VARCHAR(32) NOT NULL); CREATE TABLE mux.events (id INT AUTO_INCREMENT PRIMARY KEY, owner INT NOT NULL, KEY (owner))",
  );
  await cluster.waitForReplicas();
  cp = await startControlPlane({ etcd });
  port = await freePort();
  smallPort = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [
      {
        name: "mux",
        backends: [
          { name: "db1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" },
          { name: "db2", address: cluster.replicas[0].address, expectedRole: "ROLE_REPLICA" },
          { name: "db3", address: cluster.replicas[1].address, expectedRole: "ROLE_REPLICA" },
        ],
        // 2,000 sessions queue for 16 connections per server: a statement can wait
        // behind hundreds of others, so the acquire bound is well above the 2 s default.
        pool: { maxConnections: POOL_MAX, acquireTimeout: "30s" },
      },
      {
        name: "mux-small",
        backends: [
          { name: "s1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" },
          { name: "s2", address: cluster.replicas[0].address, expectedRole: "ROLE_REPLICA" },
          { name: "s3", address: cluster.replicas[1].address, expectedRole: "ROLE_REPLICA" },
        ],
        pool: { maxConnections: 1, acquireTimeout: "10s" },
      },
    ],
    listeners: [
      { name: "mux-split", bindAddress: "127.0.0.1", port, cluster: "mux", role: "LISTENER_ROLE_SPLIT" },
      { name: "mux-small", bindAddress: "127.0.0.1", port: smallPort, cluster: "mux-small", role: "LISTENER_ROLE_SPLIT" },
    ],
    users: [
      { name: USER, passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } },
      { name: "muxsmall", passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: SMALL_POOL_USER, secretRef: "env:SMALL_PW" } },
    ],
  });
  dp = await startDataPlane({ etcd, workers: 1, env: { APP_PW: cluster.app.password, SMALL_PW: PASSWORD } });
  await dp.waitForConfig(version);
}, 180_000);

afterAll(async () => {
  for (let i = 0; i < clients.length; i += 200) await Promise.allSettled(clients.slice(i, i + 200).map((c) => c.end()));
  await dp?.stop();
  await cp?.stop();
  await cluster?.stop();
  await etcd?.stop();
}, 120_000);

/**
 * Backend connections of the gateway's backend user on each server (primary
 * first): the rows of information_schema.PROCESSLIST, read through SHOW
 * PROCESSLIST (the same list without the temporary table a SELECT on
 * information_schema needs).
 */
async function backendConnections(): Promise<number[]> {
  return Promise.all(
    cluster.servers.map(async (s) => {
      const rows = await s.query<{ User: string }>("SHOW FULL PROCESSLIST");
      return rows.filter((r) => r.User === cluster.app.user).length;
    }),
  );
}

/** Samples backendConnections every `intervalMs` until stopped; keeps the peak of the total and per server. */
function startSampler(intervalMs = 50, maxSamples = 5000) {
  const peak = { total: 0, perServer: [0, 0, 0], samples: 0 };
  let running = true;
  const done = (async () => {
    while (running && peak.samples < maxSamples) {
      const now = await backendConnections();
      peak.samples++;
      peak.total = Math.max(peak.total, now.reduce((a, b) => a + b, 0));
      peak.perServer = peak.perServer.map((p, j) => Math.max(p, now[j]));
      await sleep(intervalMs);
    }
  })();
  return {
    peak,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

const key = (i: number): number => i + 1;
const firstVal = (i: number): number => i * 7;

type Row = mysql.RowDataPacket;

test(`multiplexing: ${CLIENTS} clients through one SPLIT listener share at most ${MAX_BACKEND_CONNECTIONS} backend connections, with correct results`, async () => {
  const t0 = Date.now();
  const sampler = startSampler();
  const errors: string[] = [];
  const record = (i: number, what: string, err: unknown): void => {
    errors.push(`client ${i} ${what}: ${(err as Error).message.split("\n").slice(0, 3).join(" | ")}`);
  };
  /** Runs `work` for every client at once, each failure recorded with its client and phase. */
  const phase = async (what: string, work: (c: mysql.Connection, i: number) => Promise<void>): Promise<void> => {
    await Promise.all(
      clients.map(async (c, i) => {
        try {
          await work(c, i);
        } catch (err) {
          record(i, what, err);
        }
      }),
    );
  };
  const timings: Record<string, number> = {};
  const mark = (name: string, since: number): number => {
    const now = Date.now();
    timings[name] = now - since;
    return now;
  };
  const readServers = new Set<number>();
  let t = t0;
  try {
    // 1. log in, in batches
    for (let b = 0; b < CLIENTS; b += CONNECT_BATCH) {
      const batch = await Promise.allSettled(
        Array.from({ length: Math.min(CONNECT_BATCH, CLIENTS - b) }, () => connect({ port, user: USER, password: PASSWORD, database: "mux", connectTimeout: 30_000 })),
      );
      batch.forEach((r, j) => {
        if (r.status === "fulfilled") clients.push(r.value);
        else record(b + j, "connect", r.reason);
      });
    }
    expect(errors).toEqual([]);
    expect(clients).toHaveLength(CLIENTS);
    t = mark("connect", t);

    // 2. every client inserts its own row (primary)
    await phase("insert", async (c, i) => {
      const [res] = await c.query<mysql.ResultSetHeader>("INSERT INTO kv (id, val, note) VALUES (?, ?, ?)", [key(i), firstVal(i), `client-${i}`]);
      expect(res.affectedRows).toBe(1);
    });
    await cluster.waitForReplicas(30_000);
    t = mark("insert", t);

    // 3. reads of its own row (replicas), an update, a second insert, a short transaction (primary)
    await phase("read-update-transaction", async (c, i) => {
      for (let r = 0; r < 3; r++) {
        const [rows] = await c.query<Row[]>("SELECT val, note, @@server_id AS sid FROM kv WHERE id = ?", [key(i)]);
        expect({ val: rows[0]?.val, note: rows[0]?.note }).toEqual({ val: firstVal(i), note: `client-${i}` });
        readServers.add(Number(rows[0].sid));
      }
      const [upd] = await c.query<mysql.ResultSetHeader>("UPDATE kv SET val = val + 1000 WHERE id = ?", [key(i)]);
      expect(upd.affectedRows).toBe(1);
      const [ins] = await c.query<mysql.ResultSetHeader>("INSERT INTO events (owner) VALUES (?)", [key(i)]);
      expect(ins.affectedRows).toBe(1);
      await c.query("BEGIN");
      const [tu] = await c.query<mysql.ResultSetHeader>("UPDATE kv SET val = val + 1 WHERE id = ?", [key(i)]);
      expect(tu.affectedRows).toBe(1);
      const [inTx] = await c.query<Row[]>("SELECT val, @@server_id AS sid FROM kv WHERE id = ?", [key(i)]);
      expect({ val: inTx[0]?.val, sid: Number(inTx[0]?.sid) }).toEqual({ val: firstVal(i) + 1001, sid: 1 });
      await c.query("COMMIT");
    });
    await cluster.waitForReplicas(30_000);
    t = mark("read-update-transaction", t);

    // 4. reads after the writes (replicas), with session state for some clients:
    //    a tracked time_zone (replayed wherever the read runs, never seen by others)
    //    and a user variable (pins the session to the primary until it ends)
    await phase("read-session-state", async (c, i) => {
      const tz = i % TZ_EVERY === 1 ? `+${String(1 + (i % 12)).padStart(2, "0")}:00` : null;
      if (tz !== null) await c.query(`SET time_zone = '${tz}'`);
      for (let r = 0; r < 2; r++) {
        const [rows] = await c.query<Row[]>("SELECT val, @@time_zone AS tz, @@server_id AS sid FROM kv WHERE id = ?", [key(i)]);
        expect({ val: rows[0]?.val, tz: rows[0]?.tz }).toEqual({ val: firstVal(i) + 1001, tz: tz ?? "SYSTEM" });
        expect([2, 3]).toContain(Number(rows[0].sid));
      }
      if (i % VAR_EVERY === 2) {
        await c.query("SET @x = ?", [key(i) * 3]);
        const [v] = await c.query<Row[]>("SELECT @x AS x, @@server_id AS sid");
        expect({ x: Number(v[0].x), sid: Number(v[0].sid) }).toEqual({ x: key(i) * 3, sid: 1 });
        await c.end(); // the pin ends with the session
      }
    });
    mark("read-session-state", t);
  } finally {
    await sampler.stop();
  }

  const [counts] = await cluster.primary.query<{ n: number; owners: number; bad: number }>(
    "SELECT COUNT(*) AS n, COUNT(DISTINCT owner) AS owners, (SELECT COUNT(*) FROM mux.kv WHERE val <> (id - 1) * 7 + 1001) AS bad FROM mux.events",
  );
  const ratio = CLIENTS / Math.max(1, sampler.peak.total);
  process.stdout.write(
    `multiplexing: ${CLIENTS} clients, peak backend connections ${sampler.peak.total} (per server ${JSON.stringify(sampler.peak.perServer)}, ` +
      `pool max ${POOL_MAX}, ${sampler.peak.samples} samples), ratio ${ratio.toFixed(1)} clients per backend connection; ` +
      `phases (ms) ${JSON.stringify(timings)}, total ${Date.now() - t0} ms; reads served by servers ${JSON.stringify([...readServers].sort())}\n`,
  );
  expect(errors.slice(0, 20)).toEqual([]);
  expect(errors).toHaveLength(0);
  expect({ n: Number(counts.n), owners: Number(counts.owners), bad: Number(counts.bad) }).toEqual({ n: CLIENTS, owners: CLIENTS, bad: 0 });
  expect([...readServers].sort()).toEqual([2, 3]);
  expect(sampler.peak.total).toBeLessThanOrEqual(MAX_BACKEND_CONNECTIONS);
  for (const p of sampler.peak.perServer) expect(p).toBeLessThanOrEqual(POOL_MAX);
  expect(sampler.peak.total).toBeGreaterThan(0);
}, 170_000);

test("a connection kept for a session's next statement goes back at once when another session waits for it", async () => {
  // One connection per backend. Session a writes (primary), then sends nothing; session b's
  // write right after needs that same connection. Keeping it for a's next statement is free
  // when nobody waits, but while b waits it must go back to the pool at once, not after the
  // keep-alive window (250 ms): with 2,000 sessions on 16 connections that window, paid once
  // per session at the end of its burst, costs 2,000 × 250 ms / 16 ≈ 31 s (the test above).
  const a = await connect({ port: smallPort, user: "muxsmall", password: PASSWORD, database: "mux" });
  const b = await connect({ port: smallPort, user: "muxsmall", password: PASSWORD, database: "mux" });
  try {
    const waits: number[] = [];
    for (let k = 0; k < 5; k++) {
      await sleep(300); // whatever either session kept has gone back
      await a.query("UPDATE kv SET val = val WHERE id = 0");
      const t0 = process.hrtime.bigint();
      const [res] = await b.query<mysql.ResultSetHeader>("UPDATE kv SET val = val WHERE id = 0");
      waits.push(Number(process.hrtime.bigint() - t0) / 1e6);
      expect(res.affectedRows).toBe(0);
    }
    process.stdout.write(`b's write after a's, on a pool of one connection (ms): ${waits.map((w) => w.toFixed(1)).join(", ")}\n`);
    expect(Math.min(...waits)).toBeLessThan(150);
  } finally {
    await Promise.allSettled([a.end(), b.end()]);
  }
}, 60_000);
