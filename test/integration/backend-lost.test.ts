// Issue 3, point 5: a backend connection lost mid-query gives that client an
// error or a closed connection as MySQL would, and no other client notices.
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  sleep,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  waitFor,
  type MariaDBServer,
} from "../helpers";
import type * as mysql from "mysql2/promise";
import { fixtureListenerFromEnv as fixtureListener } from "../helpers/gateway-fixture";

/**
 * Through SPLIT listeners (backend-lost-split.test.ts): the routed engine runs a
 * statement on a pooled connection; when that connection is lost mid-statement
 * outside a transaction the client gets ERR 1105 (the statement may or may not
 * have run) and keeps its session, as issue 3 allows ("an error or a closed
 * connection"); with a transaction or session state on it, the session closes.
 */
const ROUTED = (process.env.MYSQLGW_FIXTURE_LISTENER ?? "").includes("SPLIT");
const ROUTED_LOST = {
  code: "ER_UNKNOWN_ERROR",
  errno: 1105,
  sqlState: "HY000",
  fatal: undefined,
  message: "Lost connection to the backend during the query; mysqlgw closed this session's connection to it (the statement may or may not have run; check before retrying)",
};

const PASSWORD = "backend-lost-pw";
let db1: MariaDBServer;
let db2: MariaDBServer;
let port1: number;
let port2: number;

beforeAll(async () => {
  const account = { user: "app", password: PASSWORD };
  const [etcd, a, b] = await Promise.all([startEtcd(), startMariaDB({ accounts: [account], name: "db1" }), startMariaDB({ accounts: [account], name: "db2" })]);
  [db1, db2] = [a, b];
  const cp = await startControlPlane({ etcd });
  [port1, port2] = [await freePort(), await freePort()];
  await applyPolicy(cp, {
    clusters: [
      { name: "one", backends: [{ name: "db1", address: db1.address }] },
      { name: "two", backends: [{ name: "db2", address: db2.address }] },
    ],
    listeners: [
      { name: "one", bindAddress: "127.0.0.1", port: port1, cluster: "one", ...fixtureListener() },
      { name: "two", bindAddress: "127.0.0.1", port: port2, cluster: "two", ...fixtureListener() },
    ],
    users: [{ name: "app", passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: "app", secretRef: "env:MGW_LOST_PW" } }],
  }, "test");
  await startDataPlane({ etcd, workers: 1, env: { MGW_LOST_PW: PASSWORD }, waitForConfig: 1 });
}, 120_000);

/** Runs `SELECT 1` every 20 ms until stopped; resolves with how many ran and the first error. */
function keepBusy(conn: mysql.Connection): { stop(): Promise<{ ok: number; error: unknown }> } {
  let running = true;
  const loop = (async () => {
    let ok = 0;
    try {
      for (let i = 0; running && i < 2000; i++) {
        const [[r]] = (await conn.query("SELECT ? + 1 AS v", [i])) as unknown as [[{ v: number }]];
        if (Number(r.v) === i + 1) ok++;
        await sleep(20);
      }
      return { ok, error: null as unknown };
    } catch (error) {
      return { ok, error };
    }
  })();
  return {
    stop: async () => {
      running = false;
      return loop;
    },
  };
}

/** The error a query of `conn` fails with when its server thread is killed from root (KILL CONNECTION). */
async function errorWhenKilled(conn: mysql.Connection, server: MariaDBServer, marker: string): Promise<Record<string, unknown>> {
  const pending = conn.query(`SELECT SLEEP(30) AS ${marker}`).then(
    () => ({ outcome: "completed" }),
    (e: { code?: string; errno?: number; sqlState?: string; fatal?: boolean; message: string }) => ({ code: e.code, errno: e.errno, sqlState: e.sqlState, fatal: e.fatal, message: e.message }),
  );
  const id = await waitFor(
    async () => {
      const rows = await server.query<{ ID: number }>(`SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%AS ${marker}' AND INFO NOT LIKE '%PROCESSLIST%'`);
      return rows.length === 1 ? Number(rows[0].ID) : null;
    },
    { timeoutMs: 5000, what: `the ${marker} query on the server` },
  );
  await server.query(`KILL CONNECTION ${id}`);
  return pending;
}

test("KILL of a backend thread mid-query: that client gets what it gets direct; another client on the same backend keeps going", async () => {
  const direct = await connect({ port: db1.port, user: "app", password: PASSWORD });
  direct.on("error", () => undefined);
  const directErr = await errorWhenKilled(direct, db1, "direct_victim");
  direct.destroy();

  const bystander = await connect({ port: port1, user: "app", password: PASSWORD });
  const victim = await connect({ port: port1, user: "app", password: PASSWORD });
  victim.on("error", () => undefined);
  const busy = keepBusy(bystander);
  const gwErr = await errorWhenKilled(victim, db1, "gw_victim");
  const victimNext = await victim.query("SELECT 'next' AS s").then(([rows]) => (rows as { s: string }[])[0].s, () => "failed");
  await sleep(300);
  const { ok, error } = await busy.stop();
  victim.destroy();

  expect(directErr).not.toEqual({ outcome: "completed" });
  // MariaDB 10.11 closes a killed connection (mysql2: PROTOCOL_CONNECTION_LOST); either way, fatal
  expect(directErr).toMatchObject({ fatal: true });
  if (ROUTED) {
    expect(gwErr).toEqual(ROUTED_LOST);
    // the session goes on, on another pooled connection
    expect(victimNext).toBe("next");
  } else {
    expect(gwErr).toEqual(directErr);
    expect(victimNext).toBe("failed");
  }
  expect(error).toBeNull();
  expect(ok).toBeGreaterThan(5);
  const [[r]] = (await bystander.query("SELECT 'still here' AS s")) as unknown as [[{ s: string }]];
  expect(r.s).toBe("still here");
  await bystander.end();
});

test("the backend server dies (SIGKILL) mid-query: its client gets a lost connection; a client of another backend on the same gateway never notices", async () => {
  const bystander = await connect({ port: port1, user: "app", password: PASSWORD });
  const victim = await connect({ port: port2, user: "app", password: PASSWORD });
  victim.on("error", () => undefined);
  const busy = keepBusy(bystander);
  const pending = victim.query("SELECT SLEEP(30)").then(
    () => null,
    (e: { code?: string; fatal?: boolean; message: string }) => (ROUTED ? { code: e.code, fatal: e.fatal, message: e.message } : { code: e.code, fatal: e.fatal }),
  );
  await sleep(300);
  const t0 = Date.now();
  await db2.kill();
  const err = await pending;
  expect(Date.now() - t0).toBeLessThan(5000);
  // as a client connected straight to a server that dies: the connection is gone (CR_SERVER_LOST)
  if (ROUTED) expect(err).toEqual({ code: ROUTED_LOST.code, fatal: undefined, message: ROUTED_LOST.message });
  else expect(err).toEqual({ code: "PROTOCOL_CONNECTION_LOST", fatal: true });
  victim.destroy();
  // a new client of the dead cluster is refused with an error, promptly
  await expect(connect({ port: port2, user: "app", password: PASSWORD })).rejects.toMatchObject({ sqlState: expect.any(String) });
  await sleep(300);
  const { ok, error } = await busy.stop();
  expect(error).toBeNull();
  expect(ok).toBeGreaterThan(5);
  await bystander.end();
  // the server comes back: new connections through the gateway work again
  await db2.restart();
  const again = await connect({ port: port2, user: "app", password: PASSWORD });
  const [[r]] = (await again.query("SELECT 41 + 1 AS v")) as unknown as [[{ v: number }]];
  expect(Number(r.v)).toBe(42);
  await again.end();
});

test("lost inside a transaction: the query fails and the connection is gone, direct and through the gateway", async () => {
  await db1.query("CREATE DATABASE IF NOT EXISTS lost");
  await db1.query("CREATE TABLE IF NOT EXISTS lost.t (id INT PRIMARY KEY)");
  const outcome = async (port: number, marker: string): Promise<{ query: unknown; next: string }> => {
    const c = await connect({ port, user: "app", password: PASSWORD });
    c.on("error", () => undefined);
    await c.query("BEGIN");
    await c.query(`INSERT INTO lost.t VALUES (${port})`);
    const query = await errorWhenKilled(c, db1, marker);
    const next = await c.query("SELECT 1").then(() => "worked", () => "failed");
    c.destroy();
    return { query, next };
  };
  const direct = await outcome(db1.port, "tx_direct");
  const gw = await outcome(port1, "tx_gw");
  expect(direct).toMatchObject({ query: { fatal: true }, next: "failed" });
  // routed too: the pooled connection held the transaction, so the session ends as a direct one does
  expect(gw).toEqual(direct);
  // the rolled-back inserts are not there
  expect(await db1.query("SELECT id FROM lost.t")).toEqual([]);
});
