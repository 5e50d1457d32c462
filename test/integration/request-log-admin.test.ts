// Issue 7, points 3 and 5: the request log (--request-log FILE, slow-only),
// query digests per (digest, user, schema) and the admin SQL port
// (--admin-listen) of a real data plane (supervisor + 2 workers) in front of a
// real MariaDB through a SPLIT listener; read with the mariadb CLI and mysql2.
import * as fs from "node:fs";
import * as path from "node:path";
import * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  runCli,
  nativePasswordHash,
  runMariadbCli,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  tempDir,
  waitFor,
  type ControlPlane,
  type DataPlane,
  type MariaDBServer,
} from "../helpers";

const APP_PW = "obs-app-pw-1";
const PW = "obs-gw-pw-1";
const ADMIN_PW = "obs-admin-pw-1";
let db: MariaDBServer;
let cp: ControlPlane;
let dp: DataPlane;
let slowDp: DataPlane;
let splitPort: number;
let version: string;
let etcdUrl: Awaited<ReturnType<typeof startEtcd>>;
let adminPort: number;
let logFile: string;
let slowLogFile: string;

type Line = Record<string, unknown>;

function readLines(file: string): Line[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Line);
}

async function adminPortOf(p: DataPlane): Promise<number> {
  const rec = await p.waitForLog((r) => r.msg === "admin SQL port listening", 10_000);
  return Number(String(rec.admin).split(":").pop());
}

beforeAll(async () => {
  [etcdUrl, db] = await Promise.all([startEtcd(), startMariaDB({ accounts: [{ user: "app", password: APP_PW }] })]);
  await db.query("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, customer VARCHAR(64), total INT); GRANT ALL ON shop.* TO 'app'@'%'");
  cp = await startControlPlane({ etcd: etcdUrl });
  splitPort = await freePort();
  ({ version } = await applyPolicy(cp, {
    clusters: [{ name: "main", backends: [{ name: "db", address: db.address }] }],
    listeners: [
      { name: "split", bindAddress: "127.0.0.1", port: splitPort, cluster: "main", role: "LISTENER_ROLE_SPLIT" },
    ],
    users: [{ name: "app", passwordHash: nativePasswordHash(PW), backendCredentials: { user: "app", secretRef: "env:APP_PW" } }],
  }));
  const dir = tempDir("request-log");
  logFile = path.join(dir, "requests.log");
  slowLogFile = path.join(dir, "slow.log");
  // logs everything (2 workers, one file); the last test replaces it with a slow-only one
  dp = await startDataPlane({
    etcd: etcdUrl,
    workers: 2,
    env: { APP_PW },
    args: ["--request-log", logFile, "--admin-listen", "127.0.0.1:0", "--admin-password-hash", nativePasswordHash(ADMIN_PW), "--id", "dp-all", "--digests-publish-interval", "500"],
    waitForConfig: version,
  });
  adminPort = await adminPortOf(dp);
}, 120_000);

afterAll(async () => {
  await Promise.all([dp?.stop(), slowDp?.stop()]);
});

function admin(password = ADMIN_PW, user = "admin", port = adminPort): Promise<mysql.Connection> {
  return mysql.createConnection({ host: "127.0.0.1", port, user, password, connectTimeout: 5000 });
}

test("statements with literals: the request log has one line each, with the digest and no literals; digests count them per user and schema", async () => {
  // several connections, so both workers serve some
  for (let c = 0; c < 4; c++) {
    const conn = await connect({ port: splitPort, user: "app", password: PW, database: "shop" });
    for (let i = 0; i < 5; i++) {
      const id = c * 100 + i;
      await conn.query(`INSERT INTO orders (id, customer, total) VALUES (${id}, 'secret-customer-${id}', ${7770000 + id})`);
      const [rows] = await conn.query(`SELECT id, customer FROM orders WHERE id = ${id} AND customer = 'secret-customer-${id}'`);
      expect(rows).toHaveLength(1);
    }
    await conn.query("SELECT * FROM no_such_table WHERE id = 424242").catch((e: { errno: number }) => expect(e.errno).toBe(1146));
    await conn.end();
  }

  // lines are written asynchronously: wait for the 4 session closes
  await waitFor(() => readLines(logFile).filter((l) => l.event === "session_close").length === 4, { timeoutMs: 10_000, what: "4 session_close lines" });
  const lines = readLines(logFile);
  const statements = lines.filter((l) => l.event === "statement");
  const inserts = statements.filter((l) => String(l.digest_text).startsWith("INSERT"));
  const selects = statements.filter((l) => String(l.digest_text).startsWith("SELECT id"));
  expect(inserts).toHaveLength(20);
  expect(selects).toHaveLength(20);
  expect(new Set(inserts.map((l) => l.digest)).size).toBe(1);
  expect(inserts[0]).toMatchObject({
    user: "app",
    listener: "split",
    schema: "shop",
    kind: "INSERT",
    cluster: "main",
    target: "primary",
    backend: "db",
    digest_text: "INSERT INTO orders (id, customer, total) VALUES (?, ?, ?)",
    rows: 0,
    errno: 0,
    client: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
  });
  expect(selects[0]).toMatchObject({ digest_text: "SELECT id, customer FROM orders WHERE id = ? AND customer = ?", rows: 1 });
  for (const l of statements) {
    expect(l.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(typeof l.duration_ms).toBe("number");
    expect(l.bytes as number).toBeGreaterThan(0);
    expect("sql" in l).toBe(false);
  }
  expect(statements.filter((l) => l.errno === 1146)).toHaveLength(4);
  const raw = fs.readFileSync(logFile, "utf8");
  expect(raw).not.toContain("secret-customer");
  // numeric literals: no string field carries them (times and numbers such as durations may hold any digits)
  for (const l of lines) {
    for (const [k, v] of Object.entries(l)) if (typeof v === "string" && k !== "time") expect(v).not.toMatch(/777|424242/);
  }
  // session events: open, auth ok, close (quit)
  expect(lines.filter((l) => l.event === "session_open")).toHaveLength(4);
  expect(lines.filter((l) => l.event === "auth_ok").map((l) => l.user)).toEqual(["app", "app", "app", "app"]);
  expect(lines.filter((l) => l.event === "session_close").map((l) => l.reason)).toEqual(["quit", "quit", "quit", "quit"]);

  // the admin port (mysql2): both workers' digest tables, merged
  const a = await admin();
  try {
    const [rows] = await a.query<mysql.RowDataPacket[]>("SELECT digest, user, `schema`, digest_text, count, errors, rows, total_ms, p99_ms FROM digests WHERE user = 'app' ORDER BY count DESC, digest_text");
    const byText = new Map(rows.map((r) => [String(r.digest_text), r]));
    expect(byText.get("INSERT INTO orders (id, customer, total) VALUES (?, ?, ?)")).toMatchObject({ user: "app", schema: "shop", count: "20", errors: "0", rows: "0", digest: inserts[0].digest });
    expect(byText.get("SELECT id, customer FROM orders WHERE id = ? AND customer = ?")).toMatchObject({ count: "20", rows: "20" });
    expect(byText.get("SELECT * FROM no_such_table WHERE id = ?")).toMatchObject({ count: "4", errors: "4" });
    for (const r of rows) expect(Number(r.p99_ms)).toBeGreaterThanOrEqual(0);
    // connections: this admin session is not one; a client session shows while open
    const conn = await connect({ port: splitPort, user: "app", password: PW, database: "shop" });
    await conn.query("SELECT 1");
    const [open] = await a.query<mysql.RowDataPacket[]>("SELECT worker, user, listener, state, statements FROM connections WHERE listener = 'split'");
    expect(open).toEqual([expect.objectContaining({ user: "app", listener: "split", state: "authenticated", statements: "1" })]);
    await conn.end();
    const [backends] = await a.query<mysql.RowDataPacket[]>("SELECT DISTINCT_IS_NOT_SUPPORTED FROM backends").catch((e: { errno: number }) => [[{ errno: e.errno }]] as never);
    expect(backends).toEqual([{ errno: 1054 }]);
    const [b] = await a.query<mysql.RowDataPacket[]>("SELECT worker, cluster, backend, up FROM backends ORDER BY worker");
    expect(b).toEqual([
      { worker: "0", cluster: "main", backend: "db", up: "1" },
      { worker: "1", cluster: "main", backend: "db", up: "1" },
    ]);
    const [cfg] = await a.query<mysql.RowDataPacket[]>("SELECT data_plane, version, source, workers FROM config");
    expect(cfg).toEqual([{ data_plane: "dp-all", version: expect.stringMatching(/^\d+$/), source: "etcd", workers: "2" }]);
    const [ls] = await a.query<mysql.RowDataPacket[]>("SELECT name, port, role, listening FROM listeners ORDER BY name");
    expect(ls).toEqual([
      { name: "split", port: String(splitPort), role: "SPLIT", listening: "1" },
    ]);
    // read-only: anything else is a clear error
    const err = await a.query("DELETE FROM digests").catch((e: { errno: number; message: string }) => e);
    expect(err).toMatchObject({ errno: 1227, message: expect.stringContaining("read-only") });
    const err2 = await a.query("SELECT * FROM mysql.user").catch((e: { errno: number; message: string }) => e);
    expect(err2).toMatchObject({ errno: 1146, message: expect.stringContaining("digests") });
  } finally {
    await a.end();
  }

  // the mariadb CLI
  const cli = await runMariadbCli({ port: adminPort, user: "admin", password: ADMIN_PW, sql: "SELECT digest_text, count FROM digests ORDER BY total_ms DESC LIMIT 5" });
  expect(cli.stderr).toBe("");
  expect(cli.code).toBe(0);
  const out = cli.stdout.trim().split("\n");
  expect(out[0]).toBe("digest_text\tcount");
  expect(out).toContain("INSERT INTO orders (id, customer, total) VALUES (?, ?, ?)\t20");
  expect(out.length).toBe(5); // the header and the 4 digests (INSERT, 2 SELECTs, SELECT ?)
  const tables = await runMariadbCli({ port: adminPort, user: "admin", password: ADMIN_PW, sql: "SHOW TABLES", args: ["--skip-column-names"] });
  expect(tables.stdout.trim().split("\n")).toEqual(["backends", "config", "connections", "digests", "listeners"]);
  const bad = await runMariadbCli({ port: adminPort, user: "admin", password: ADMIN_PW, sql: "UPDATE digests SET count = 0" });
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toContain("ERROR 1227");
});

test("wrong admin password or user → 1045; the admin port is not the gateway's users", async () => {
  for (const [user, pw] of [
    ["admin", "wrong"],
    ["app", PW],
    ["admin", ""],
  ]) {
    const e = await admin(pw, user).then(
      async (c) => {
        await c.end();
        return { errno: 0 };
      },
      (err: { errno: number; message: string }) => err,
    );
    expect(e).toMatchObject({ errno: 1045 });
  }
  const cli = await runMariadbCli({ port: adminPort, user: "admin", password: "nope", sql: "SELECT 1" });
  expect(cli.stderr).toContain("ERROR 1045");
});

test("the control plane merges the data planes' published digests (GET /v1/digests); mysqlgw top --once --json and the table", async () => {
  type Answer = { dataPlanes: { id: string; workers: number }[]; digests: { digestText: string; user: string; schema: string; count: number; errors: number; rows: number; dataPlanes: number; p99Ms: number }[] };
  const insert = "INSERT INTO orders (id, customer, total) VALUES (?, ?, ?)";
  // published every 500 ms under the data plane's lease
  const answer = await waitFor(
    async () => {
      const res = await fetch(`${cp.url}/v1/digests?limit=10`);
      const a = (await res.json()) as Answer;
      return res.status === 200 && a.digests.some((d) => d.digestText === insert && d.count === 20) ? a : null;
    },
    { timeoutMs: 10_000, what: "the INSERT digest in GET /v1/digests" },
  );
  expect(answer.dataPlanes).toEqual([expect.objectContaining({ id: "dp-all", workers: 2 })]);
  const byText = new Map(answer.digests.map((d) => [d.digestText, d]));
  expect(byText.get(insert)).toMatchObject({ user: "app", schema: "shop", count: 20, errors: 0, rows: 0, dataPlanes: 1 });
  expect(byText.get("SELECT id, customer FROM orders WHERE id = ? AND customer = ?")).toMatchObject({ count: 20, rows: 20 });
  expect(byText.get("SELECT * FROM no_such_table WHERE id = ?")).toMatchObject({ count: 4, errors: 4 });
  const limited = (await (await fetch(`${cp.url}/v1/digests?limit=1`)).json()) as Answer;
  expect(limited.digests).toHaveLength(1);
  const bad = await fetch(`${cp.url}/v1/digests?limit=0`);
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { message: string }).message).toContain("limit");

  const json = await runCli(cp.url, ["top", "--once", "--json", "--limit", "10"]);
  expect(json.stderr).toBe("");
  expect(json.code).toBe(0);
  const top = JSON.parse(json.stdout) as Answer;
  expect(top.digests.find((d) => d.digestText === insert)).toMatchObject({ count: 20, user: "app" });
  const table = await runCli(cp.url, ["top", "--once", "--user", "app"]);
  expect(table.code).toBe(0);
  const lines = table.stdout.trim().split("\n");
  expect(lines[0]).toMatch(/^mysqlgw top — \d\d:\d\d:\d\d UTC — 1 data plane: dp-all$/);
  expect(lines[2]).toMatch(/^TOTAL_MS\s+COUNT/);
  expect(lines.some((l) => l.includes(insert) && /\s20\s/.test(l))).toBe(true);
});

test("slow-only request log: statements under the threshold are left out, slow ones and errors kept (--workers 0, password from MYSQLGW_ADMIN_PASSWORD)", async () => {
  await dp.stop();
  slowDp = await startDataPlane({
    etcd: etcdUrl,
    workers: 0,
    env: { APP_PW, MYSQLGW_ADMIN_PASSWORD: ADMIN_PW },
    args: ["--request-log", slowLogFile, "--request-log-slow", "200", "--admin-listen", "127.0.0.1:0", "--id", "dp-slow"],
    waitForConfig: version,
  });
  const conn = await connect({ port: splitPort, user: "app", password: PW, database: "shop" });
  for (let i = 0; i < 5; i++) await conn.query(`SELECT total FROM orders WHERE id = ${i}`);
  await conn.query("SELECT SLEEP(0.3), 'slow-literal-x'");
  await conn.query("SELECT nope FROM orders WHERE id = 99").catch(() => undefined);
  await conn.end();
  await waitFor(() => readLines(slowLogFile).some((l) => l.event === "session_close"), { timeoutMs: 10_000, what: "session_close in the slow log" });
  const statements = readLines(slowLogFile).filter((l) => l.event === "statement");
  expect(statements.map((l) => [l.digest_text, l.errno])).toEqual([
    ["SELECT SLEEP (?), ?", 0],
    ["SELECT nope FROM orders WHERE id = ?", 1054],
  ]);
  expect(statements[0].duration_ms as number).toBeGreaterThanOrEqual(200);
  expect(fs.readFileSync(slowLogFile, "utf8")).not.toContain("slow-literal-x");
  // its admin port (one process, no IPC) still counts every statement
  const port = await adminPortOf(slowDp);
  const a = await admin(ADMIN_PW, "admin", port);
  const [rows] = await a.query<mysql.RowDataPacket[]>("SELECT count FROM digests WHERE digest_text = 'SELECT total FROM orders WHERE id = ?'");
  await a.end();
  expect(rows).toEqual([{ count: "5" }]);
});
