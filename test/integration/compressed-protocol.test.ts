// Issue 3, point 4: the compressed protocol (CLIENT_COMPRESS, zlib) toward
// clients, with real MariaDB, etcd, control plane and data plane; mysql2
// `compress: true` and the mariadb CLI's --compress.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as mariadb from "mariadb";
import type * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  runMariadbCli,
  runProcess,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  tempDir,
  type MariaDBServer,
} from "../helpers";

const PASSWORD = "compress-pw-1";
const BIG = 17 * 1024 * 1024; // over 16 MiB: several wire packets, several compressed frames

let db: MariaDBServer;
let port: number;

beforeAll(async () => {
  const [etcd, server] = await Promise.all([startEtcd(), startMariaDB({ accounts: [{ user: "app", password: PASSWORD }] })]);
  db = server;
  await db.query("CREATE DATABASE shop");
  await db.query("CREATE TABLE shop.blobs (id INT PRIMARY KEY, b LONGBLOB)");
  const cp = await startControlPlane({ etcd });
  port = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [{ name: "main", backends: [{ name: "db", address: db.address }] }],
    listeners: [{ name: "main", bindAddress: "127.0.0.1", port, cluster: "main" }],
    users: [{ name: "app", passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: "app", secretRef: "env:APP_PW" } }],
  }, "test");
    await startDataPlane({ etcd, workers: 1, env: { APP_PW: PASSWORD }, waitForConfig: version });
}, 120_000);

function gw(compress: boolean): Promise<mysql.Connection> {
  return connect({ port, user: "app", password: PASSWORD, database: "shop", extra: { compress, maxPreparedStatements: 16 } });
}

/** Bytes the client has read from its socket so far. */
function bytesRead(c: mysql.Connection): number {
  return (c as unknown as { connection: { stream: net.Socket } }).connection.stream.bytesRead;
}

describe("mysql2 with compress: true", () => {
  test("the gateway announces CLIENT_COMPRESS and queries, errors and prepared statements work", async () => {
    const greeting = await new Promise<Buffer>((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("data", (d) => {
        s.destroy();
        resolve(d);
      });
      s.once("error", reject);
    });
    const versionEnd = greeting.indexOf(0, 5);
    const capsLow = greeting.readUInt16LE(versionEnd + 1 + 4 + 8 + 1);
    expect(capsLow & 0x20).toBe(0x20);

    const c = await gw(true);
    try {
      const [[r]] = (await c.query("SELECT 1 + 1 AS two, REPEAT('ab', 100) AS s, @@version AS v")) as unknown as [[{ two: number; s: string; v: string }]];
      expect(Number(r.two)).toBe(2);
      expect(r.s).toBe("ab".repeat(100));
      await c.query("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))");
      const [ins] = await c.query("INSERT INTO t VALUES (1,'a'),(2,'b'),(3,'c')");
      expect(ins).toMatchObject({ affectedRows: 3 });
      await expect(c.query("SELECT * FROM no_such_table")).rejects.toMatchObject({ errno: 1146, sqlState: "42S02" });
      const [rows] = await c.execute("SELECT id, v FROM t WHERE id >= ? ORDER BY id", [2]);
      expect(rows).toEqual([
        { id: 2, v: "b" },
        { id: 3, v: "c" },
      ]);
      // 300 round trips: the compressed sequence ids restart with every command
      for (let i = 0; i < 300; i++) {
        const [[x]] = (await c.query("SELECT ? AS i", [i])) as unknown as [[{ i: number }]];
        if (Number(x.i) !== i) throw new Error(`round trip ${i} returned ${x.i}`);
      }
    } finally {
      await c.end();
    }
  });

  test("a 50,000-row result arrives intact and compressed", async () => {
    const sql = "SELECT seq, SHA1(seq) AS h, REPEAT('x', seq % 200) AS pad FROM seq_1_to_50000";
    const counts: number[] = [];
    for (const compress of [true, false]) {
      const c = await gw(compress);
      try {
        const before = bytesRead(c);
        const [rows] = (await c.query(sql)) as unknown as [{ seq: string | number; h: string; pad: string }[]];
        counts.push(bytesRead(c) - before);
        expect(rows).toHaveLength(50_000);
        let bad = 0;
        for (let i = 0; i < rows.length; i++) {
          const n = i + 1;
          if (Number(rows[i].seq) !== n || rows[i].h !== crypto.createHash("sha1").update(String(n)).digest("hex") || rows[i].pad.length !== n % 200) bad++;
        }
        expect(bad).toBe(0);
      } finally {
        await c.end();
      }
    }
    // compressed on the wire: well under half the plain size
    console.log(`50,000 rows through mysqlgw: ${counts[0]} bytes compressed, ${counts[1]} plain`);
    expect(counts[0]).toBeLessThan(counts[1] / 2);
  });

  test("a 17 MiB value goes up and comes back, byte for byte", async () => {
    const value = crypto.randomBytes(BIG / 2).toString("hex"); // compressible only by half: frames of both kinds
    const c = await gw(true);
    try {
      await c.query("DELETE FROM blobs");
      await c.query("INSERT INTO blobs VALUES (1, ?)", [value]);
      const [[r]] = (await c.query("SELECT LENGTH(b) AS n, SHA2(b, 256) AS h FROM blobs WHERE id = 1")) as unknown as [[{ n: number; h: string }]];
      expect(Number(r.n)).toBe(BIG);
      expect(r.h).toBe(crypto.createHash("sha256").update(value).digest("hex"));
      const [[back]] = (await c.query("SELECT b FROM blobs WHERE id = 1")) as unknown as [[{ b: Buffer }]];
      expect(back.b.length).toBe(BIG);
      expect(back.b.toString() === value).toBe(true);
      const [[rep]] = (await c.query("SELECT REPEAT('z', ?) AS s", [BIG])) as unknown as [[{ s: string }]];
      expect(rep.s.length).toBe(BIG);
      // the connection is still in step afterwards
      const [[one]] = (await c.query("SELECT 1 AS one")) as unknown as [[{ one: number }]];
      expect(Number(one.one)).toBe(1);
    } finally {
      await c.end();
    }
  }, 60_000);
});

describe("other connectors with compression on", () => {
  test("the mariadb npm connector (compress: true): queries, prepared statements, 50,000 rows, 17 MiB", async () => {
    const conn = await mariadb.createConnection({ host: "127.0.0.1", port, user: "app", password: PASSWORD, database: "shop", compress: true, maxAllowedPacket: 64 << 20 });
    try {
      const rows = (await conn.query("SELECT seq, SHA1(seq) AS h FROM seq_1_to_50000")) as { seq: number | bigint; h: string }[];
      expect(rows).toHaveLength(50_000);
      expect(Number(rows[49_999].seq)).toBe(50_000);
      expect(rows[49_999].h).toBe(crypto.createHash("sha1").update("50000").digest("hex"));
      const [p] = (await conn.execute("SELECT ? + 1 AS v", [41])) as { v: number | bigint }[];
      expect(Number(p.v)).toBe(42);
      const value = "m".repeat(BIG);
      await conn.query("DELETE FROM blobs WHERE id = 3");
      await conn.query("INSERT INTO blobs VALUES (3, ?)", [value]);
      const [back] = (await conn.query("SELECT b FROM blobs WHERE id = 3")) as { b: Buffer }[];
      expect(back.b.length).toBe(BIG);
      expect(back.b.toString() === value).toBe(true);
      await expect(conn.query("SELECT * FROM nope")).rejects.toMatchObject({ errno: 1146, sqlState: "42S02" });
    } finally {
      await conn.end();
    }
  }, 60_000);

  test("PHP mysqli (mysqlnd) with MYSQLI_CLIENT_COMPRESS", async () => {
    const file = path.join(tempDir("php"), "z.php");
    fs.writeFileSync(
      file,
      `<?php
mysqli_report(MYSQLI_REPORT_OFF);
$m = mysqli_init();
if (!$m->real_connect("127.0.0.1", "app", "${PASSWORD}", "shop", ${port}, null, MYSQLI_CLIENT_COMPRESS)) { echo "connect failed: ", mysqli_connect_error(); exit(1); }
$r = $m->query("SELECT COUNT(*) AS n, SUM(LENGTH(SHA1(seq))) AS l FROM seq_1_to_20000")->fetch_assoc();
$s = $m->prepare("SELECT ? * 2 AS v"); $x = 21; $s->bind_param("i", $x); $s->execute(); $v = $s->get_result()->fetch_assoc()["v"];
$rows = $m->query("SELECT seq FROM seq_1_to_20000")->num_rows;
$e = $m->query("SELECT * FROM nope") ? "no error" : $m->errno;
echo json_encode(["n" => $r["n"], "l" => $r["l"], "v" => $v, "rows" => $rows, "err" => $e]);
`,
    );
    const r = await runProcess("php", [file], { timeoutMs: 20_000 });
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ n: "20000", l: "800000", v: 42, rows: 20000, err: 1146 });
  });
});

describe("the mariadb CLI with --compress", () => {
  test("says the protocol is compressed and gets the same output as without", async () => {
    const sql = "SELECT seq, SHA1(seq) FROM seq_1_to_2000; SELECT 'done'";
    const z = await runMariadbCli({ port, user: "app", password: PASSWORD, database: "shop", sql, args: ["--compress"] });
    const plain = await runMariadbCli({ port, user: "app", password: PASSWORD, database: "shop", sql });
    expect(z.stderr).toBe("");
    expect(z.code).toBe(0);
    expect(z.stdout).toBe(plain.stdout);
    expect(z.stdout.split("\n")).toHaveLength(1 + 2000 + 2 + 1);
    const status = await runMariadbCli({ port, user: "app", password: PASSWORD, sql: "status", args: ["--compress"] });
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/Protocol:\s+Compressed/);
    const err = await runMariadbCli({ port, user: "app", password: PASSWORD, sql: "SELECT * FROM shop.nope", args: ["--compress"] });
    expect(err.stderr).toMatch(/ERROR 1146 \(42S02\)/);
  });

  test("17 MiB up (from stdin) and down", async () => {
    const bin = process.env.MYSQLGW_MARIADB_CLI ?? "mariadb";
    const value = "q".repeat(BIG);
    const up = await runProcess(
      bin,
      ["--no-defaults", "--protocol=TCP", "-h127.0.0.1", `-P${port}`, "-uapp", `-p${PASSWORD}`, "--compress", "--max-allowed-packet=64M", "--batch", "shop"],
      { input: `DELETE FROM blobs; INSERT INTO blobs VALUES (2, '${value}'); SELECT LENGTH(b), MD5(b) = MD5(REPEAT('q', ${BIG})) FROM blobs WHERE id = 2;\n`, timeoutMs: 60_000 },
    );
    expect(up.stderr.slice(-300)).toBe("");
    expect(up.code).toBe(0);
    expect(up.stdout.trim().split("\n")[1]).toBe(`${BIG}\t1`);
    const down = await runMariadbCli({
      port,
      user: "app",
      password: PASSWORD,
      sql: "SELECT b FROM shop.blobs WHERE id = 2",
      args: ["--compress", "--max-allowed-packet=64M", "--skip-column-names"],
      timeoutMs: 60_000,
    });
    expect(down.stderr.slice(-300)).toBe("");
    expect(down.code).toBe(0);
    expect(down.stdout.trim().length).toBe(BIG);
    expect(down.stdout.trim() === value).toBe(true);
  }, 90_000);
});
