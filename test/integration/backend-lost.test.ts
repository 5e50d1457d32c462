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
      { name: "one", bindAddress: "127.0.0.1", port: port1, cluster: "one" },
      { name: "two", bindAddress: "127.0.0.1", port: port2, cluster: "two" },
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
    (e: { code?: string; errno?: number; sqlState?: string; fatal?: boolean }) => ({ code: e.code, errno: e.errno, sqlState: e.sqlState, fatal: e.fatal }),
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
  await sleep(300);
  const { ok, error } = await busy.stop();
  victim.destroy();

  expect(directErr).not.toEqual({ outcome: "completed" });
  // MariaDB 10.11 closes a killed connection (mysql2: PROTOCOL_CONNECTION_LOST); either way, fatal
  expect(directErr).toMatchObject({ fatal: true });
  expect(gwErr).toEqual(directErr);
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
    (e: { code?: string; fatal?: boolean }) => ({ code: e.code, fatal: e.fatal }),
  );
  await sleep(300);
  const t0 = Date.now();
  await db2.kill();
  const err = await pending;
  expect(Date.now() - t0).toBeLessThan(5000);
  // as a client connected straight to a server that dies: the connection is gone (CR_SERVER_LOST)
  expect(err).toEqual({ code: "PROTOCOL_CONNECTION_LOST", fatal: true });
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
