// Issue 6, point 4: per-user permissions (allowed schemas, read-only users,
// allowed statement kinds) and the SQL firewall (a rule refusing UPDATE/DELETE
// without WHERE; an allowlist of digests, learning then enforcing), through a
// real data plane in front of real MariaDB, with a real client.
import type * as mysql from "mysql2/promise";
import { Buffer } from "node:buffer";
import { digestHash } from "../../data-plane/src/routing/digest";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type MariaDBServer,
} from "../helpers";

let etcd: EtcdServer;
let db: MariaDBServer;
let cp: ControlPlane;
let dp: DataPlane;
let port = 0;
const PW = "perm-pw-6";
const APP_PW = "perm-backend-6";
const open: mysql.Connection[] = [];

const ALLOWED_SQL = "SELECT name FROM shop.items WHERE id = 1";

function policy(firewallMode: "MODE_LEARN" | "MODE_ENFORCE"): unknown {
  const user = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    passwordHash: nativePasswordHash(PW),
    backendCredentials: { user: "app", secretRef: "env:APP_PW" },
    ...extra,
  });
  return {
    clusters: [{ name: "main", backends: [{ name: "db", address: db.address }] }],
    listeners: [{ name: "main", bindAddress: "127.0.0.1", port, cluster: "main" }],
    users: [
      user("writer"),
      user("reader", { readOnly: true, allowedSchemas: ["shop"] }),
      user("limited", { allowedStatementKinds: ["SELECT", "INSERT"] }),
      user("guarded"),
    ],
    rules: [{ name: "no-unbounded-writes", match: { withoutWhere: true }, deny: { message: "UPDATE/DELETE without WHERE is refused by policy; add a WHERE clause" } }],
    gateway: { firewall: { mode: firewallMode, users: ["guarded"], allowedDigests: [digestHash(Buffer.from(ALLOWED_SQL))] } },
  };
}

beforeAll(async () => {
  [etcd, db] = await Promise.all([startEtcd(), startMariaDB({ accounts: [{ user: "app", password: APP_PW }] })]);
  await db.query("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20)); INSERT INTO shop.items VALUES (1, 'apple'), (2, 'pear'); CREATE DATABASE other");
  cp = await startControlPlane({ etcd });
  port = await freePort();
  const { version } = await applyPolicy(cp, policy("MODE_ENFORCE"));
  dp = await startDataPlane({ etcd, workers: 1, env: { APP_PW } });
  await dp.waitForConfig(version);
}, 120_000);

afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((c) => c.end()));
});

afterAll(async () => {
  await dp?.stop();
  await cp?.stop();
  await db?.stop();
  await etcd?.stop();
});

async function as(user: string, database: string | undefined = "shop"): Promise<mysql.Connection> {
  const c = await connect({ port, user, password: PW, database, multipleStatements: true });
  open.push(c);
  return c;
}

test("a read-only user reads, and is refused writes, DDL, files and batches with 1142; its schemas are checked with 1044", async () => {
  const r = await as("reader");
  const [rows] = await r.query<mysql.RowDataPacket[]>("SELECT name FROM items ORDER BY id");
  expect(rows.map((x) => x.name)).toEqual(["apple", "pear"]);
  await r.query("SET time_zone = '+00:00'");
  await r.query("BEGIN");
  await r.query("COMMIT");
  await expect(r.query("INSERT INTO items VALUES (3, 'plum')")).rejects.toMatchObject({ errno: 1142, sqlState: "42000", sqlMessage: "INSERT command denied to user 'reader'@'127.0.0.1' (mysqlgw: the user is read-only)" });
  await expect(r.query("DROP TABLE items")).rejects.toMatchObject({ errno: 1142 });
  await expect(r.query("SELECT * FROM items INTO OUTFILE '/tmp/x'")).rejects.toMatchObject({ errno: 1142 });
  await expect(r.query("SELECT 1; DELETE FROM items WHERE id = 1")).rejects.toMatchObject({ errno: 1142 });
  await expect(r.execute("UPDATE items SET name = ? WHERE id = 1", ["x"])).rejects.toMatchObject({ errno: 1142 });
  await expect(r.query("USE other")).rejects.toMatchObject({ errno: 1044, sqlState: "42000", sqlMessage: "Access denied for user 'reader'@'127.0.0.1' to database 'other'" });
  await expect(as("reader", "other")).rejects.toMatchObject({ errno: 1044 });
  const [n] = await db.query<{ n: number }>("SELECT COUNT(*) AS n FROM shop.items");
  expect(Number(n.n)).toBe(2);
});

test("allowed statement kinds: SELECT and INSERT run, UPDATE and DELETE are refused", async () => {
  const l = await as("limited");
  await l.query("INSERT INTO items VALUES (10, 'fig')");
  const [rows] = await l.query<mysql.RowDataPacket[]>("SELECT name FROM items WHERE id = 10");
  expect(rows).toEqual([{ name: "fig" }]);
  await expect(l.query("UPDATE items SET name = 'x' WHERE id = 10")).rejects.toMatchObject({ errno: 1142, sqlMessage: expect.stringContaining("UPDATE command denied") });
  await db.query("DELETE FROM shop.items WHERE id = 10");
});

test("a rule refuses UPDATE/DELETE without WHERE for everyone; with a WHERE they run", async () => {
  const w = await as("writer");
  await expect(w.query("DELETE FROM items")).rejects.toMatchObject({ errno: 1142, sqlMessage: "UPDATE/DELETE without WHERE is refused by policy; add a WHERE clause" });
  await expect(w.query("UPDATE items SET name = 'x'")).rejects.toMatchObject({ errno: 1142 });
  const [res] = await w.query<mysql.ResultSetHeader>("UPDATE items SET name = 'apple' WHERE id = 1");
  expect(res.affectedRows).toBe(1);
  const [n] = await db.query<{ n: number }>("SELECT COUNT(*) AS n FROM shop.items");
  expect(Number(n.n)).toBe(2);
});

test("firewall allowlist: enforcing, only approved digests run (any literal); learning, everything runs and is logged", async () => {
  const g = await as("guarded");
  const [ok] = await g.query<mysql.RowDataPacket[]>("SELECT name FROM shop.items WHERE id = 2");
  expect(ok).toEqual([{ name: "pear" }]);
  await expect(g.query("SELECT * FROM shop.items")).rejects.toMatchObject({ errno: 1142, sqlMessage: expect.stringContaining("not on the allowlist") });
  // the firewall covers only its users
  const w = await as("writer");
  const [all] = await w.query<mysql.RowDataPacket[]>("SELECT * FROM shop.items");
  expect(all.length).toBe(2);
  // learning: the same statement runs, and its digest is logged to approve
  const { version } = await applyPolicy(cp, policy("MODE_LEARN"));
  await dp.waitForConfig(version);
  const g2 = await as("guarded");
  const [learnt] = await g2.query<mysql.RowDataPacket[]>("SELECT * FROM shop.items");
  expect(learnt.length).toBe(2);
  const hash = digestHash(Buffer.from("SELECT * FROM shop.items"));
  await dp.waitForLog((r) => r.msg === "firewall (learning): statement not on the allowlist" && r.digest === hash, 5000);
});
