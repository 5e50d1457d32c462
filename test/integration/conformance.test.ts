// Issue 3, points 4, 5 and 7: the conformance suite. The same cases run
// straight against MariaDB and through mysqlgw with the same client, and
// everything the client lets us observe is compared: rows, column metadata,
// OK packets (affected rows, insert id, warnings, status flags, info), and
// errors (code, SQLSTATE, message). Then the same with other real clients.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as mysql from "mysql2/promise";
import * as mariadb from "mariadb";
import { connect, runMariadbCli, runProcess, tempDir, type ProcessResult } from "../helpers";
import { startGatewayFixture, type Endpoint, type GatewayFixture } from "../helpers/gateway-fixture";

let fx: GatewayFixture;

/** Run through a routed listener (conformance-split.test.ts sets MYSQLGW_FIXTURE_LISTENER). */
const ROUTED = (process.env.MYSQLGW_FIXTURE_LISTENER ?? "").includes("SPLIT");

/** Each side works in its own database on the same server; names are masked in what is compared. */
const DB = { direct: "conf_direct", gateway: "conf_gw" } as const;
type Side = keyof typeof DB;

function endpoint(side: Side): Endpoint {
  return side === "direct" ? fx.direct : fx.gateway;
}

beforeAll(async () => {
  fx = await startGatewayFixture({
    databases: [DB.direct, DB.gateway, "conf_py_direct", "conf_py_gw", "conf_php_direct", "conf_php_gw"],
    // session_connect_attrs needs the performance schema
    mariadbArgs: ["--performance-schema=ON"],
  });
}, 120_000);

/** Replaces the side's database name, so that the two sides' observations compare equal. */
function mask(value: unknown, side: Side): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : Buffer.isBuffer(v) ? `hex:${v.toString("hex")}` : v)).split(DB[side]).join("<db>"));
}

// ---------------------------------------------------------------------------
// mysql2: a table of cases
// ---------------------------------------------------------------------------

interface Case {
  name: string;
  sql: string;
  /** Run with execute() (server-side prepared statement) with these parameters. */
  params?: unknown[];
}

const TYPES_TABLE = `CREATE TABLE t_types (
  id INT AUTO_INCREMENT PRIMARY KEY,
  i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED, ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT,
  d DECIMAL(65,30), dm DECIMAL(10,2), f FLOAT, db DOUBLE,
  dt DATETIME(6), ts TIMESTAMP(3) NULL, da DATE, tm TIME(6), y YEAR,
  bt BIT(10), bl BLOB, lb LONGBLOB, vb VARBINARY(16), bn BINARY(4),
  j JSON, e ENUM('small','medium','large'), st SET('a','b','c'),
  v VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, tx TEXT, l1 VARCHAR(20) CHARACTER SET latin1,
  UNIQUE KEY uk_v (v)
)`;

const TYPED_ROW_MAX = `INSERT INTO t_types (i, iu, bi, biu, ti, si, mi, d, dm, f, db, dt, ts, da, tm, y, bt, bl, lb, vb, bn, j, e, st, v, tx, l1) VALUES
  (2147483647, 4294967295, 9223372036854775807, 18446744073709551615, 127, 65535, 8388607,
   12345678901234567890123456789012345.123456789012345678901234567890, 99999999.99, 3.4028234e38, 1.7976931348623157e308,
   '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', '9999-12-31', '838:59:59.000000', 2155,
   b'1111111111', X'00FF10E2', REPEAT(X'AB', 1000), X'000102', X'61626364',
   '{"k": [1, 2.5, "é", null, true], "emoji": "😀"}', 'large', 'a,c',
   'emoji 😀 🎉 and ünïcödé', 'plain text', 'caf\\xe9')`;

const TYPED_ROW_MIN = `INSERT INTO t_types (i, iu, bi, biu, ti, si, mi, d, dm, f, db, dt, ts, da, tm, y, bt, bl, lb, vb, bn, j, e, st, v, tx, l1) VALUES
  (-2147483648, 0, -9223372036854775808, 0, -128, 0, -8388608,
   -0.000000000000000000000000000001, -99999999.99, -1.17549e-38, -2.2250738585072014e-308,
   '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01.000', '1000-01-01', '-838:59:59.000000', 1901,
   b'0', X'', X'', X'', X'00000000',
   '[]', 'small', '', '', '', '')`;

const CASES: Case[] = [
  { name: "CREATE TABLE of every common type", sql: TYPES_TABLE },
  { name: "INSERT of the maximum values", sql: TYPED_ROW_MAX },
  { name: "INSERT of the minimum values", sql: TYPED_ROW_MIN },
  { name: "INSERT of a NULL row", sql: "INSERT INTO t_types (v) VALUES (NULL)" },
  { name: "SELECT every type, text protocol", sql: "SELECT * FROM t_types ORDER BY id" },
  { name: "SELECT every type, binary protocol", sql: "SELECT * FROM t_types WHERE id > ? ORDER BY id", params: [0] },
  { name: "SELECT expressions and their metadata", sql: "SELECT 1 AS one, -1.5 AS neg, 'x' AS s, NULL AS n, 1e300 * 10 AS inf, 18446744073709551615 AS big, CAST(1 AS UNSIGNED) AS u, NOW(6) > '2000-01-01' AS later, _latin1 'caf\\xe9' AS lat, CONVERT('ß' USING utf8mb4) COLLATE utf8mb4_bin AS bin, X'DEADBEEF' AS hex, b'101' AS bits" },
  { name: "SELECT from an empty table", sql: "SELECT id, v FROM t_types WHERE id < 0" },
  { name: "UPDATE: affected and changed rows, info", sql: "UPDATE t_types SET tx = 'changed' WHERE id <= 2" },
  { name: "UPDATE that changes nothing", sql: "UPDATE t_types SET tx = 'changed' WHERE id <= 2" },
  { name: "AUTO_INCREMENT insert id", sql: "INSERT INTO t_types (v) VALUES ('ai-1'), ('ai-2')" },
  { name: "DELETE", sql: "DELETE FROM t_types WHERE v LIKE 'ai-%'" },
  { name: "duplicate key 1062 / 23000", sql: "INSERT INTO t_types (v) VALUES ('emoji 😀 🎉 and ünïcödé')" },
  { name: "syntax error 1064 / 42000", sql: "SELEC 1 FROM" },
  { name: "unknown table 1146 / 42S02", sql: "SELECT * FROM no_such_table" },
  { name: "unknown column 1054 / 42S22", sql: "SELECT no_such_column FROM t_types" },
  { name: "division by zero warning", sql: "SELECT 1/0 AS x" },
  { name: "SHOW WARNINGS", sql: "SHOW WARNINGS" },
  { name: "non-strict sql_mode", sql: "SET SESSION sql_mode = ''" },
  { name: "out-of-range INSERT: warnings, not an error", sql: "INSERT INTO t_types (ti, si, v) VALUES (1000, -5, 'clipped')" },
  { name: "SHOW WARNINGS after it", sql: "SHOW WARNINGS" },
  { name: "SHOW COUNT(*) WARNINGS", sql: "SHOW COUNT(*) WARNINGS" },
  { name: "strict sql_mode again", sql: "SET SESSION sql_mode = DEFAULT" },
  { name: "out-of-range INSERT in strict mode: 1264 / 22003", sql: "INSERT INTO t_types (ti) VALUES (1000)" },
  { name: "multi-statements: several result sets and OKs", sql: "SELECT 1 AS a; SELECT 'x' AS b, NULL AS c UNION SELECT 'y', 2; INSERT INTO t_types (v) VALUES ('multi'); SELECT LAST_INSERT_ID() > 0 AS ok; DELETE FROM t_types WHERE v = 'multi'" },
  { name: "multi-statements with an error in the middle", sql: "SELECT 1 AS first; SELECT * FROM no_such_table; SELECT 3 AS never" },
  { name: "CREATE PROCEDURE", sql: "CREATE PROCEDURE p_multi(IN n INT) BEGIN SELECT n AS n; SELECT v, e FROM t_types WHERE v <> '' ORDER BY id; SELECT 'done' AS status, n * 2 AS twice; END" },
  { name: "CALL returning several result sets", sql: "CALL p_multi(21)" },
  { name: "CALL through a prepared statement", sql: "CALL p_multi(?)", params: [5] },
  { name: "SIGNAL SQLSTATE '45000' with custom text", sql: "BEGIN NOT ATOMIC SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom failure: é order 42'; END" },
  { name: "SIGNAL with a custom errno", sql: "BEGIN NOT ATOMIC SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1644, MESSAGE_TEXT = 'raised'; END" },
  { name: "transaction start: status flags", sql: "BEGIN" },
  { name: "INSERT inside the transaction", sql: "INSERT INTO t_types (v) VALUES ('in-tx')" },
  { name: "ROLLBACK", sql: "ROLLBACK" },
  { name: "rolled back row is gone", sql: "SELECT COUNT(*) AS n FROM t_types WHERE v = 'in-tx'" },
  { name: "session variables", sql: "SELECT @@character_set_client AS csc, @@character_set_connection AS csn, @@character_set_results AS csr, @@collation_connection AS cc, @@autocommit AS ac, @@sql_mode AS sm, USER() AS u, CURRENT_USER() AS cu, DATABASE() AS db" },
  { name: "SHOW CREATE TABLE", sql: "SHOW CREATE TABLE t_types" },
  { name: "DESCRIBE", sql: "DESCRIBE t_types" },
  { name: "information_schema", sql: "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_types' ORDER BY ORDINAL_POSITION" },
  { name: "prepared: parameters of each type", sql: "SELECT ? AS i, ? AS neg, ? AS dbl, ? AS s, ? AS n, ? AS b, ? AS big, ? AS buf, ? AS emoji, ? AS dt", params: [42, -7, 3.25, "text", null, true, 9007199254740993n, Buffer.from([0, 1, 254, 255]), "😀", "2026-05-06 07:08:09.123456"] },
  { name: "prepared: INSERT of each type", sql: "INSERT INTO t_types (i, biu, d, f, dt, tm, y, bl, j, e, st, v) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", params: [-5, "18446744073709551615", "-123.456", 1.5, "2026-01-02 03:04:05.678901", "-12:34:56.5", 2026, Buffer.from("blob\0bytes"), '{"a":1}', "medium", "b,c", "prepared 🎉"] },
  { name: "prepared: read it back", sql: "SELECT i, biu, d, f, dt, tm, y, bl, j, e, st, v FROM t_types WHERE v = ?", params: ["prepared 🎉"] },
  { name: "prepared: duplicate key", sql: "INSERT INTO t_types (v) VALUES (?)", params: ["prepared 🎉"] },
  { name: "prepared: syntax error at prepare", sql: "SELEC ?", params: [1] },
  { name: "prepared: unknown table at prepare", sql: "SELECT * FROM no_such_table WHERE id = ?", params: [1] },
  { name: "prepared: UPDATE affected rows", sql: "UPDATE t_types SET tx = ? WHERE id > ?", params: ["p", 0] },
  { name: "prepared: out-of-range in strict mode", sql: "INSERT INTO t_types (ti) VALUES (?)", params: [1000] },
];

/** What one case shows through mysql2, as plain data. */
async function observeMysql2(conn: mysql.Connection, c: Case): Promise<unknown> {
  try {
    const [result, fields] = c.params !== undefined ? await conn.execute(c.sql, c.params as mysql.ExecuteValues[]) : await conn.query(c.sql);
    return { result, fields: describeFields(fields) };
  } catch (err) {
    const e = err as { errno?: number; sqlState?: string; sqlMessage?: string; code?: string; fatal?: boolean };
    return { error: { errno: e.errno, sqlState: e.sqlState, sqlMessage: e.sqlMessage, code: e.code, fatal: e.fatal } };
  }
}

function describeFields(fields: unknown): unknown {
  if (!Array.isArray(fields)) return fields;
  return fields.map((f: unknown) => {
    if (Array.isArray(f) || f === undefined) return describeFields(f);
    const d = f as mysql.FieldPacket & { characterSet?: number; encoding?: string };
    return {
      name: d.name,
      orgName: d.orgName,
      table: d.table,
      orgTable: d.orgTable,
      db: d.db,
      type: d.columnType,
      typeName: d.type,
      length: d.columnLength,
      flags: d.flags,
      decimals: d.decimals,
      charset: d.characterSet,
      encoding: d.encoding,
    };
  });
}

async function runMysql2Cases(side: Side): Promise<unknown[]> {
  const e = endpoint(side);
  const conn = await connect({ port: e.port, user: e.user, password: e.password, database: DB[side], multipleStatements: true });
  const out: unknown[] = [];
  try {
    for (const c of CASES) out.push(mask(await observeMysql2(conn, c), side));
  } finally {
    await conn.end();
  }
  return out;
}

describe("mysql2: every case gives the same result direct and through the gateway", () => {
  let direct: unknown[];
  let gateway: unknown[];
  beforeAll(async () => {
    direct = await runMysql2Cases("direct");
    gateway = await runMysql2Cases("gateway");
  }, 60_000);

  test.each(CASES.map((c, i) => [c.name, i] as const))("%s", (_name, i) => {
    expect(gateway[i]).toEqual(direct[i]);
  });

  test("the cases do what they say (spot checks of the direct results)", () => {
    const byName = (n: string) => direct[CASES.findIndex((c) => c.name === n)] as Record<string, unknown>;
    expect(byName("duplicate key 1062 / 23000")).toMatchObject({ error: { errno: 1062, sqlState: "23000" } });
    expect(byName("syntax error 1064 / 42000")).toMatchObject({ error: { errno: 1064, sqlState: "42000" } });
    expect(byName("unknown table 1146 / 42S02")).toMatchObject({ error: { errno: 1146, sqlState: "42S02", sqlMessage: "Table '<db>.no_such_table' doesn't exist" } });
    expect(byName("SIGNAL SQLSTATE '45000' with custom text")).toMatchObject({ error: { errno: 1644, sqlState: "45000", sqlMessage: "custom failure: é order 42" } });
    expect(byName("out-of-range INSERT: warnings, not an error")).toMatchObject({ result: { affectedRows: 1, warningStatus: 2 } });
    expect(byName("out-of-range INSERT in strict mode: 1264 / 22003")).toMatchObject({ error: { errno: 1264, sqlState: "22003" } });
    const call = byName("CALL returning several result sets") as { result: unknown[] };
    expect(call.result).toHaveLength(4); // three result sets and the CALL's OK
    const multi = byName("multi-statements: several result sets and OKs") as { result: unknown[] };
    expect(multi.result).toHaveLength(5);
    const types = byName("SELECT every type, text protocol") as { result: Record<string, unknown>[] };
    expect(types.result[0]).toMatchObject({ biu: "18446744073709551615", iu: 4294967295, v: "emoji 😀 🎉 and ünïcödé" });
    // JSON comes back parsed: mysql2 saw MariaDB's extended column metadata (both ways, since the rows are equal)
    expect(types.result[0].j).toEqual({ k: [1, 2.5, "é", null, true], emoji: "😀" });
  });
});

// ---------------------------------------------------------------------------
// big packets, collations, connection attributes (mysql2)
// ---------------------------------------------------------------------------

describe("mysql2: big packets, collation negotiation, connection attributes", () => {
  test("a 20 MiB LONGBLOB goes in (one 20 MiB client packet) and comes back (one 20 MiB row) intact", async () => {
    const blob = crypto.randomBytes(20 * 1024 * 1024);
    const sha1 = crypto.createHash("sha1").update(blob).digest("hex");
    const e = fx.gateway;
    const conn = await connect({ port: e.port, user: e.user, password: e.password, database: DB.gateway });
    try {
      await conn.query("CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB)");
      // text protocol: the whole statement is one logical packet of ~40 MiB (hex)
      await conn.query(`INSERT INTO big VALUES (1, X'${blob.toString("hex")}')`);
      // binary protocol: a 20 MiB parameter
      await conn.execute("INSERT INTO big VALUES (2, ?)", [blob]);
      const [rows] = (await conn.query("SELECT id, b, SHA1(b) AS h, LENGTH(b) AS n FROM big ORDER BY id")) as unknown as [{ id: number; b: Buffer; h: string; n: number }[]];
      expect(rows.map((r) => [r.id, Number(r.n), r.h, crypto.createHash("sha1").update(r.b).digest("hex")])).toEqual([
        [1, blob.length, sha1, sha1],
        [2, blob.length, sha1, sha1],
      ]);
      const [bin] = (await conn.execute("SELECT b FROM big WHERE id = ?", [2])) as unknown as [{ b: Buffer }[]];
      expect(crypto.createHash("sha1").update(bin[0].b).digest("hex")).toBe(sha1);
      // the connection is still in step afterwards
      const [[r]] = (await conn.query("SELECT 1 + 1 AS two")) as unknown as [[{ two: number }]];
      expect(Number(r.two)).toBe(2);
    } finally {
      await conn.end();
    }
  });

  test.each(["UTF8MB4_UNICODE_CI", "UTF8MB4_GENERAL_CI", "LATIN1_SWEDISH_CI", "UTF8_GENERAL_CI", "BINARY"])(
    "charset %s negotiates the same session character set and collation",
    async (charset) => {
      const sql = "SELECT @@character_set_client AS csc, @@character_set_connection AS csn, @@character_set_results AS csr, @@collation_connection AS cc, HEX('é') AS h";
      const seen: unknown[] = [];
      for (const side of ["direct", "gateway"] as const) {
        const e = endpoint(side);
        const conn = await connect({ port: e.port, user: e.user, password: e.password, extra: { charset } });
        try {
          const [rows] = await conn.query(sql);
          seen.push(rows);
        } finally {
          await conn.end();
        }
      }
      expect(seen[1]).toEqual(seen[0]);
      if (charset === "LATIN1_SWEDISH_CI") expect(seen[0]).toEqual([{ csc: "latin1", csn: "latin1", csr: "latin1", cc: "latin1_swedish_ci", h: "E9" }]);
      if (charset === "UTF8MB4_UNICODE_CI") expect(seen[0]).toMatchObject([{ csc: "utf8mb4", cc: "utf8mb4_unicode_ci", h: "C3A9" }]);
    },
  );

  test("connection attributes reach the server (performance_schema.session_connect_attrs)", async () => {
    const sql = "SELECT ATTR_NAME AS k, ATTR_VALUE AS v FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = CONNECTION_ID() ORDER BY ORDINAL_POSITION";
    const seen: Record<string, string>[] = [];
    for (const side of ["direct", "gateway"] as const) {
      const e = endpoint(side);
      const conn = await connect({ port: e.port, user: e.user, password: e.password, extra: { connectAttributes: { program_name: "conformance", team: "é" } } });
      try {
        const [rows] = (await conn.query(sql)) as unknown as [{ k: string; v: string }[]];
        seen.push(Object.fromEntries(rows.map((r) => [r.k, r.v])));
      } finally {
        await conn.end();
      }
    }
    const [direct, gateway] = seen;
    expect(direct).toMatchObject({ _client_name: "Node-MySQL-2", program_name: "conformance", team: "é" });
    if (ROUTED) {
      // A routed listener runs statements on pooled connections shared by many clients: they carry the pool's attributes.
      expect(gateway).toMatchObject({ _mysqlgw_pool: "1", _mysqlgw_client_addr: "pool" });
      expect(gateway.program_name).toBeUndefined();
      return;
    }
    // The gateway passes every attribute on and adds the client's address.
    const { _mysqlgw_client_addr: addr, ...rest } = gateway;
    expect(rest).toEqual(direct);
    expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});

// ---------------------------------------------------------------------------
// the mariadb npm connector, DEPRECATE_EOF on and off
// ---------------------------------------------------------------------------

const MARIADB_CASES: Case[] = [
  { name: "create", sql: "CREATE TABLE m_t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50), d DECIMAL(20,5), dt DATETIME(6), j JSON, b BLOB, bu BIGINT UNSIGNED)" },
  { name: "insert", sql: "INSERT INTO m_t (v, d, dt, j, b, bu) VALUES ('😀', 12.5, '2026-01-02 03:04:05.000006', '{\"a\":[1]}', X'00FF', 18446744073709551615), (NULL, NULL, NULL, NULL, NULL, NULL)" },
  { name: "select", sql: "SELECT * FROM m_t ORDER BY id" },
  { name: "prepared select", sql: "SELECT id, v, d, dt, j, b, bu FROM m_t WHERE id >= ? ORDER BY id", params: [1] },
  { name: "prepared insert", sql: "INSERT INTO m_t (v, d, b) VALUES (?, ?, ?)", params: ["p", "1.25", Buffer.from([1, 2, 3])] },
  { name: "multi", sql: "SELECT 1 AS a; SELECT 2 AS b; UPDATE m_t SET v = 'u' WHERE id = 2" },
  { name: "procedure", sql: "CREATE PROCEDURE m_p() BEGIN SELECT 1 AS x; SELECT v FROM m_t ORDER BY id; END" },
  { name: "call", sql: "CALL m_p()" },
  { name: "warning", sql: "SELECT 1/0 AS x" },
  { name: "duplicate", sql: "INSERT INTO m_t (id) VALUES (1)" },
  { name: "syntax", sql: "SELEC 1" },
  { name: "signal", sql: "BEGIN NOT ATOMIC SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom'; END" },
  { name: "prepared error", sql: "SELECT * FROM nope WHERE a = ?", params: [1] },
];

async function runMariadbConnector(side: Side, keepEof: boolean): Promise<{ eofDeprecated: boolean; out: unknown[] }> {
  const e = endpoint(side);
  const db = `${DB[side]}_m${keepEof ? "eof" : "ok"}`;
  await fx.db.query(`CREATE DATABASE IF NOT EXISTS ${db}`);
  // keepEof is a real connector option (it keeps CLIENT_DEPRECATE_EOF off) missing from its typings.
  const conn = await mariadb.createConnection({
    host: "127.0.0.1", port: e.port, user: e.user, password: e.password, database: db,
    multipleStatements: true, keepEof, bigIntAsNumber: false, decimalAsNumber: false, dateStrings: true, connectTimeout: 5000,
  } as mariadb.ConnectionConfig);
  const out: unknown[] = [];
  try {
    for (const c of MARIADB_CASES) {
      try {
        const res = (c.params !== undefined ? await conn.execute(c.sql, c.params as mysql.ExecuteValues[]) : await conn.query(c.sql)) as unknown;
        out.push(mask(mariadbResult(res), side));
      } catch (err) {
        const x = err as { errno?: number; sqlState?: string; text?: string; code?: string; fatal?: boolean };
        out.push(mask({ error: { errno: x.errno, sqlState: x.sqlState, text: x.text, code: x.code, fatal: x.fatal } }, side));
      }
    }
    const info = (conn as unknown as { info: { eofDeprecated?: boolean } }).info;
    return { eofDeprecated: info.eofDeprecated === true, out };
  } finally {
    await conn.end();
  }
}

/** Rows with their `meta` (column definitions) made plain. */
function mariadbResult(res: unknown): unknown {
  if (Array.isArray(res)) {
    const meta = (res as unknown as { meta?: unknown[] }).meta;
    return {
      rows: res.map((r) => (Array.isArray(r) ? mariadbResult(r) : r)),
      meta: meta?.map((m) => {
        const c = m as Record<string, unknown> & { type: unknown; db(): string; schema(): string; table(): string; orgTable(): string; name(): string; orgName(): string };
        return {
          db: c.db(), table: c.table(), orgTable: c.orgTable(), name: c.name(), orgName: c.orgName(),
          collation: (c.collation as { name?: string } | undefined)?.name, columnLength: c.columnLength, columnType: c.columnType, flags: c.flags,
          scale: c.scale, type: c.type, dataTypeName: c.dataTypeName, dataTypeFormat: c.dataTypeFormat,
        };
      }),
    };
  }
  return res;
}

describe("the mariadb npm connector: same results direct and through the gateway", () => {
  test.each([
    ["DEPRECATE_EOF on", false],
    ["DEPRECATE_EOF off (keepEof)", true],
  ] as const)("%s", async (_name, keepEof) => {
    const direct = await runMariadbConnector("direct", keepEof);
    const gateway = await runMariadbConnector("gateway", keepEof);
    expect(direct.eofDeprecated).toBe(!keepEof);
    expect(gateway.eofDeprecated).toBe(!keepEof);
    for (let i = 0; i < MARIADB_CASES.length; i++) {
      expect({ case: MARIADB_CASES[i].name, ...(gateway.out[i] as object) }).toEqual({ case: MARIADB_CASES[i].name, ...(direct.out[i] as object) });
    }
    expect(direct.out[9]).toMatchObject({ error: { errno: 1062, sqlState: "23000" } });
  });
});

// ---------------------------------------------------------------------------
// the mariadb CLI (libmariadb), PyMySQL, PHP PDO and mysqli
// ---------------------------------------------------------------------------

const CLI_SQL = [
  "CREATE TABLE IF NOT EXISTS c_t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), d DECIMAL(12,3), dt DATETIME(6), b BIT(4), j JSON, e ENUM('x','y'))",
  "INSERT INTO c_t (v, d, dt, b, j, e) VALUES ('😀 é', 1.5, '2026-03-04 05:06:07.8', b'1010', '{\"k\":1}', 'y'), (NULL, NULL, NULL, NULL, NULL, NULL)",
  "SELECT * FROM c_t ORDER BY id",
  "SELECT 1/0 AS w",
  "SHOW WARNINGS",
  "SELECT 1 AS a UNION SELECT 2",
  "DELETE FROM c_t",
].join("; ");

describe("the mariadb command-line client (libmariadb)", () => {
  test("--column-type-info output (rows and metadata) is the same direct and through the gateway", async () => {
    const out: Record<Side, ProcessResult> = {} as Record<Side, ProcessResult>;
    for (const side of ["direct", "gateway"] as const) {
      const e = endpoint(side);
      // --column-type-info prints metadata in table mode only (not with runMariadbCli's --batch)
      out[side] = await runProcess("mariadb", [
        "--no-defaults", "--protocol=TCP", "-h127.0.0.1", `-P${e.port}`, `-u${e.user}`, `-p${e.password}`, `-D${DB[side]}`,
        "--column-type-info", "--show-warnings", "--default-character-set=utf8mb4", "--table", "-e", CLI_SQL,
      ]);
    }
    expect({ code: out.direct.code, stderr: out.direct.stderr }).toEqual({ code: 0, stderr: "" });
    expect(out.direct.stdout).toContain("Type:");
    expect({ code: out.gateway.code, stderr: out.gateway.stderr }).toEqual({ code: 0, stderr: "" });
    expect(out.gateway.stdout.split(DB.gateway).join("<db>")).toBe(out.direct.stdout.split(DB.direct).join("<db>"));
  });

  test.each([[[] as string[]], [["--default-character-set=latin1"]], [["--default-character-set=utf8mb4"]]])("character set negotiation %j", async (args) => {
    const sql = "SELECT @@character_set_client, @@character_set_results, @@collation_connection";
    const r: ProcessResult[] = [];
    for (const side of ["direct", "gateway"] as const) {
      const e = endpoint(side);
      r.push(await runMariadbCli({ port: e.port, user: e.user, password: e.password, sql, args }));
    }
    expect(r[0].code).toBe(0);
    expect(r[1]).toEqual(r[0]);
  });

  test("errors print the same code, SQLSTATE and message", async () => {
    for (const sql of ["SELEC 1", "SELECT * FROM nope", "BEGIN NOT ATOMIC SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom 😀'; END"]) {
      const r: ProcessResult[] = [];
      for (const side of ["direct", "gateway"] as const) {
        const e = endpoint(side);
        r.push(await runMariadbCli({ port: e.port, user: e.user, password: e.password, database: DB[side], sql }));
      }
      expect(r[0].code).toBe(1);
      expect(r[1].code).toBe(1);
      expect(r[1].stderr.split(DB.gateway).join("<db>")).toBe(r[0].stderr.split(DB.direct).join("<db>"));
    }
  });
});

/** A script run by `bin` with host, port, user, password, database as arguments. Returns stdout, with the db name masked. */
async function runScript(bin: string, ext: string, source: string, side: Side, db: string): Promise<ProcessResult> {
  const dir = tempDir(`conf-${ext}`);
  const file = path.join(dir, `script.${ext}`);
  fs.writeFileSync(file, source);
  const e = endpoint(side);
  const r = await runProcess(bin, [file, "127.0.0.1", String(e.port), e.user, e.password, db], { timeoutMs: 20_000 });
  return { ...r, stdout: r.stdout.split(db).join("<db>") };
}

const PYMYSQL = String.raw`
import sys, json, pymysql
host, port, user, password, db = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c = pymysql.connect(host=host, port=port, user=user, password=password, database=db, charset="utf8mb4",
                    client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
cur = c.cursor()
def run(sql, args=None):
    try:
        n = cur.execute(sql, args)
        sets = []
        while True:
            sets.append({"rowcount": cur.rowcount, "lastrowid": cur.lastrowid, "description": cur.description,
                         "rows": [[repr(v) for v in r] for r in (cur.fetchall() or [])]})
            if not cur.nextset():
                break
        print(json.dumps({"sql": sql, "n": n, "sets": sets, "warnings": c.warning_count if hasattr(c, "warning_count") else None, "status": c.server_status}, ensure_ascii=False))
    except pymysql.MySQLError as e:
        print(json.dumps({"sql": sql, "error": [type(e).__name__] + list(e.args)}, ensure_ascii=False))
run("CREATE TABLE p_t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), d DECIMAL(12,3), dt DATETIME(6), bu BIGINT UNSIGNED, bl BLOB, j JSON)")
run("INSERT INTO p_t (v, d, dt, bu, bl, j) VALUES (%s, %s, %s, %s, %s, %s)", ("😀 é", "1.500", "2026-03-04 05:06:07.000008", 18446744073709551615, b"\x00\xff", '{"a": 1}'))
run("INSERT INTO p_t (v) VALUES (NULL)")
run("SELECT * FROM p_t ORDER BY id")
run("SELECT 1 AS a; SELECT 'two' AS b; UPDATE p_t SET v = 'x' WHERE id = 2")
run("CREATE PROCEDURE p_p() BEGIN SELECT 1 AS x; SELECT v FROM p_t ORDER BY id; END")
run("CALL p_p()")
run("SELECT 1/0")
run("SHOW WARNINGS")
run("INSERT INTO p_t (id) VALUES (1)")
run("SELEC 1")
run("SELECT * FROM nope")
run("BEGIN NOT ATOMIC SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom 😀'; END")
run("SELECT @@character_set_client, @@collation_connection")
c.close()
`;

const PHP = String.raw`<?php
[$_, $host, $port, $user, $password, $db] = $argv;
function out($x) { echo json_encode($x, JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_INVALID_UTF8_SUBSTITUTE), "\n"; }
// PDO with server-side prepared statements
$pdo = new PDO("mysql:host=$host;port=$port;dbname=$db;charset=utf8mb4", $user, $password, [
  PDO::ATTR_EMULATE_PREPARES => false, PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::MYSQL_ATTR_MULTI_STATEMENTS => true]);
function pdo_run($pdo, $sql, $params = null) {
  try {
    $st = $pdo->prepare($sql);
    $st->execute($params);
    $sets = [];
    do {
      $meta = [];
      for ($i = 0; $i < $st->columnCount(); $i++) { $m = $st->getColumnMeta($i); unset($m['pdo_type']); $meta[] = $m; }
      $sets[] = ['rowCount' => $st->rowCount(), 'meta' => $meta, 'rows' => $st->columnCount() > 0 ? array_map(fn($r) => array_map(fn($v) => is_string($v) && !preg_match('//u', $v) ? 'hex:' . bin2hex($v) : $v, $r), $st->fetchAll(PDO::FETCH_NUM)) : []];
    } while ($st->columnCount() > 0 && $st->nextRowset());
    out(['sql' => $sql, 'lastInsertId' => $pdo->lastInsertId(), 'sets' => $sets]);
  } catch (PDOException $e) {
    out(['sql' => $sql, 'error' => [$e->getCode(), $e->errorInfo, $e->getMessage()]]);
  }
}
pdo_run($pdo, "CREATE TABLE h_t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), d DECIMAL(12,3), dt DATETIME(6), bu BIGINT UNSIGNED, bl BLOB, f DOUBLE, y YEAR)");
pdo_run($pdo, "INSERT INTO h_t (v, d, dt, bu, bl, f, y) VALUES (?, ?, ?, ?, ?, ?, ?)", ["😀 é", "1.5", "2026-03-04 05:06:07.000008", "18446744073709551615", "\x00\xff", 2.5, 2026]);
pdo_run($pdo, "INSERT INTO h_t (v) VALUES (NULL)");
pdo_run($pdo, "SELECT * FROM h_t WHERE id > ? ORDER BY id", [0]);
pdo_run($pdo, "UPDATE h_t SET v = ? WHERE id > ?", ["u", 1]);
pdo_run($pdo, "CREATE PROCEDURE h_p(IN n INT) BEGIN SELECT n AS n; SELECT v FROM h_t ORDER BY id; END");
pdo_run($pdo, "CALL h_p(?)", [7]);
pdo_run($pdo, "INSERT INTO h_t (id) VALUES (?)", [1]);
pdo_run($pdo, "SELEC ?", [1]);
pdo_run($pdo, "SELECT * FROM nope WHERE a = ?", [1]);
$pdo = null;
// mysqli
mysqli_report(MYSQLI_REPORT_OFF);
$m = new mysqli($host, $user, $password, $db, (int)$port);
$m->set_charset("utf8mb4");
function my_run($m, $sql) {
  $ok = $m->multi_query($sql);
  $sets = [];
  if ($ok) {
    do {
      $r = $m->store_result();
      if ($r) { $fields = array_map(fn($f) => (array)$f, $r->fetch_fields()); $sets[] = ['fields' => $fields, 'rows' => $r->fetch_all(MYSQLI_NUM)]; $r->free(); }
      else $sets[] = ['affected' => $m->affected_rows, 'insert_id' => $m->insert_id, 'info' => $m->info, 'warnings' => $m->warning_count];
    } while ($m->more_results() && $m->next_result());
  }
  out(['sql' => $sql, 'errno' => $m->errno, 'sqlstate' => $m->sqlstate, 'error' => $m->error, 'warnings' => $m->warning_count, 'sets' => $sets]);
}
my_run($m, "SELECT * FROM h_t ORDER BY id; SELECT 1/0 AS w; SHOW WARNINGS");
my_run($m, "SET SESSION sql_mode = ''; INSERT INTO h_t (y) VALUES (3000); SHOW WARNINGS");
my_run($m, "CALL h_p(3)");
my_run($m, "SELECT 1 AS a; SELECT * FROM nope; SELECT 3");
my_run($m, "BEGIN NOT ATOMIC SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom 😀'; END");
$st = $m->prepare("SELECT id, v, d, dt, bu, f, y FROM h_t WHERE id >= ? ORDER BY id");
$id = 1; $st->bind_param("i", $id); $st->execute(); $res = $st->get_result();
out(['stmt' => $res->fetch_all(MYSQLI_NUM), 'fields' => array_map(fn($f) => (array)$f, $res->fetch_fields())]);
$m->close();
`;

describe("PyMySQL and PHP (PDO without emulated prepares, mysqli)", () => {
  test("PyMySQL prints the same direct and through the gateway", async () => {
    const py = "/usr/bin/python3";
    const d = await runScript(py, "py", PYMYSQL, "direct", "conf_py_direct");
    const g = await runScript(py, "py", PYMYSQL, "gateway", "conf_py_gw");
    expect(d.stderr).toBe("");
    expect(d.code).toBe(0);
    expect(d.stdout).toContain('"IntegrityError", 1062');
    expect(g.stderr).toBe("");
    expect(g.stdout.split("\n")).toEqual(d.stdout.split("\n"));
  });

  test("PHP PDO (ATTR_EMULATE_PREPARES=false) and mysqli print the same direct and through the gateway", async () => {
    const d = await runScript("php", "php", PHP, "direct", "conf_php_direct");
    const g = await runScript("php", "php", PHP, "gateway", "conf_php_gw");
    expect(d.stderr).toBe("");
    expect(d.code).toBe(0);
    expect(d.stdout).toContain("Duplicate entry");
    expect(g.stderr).toBe("");
    expect(g.stdout.split("\n")).toEqual(d.stdout.split("\n"));
  });
});
