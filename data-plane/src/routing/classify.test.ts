import { classify } from "./classify";
import { RouteHint, StatementFlags as F, StatementKind as K } from "./statement-kind";

const PAD = "67847967377-48000963322-62604349591-22882181931-56213519025-73225734419-72434419137-20262153131-46829349573-09049271960";

// [statement, kind, flags, autocommit?] — sysbench's oltp_* statements verbatim first, then the tricky ones.
const CASES: Array<[string, K, number, number?]> = [
  ["SELECT c FROM sbtest1 WHERE id=5023", K.Select, F.HasWhere],
  ["SELECT c FROM sbtest1 WHERE id BETWEEN 100 AND 199", K.Select, F.HasWhere],
  ["SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 100 AND 199", K.Select, F.HasWhere],
  ["SELECT c FROM sbtest1 WHERE id BETWEEN 100 AND 199 ORDER BY c", K.Select, F.HasWhere],
  ["SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 100 AND 199 ORDER BY c", K.Select, F.HasWhere],
  ["UPDATE sbtest1 SET k=k+1 WHERE id=42", K.Update, F.HasWhere],
  [`UPDATE sbtest1 SET c='${PAD}' WHERE id=42`, K.Update, F.HasWhere],
  ["DELETE FROM sbtest1 WHERE id=7", K.Delete, F.HasWhere],
  [`INSERT INTO sbtest1 (id, k, c, pad) VALUES (7, 5, '${PAD}', '${PAD}')`, K.Insert, 0],
  ["BEGIN", K.Begin, 0],
  ["COMMIT", K.Commit, 0],
  ["begin work", K.Begin, 0],
  ["ROLLBACK", K.Rollback, 0],
  ["START TRANSACTION", K.Begin, 0],
  ["START TRANSACTION READ ONLY", K.Begin, F.ReadOnlyTransaction],
  ["START TRANSACTION READ WRITE", K.Begin, 0],
  ["start transaction with consistent snapshot", K.Begin, 0],
  ["SAVEPOINT a", K.Savepoint, 0],
  ["ROLLBACK TO SAVEPOINT a", K.Savepoint, 0],
  ["ROLLBACK WORK TO a", K.Savepoint, 0],
  ["RELEASE SAVEPOINT a", K.Savepoint, 0],
  ["REPLACE INTO t (a) VALUES (1)", K.Replace, 0],
  // keywords inside strings, comments and backticks do not count
  ["SELECT 'FOR UPDATE' FROM t", K.Select, 0],
  ["SELECT \"LAST_INSERT_ID()\", 'it''s @x', 'a\\'b @y' FROM t", K.Select, 0],
  ["SELECT `where`, `limit` FROM `update` /* FOR UPDATE */ -- LIMIT 1\n", K.Select, 0],
  ["SELECT 1 # FOR UPDATE\n", K.Select, 0],
  ["/* DELETE */ SELECT 1", K.Select, 0],
  ["  -- comment\n  update t set a=1", K.Update, 0],
  ["SELECT 5--1", K.Select, 0],
  // executable comments are SQL
  ["/*!40101 SET NAMES utf8mb4 */", K.Set, F.SetNames],
  ["SELECT * FROM t /*!50000 FOR UPDATE */", K.Select, F.ForUpdate],
  ["/*M!100100 SELECT 1 */", K.Select, 0],
  ["SELECT /*+ MAX_EXECUTION_TIME(1000) */ c FROM t WHERE id=1", K.Select, F.HasWhere],
  // locking reads
  ["SELECT c FROM t WHERE id = (SELECT MAX(id) FROM u) FOR UPDATE", K.Select, F.HasWhere | F.ForUpdate],
  ["SELECT * FROM (SELECT a FROM t) x FOR UPDATE SKIP LOCKED", K.Select, F.ForUpdate],
  ["SELECT c FROM t WHERE id=1 LOCK IN SHARE MODE", K.Select, F.HasWhere | F.LockInShareMode],
  ["SELECT c FROM t WHERE id=1 FOR SHARE", K.Select, F.HasWhere | F.ForShare],
  ["(SELECT a FROM t) UNION (SELECT a FROM u) LIMIT 5", K.Select, F.HasLimit],
  ["SELECT a FROM t WHERE b IN (SELECT b FROM u LIMIT 1)", K.Select, F.HasWhere],
  // SET
  ["SET autocommit=0", K.Set, F.SetAutocommit, 0],
  ["set AUTOCOMMIT = 1", K.Set, F.SetAutocommit, 1],
  ["SET SESSION autocommit = OFF", K.Set, F.SetAutocommit, 0],
  ["SET @@session.autocommit=ON", K.Set, F.SetAutocommit, 1],
  ["SET autocommit=@x", K.Set, F.SetAutocommit | F.ReadsUserVariable, -1],
  ["SET autocommit=1, sql_mode='ANSI'", K.Set, F.SetAutocommit | F.SetOther, 1],
  ["SET @a:=1", K.Set, F.UsesUserVariableAssignment],
  ["SET @a = 1, @b = @a + 1", K.Set, F.UsesUserVariableAssignment | F.ReadsUserVariable],
  ["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY", K.Set, F.SetTransaction],
  ["SET TRANSACTION READ ONLY", K.Set, F.SetTransaction],
  ["SET NAMES utf8mb4 COLLATE utf8mb4_general_ci", K.Set, F.SetNames],
  ["SET CHARACTER SET latin1", K.Set, F.SetNames],
  ["SET time_zone = '+00:00'", K.Set, F.SetOther],
  ["SET STATEMENT max_statement_time=1 FOR SELECT c FROM t WHERE id=1", K.Select, F.HasWhere],
  // user variables, functions
  ["SELECT @a", K.Select, F.ReadsUserVariable],
  ["SELECT @a := COUNT(*) FROM t", K.Select, F.UsesUserVariableAssignment],
  ["SELECT @@version, @@session.sql_mode", K.Select, 0],
  ["SELECT LAST_INSERT_ID()", K.Select, F.UsesLastInsertId],
  ["select last_insert_id ( )", K.Select, F.UsesLastInsertId],
  ["SELECT @@identity", K.Select, F.UsesLastInsertId],
  ["SELECT @@session.LAST_INSERT_ID", K.Select, F.UsesLastInsertId],
  ["SELECT last_insert_id FROM t", K.Select, 0],
  ["SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10", K.Select, F.UsesFoundRows | F.HasLimit],
  ["SELECT FOUND_ROWS()", K.Select, F.UsesFoundRows],
  ["SELECT GET_LOCK('a', 10)", K.Select, F.UsesGetLock],
  ["DO RELEASE_LOCK('a')", K.Do, F.UsesGetLock],
  ["SELECT c INTO @x FROM t WHERE id=1", K.Select, F.SelectInto | F.UsesUserVariableAssignment | F.HasWhere],
  ["SELECT a, b INTO @x, @y FROM t", K.Select, F.SelectInto | F.UsesUserVariableAssignment],
  ["SELECT * FROM t INTO OUTFILE '/tmp/x'", K.Select, F.SelectInto],
  ["INSERT INTO t SELECT @x", K.Insert, F.ReadsUserVariable],
  ["GRANT SELECT ON db.* TO 'u'@'localhost'", K.Grant, 0],
  // WITH
  ["WITH x AS (SELECT id FROM t) SELECT * FROM x", K.Select, 0],
  ["WITH x AS (SELECT id FROM t WHERE a=1) UPDATE u SET b=1 WHERE id IN (SELECT id FROM x)", K.Update, F.HasWhere],
  ["WITH RECURSIVE x (n) AS (SELECT 1 UNION ALL SELECT n+1 FROM x WHERE n<5) DELETE FROM t WHERE id IN (SELECT n FROM x)", K.Delete, F.HasWhere],
  ["WITH x AS (SELECT 1) SELECT * FROM x FOR UPDATE", K.Select, F.ForUpdate],
  // DDL and the rest
  ["CREATE TEMPORARY TABLE tmp (a INT)", K.Create, F.TemporaryTable],
  ["CREATE OR REPLACE TEMPORARY TABLE tmp (a INT)", K.Create, F.TemporaryTable],
  ["DROP TEMPORARY TABLE IF EXISTS tmp", K.Drop, F.TemporaryTable],
  ["CREATE TABLE t (a INT) SELECT 1 AS a", K.Create, 0],
  ["DROP TABLE t", K.Drop, 0],
  ["ALTER TABLE t ADD COLUMN b INT", K.Alter, 0],
  ["TRUNCATE TABLE t", K.Truncate, 0],
  ["RENAME TABLE a TO b", K.Rename, 0],
  ["REVOKE ALL ON *.* FROM u", K.Revoke, 0],
  ["USE sbtest", K.Use, 0],
  ["SHOW TABLES", K.Show, 0],
  // the previous statement's diagnostics
  ["SHOW WARNINGS", K.Show, F.ReadsDiagnostics],
  ["show errors limit 5", K.Show, F.ReadsDiagnostics | F.HasLimit],
  ["SHOW COUNT(*) WARNINGS", K.Show, F.ReadsDiagnostics],
  ["SHOW COUNT ( * ) ERRORS", K.Show, F.ReadsDiagnostics],
  ["SELECT @@warning_count, @@session.error_count", K.Select, F.ReadsDiagnostics],
  ["SHOW COLUMNS FROM warnings", K.Show, 0],
  ["SHOW INDEX FROM t IN warnings", K.Show, 0],
  ["SELECT warnings FROM errors", K.Select, 0],
  ["SHOW TABLES; SHOW WARNINGS", K.Show, F.MultiStatement | F.ReadsDiagnostics],
  ["CALL p(1)", K.Call, 0],
  ["LOAD DATA LOCAL INFILE 'x' INTO TABLE t", K.Load, 0],
  ["LOCK TABLES t WRITE", K.Lock, 0],
  ["UNLOCK TABLES", K.Unlock, 0],
  ["XA START 'x'", K.Xa, 0],
  ["KILL QUERY 5", K.Kill, 0],
  ["PREPARE s FROM 'SELECT ?'", K.Prepare, 0],
  ["EXECUTE s USING @a", K.Execute, F.ReadsUserVariable],
  ["DEALLOCATE PREPARE s", K.Deallocate, 0],
  ["DROP PREPARE s", K.Deallocate, 0],
  ["HANDLER t OPEN", K.Handler, 0],
  ["EXPLAIN SELECT 1", K.Explain, 0],
  ["DESC t", K.Explain, 0],
  ["describe t", K.Explain, 0],
  ["FLUSH TABLES", K.Other, 0],
  ["BEGIN NOT ATOMIC SELECT 1; END", K.Other, F.MultiStatement],
  ["SELECT .5, t.a FROM t", K.Select, 0],
  ["TABLE t", K.Select, 0],
  ["", K.Other, 0],
  ["  /* only a comment */ ", K.Other, 0],
  // multi-statements: the first kind, every statement's flags
  ["SELECT 1; SELECT 2", K.Select, F.MultiStatement],
  ["SELECT 1;", K.Select, 0],
  ["SELECT 1 ;  -- end\n", K.Select, 0],
  ["UPDATE t SET a=1; SET autocommit=0", K.Update, F.MultiStatement | F.SetAutocommit, 0],
  ["SELECT 1; SELECT * FROM t FOR UPDATE", K.Select, F.MultiStatement | F.ForUpdate],
  // UPDATE/DELETE without a top-level WHERE
  ["UPDATE t SET a=(SELECT b FROM u WHERE id=1)", K.Update, 0],
  ["DELETE FROM t LIMIT 10", K.Delete, F.HasLimit],
  // literals of every shape
  ["SELECT X'4D', 0x4d, b'101', 0b101, .5, 1e10, 1.5E-3, N'x', _utf8mb4'y' FROM t WHERE a = ?", K.Select, F.HasWhere],
];

describe("classify", () => {
  it("has a table of at least 60 statements", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
  });

  // every row gets 4 cells (jest would take a missing 4th argument for a done callback)
  it.each(CASES.map(([sql, kind, flags, autocommit]) => [sql, kind, flags, autocommit ?? null] as const))("%s", (sql, kind, flags, autocommit) => {
    const r = classify(Buffer.from(sql, "utf8"));
    expect({ kind: r.kind, flags: r.flags }).toEqual({ kind, flags });
    if (autocommit !== null) expect(r.autocommit).toBe(autocommit);
  });

  it("classifies a view inside a larger buffer (COM_QUERY payload offsets)", () => {
    const buf = Buffer.from("\x03UPDATE t SET a=1 WHERE id=2garbage SELECT");
    const r = classify(buf, 1, buf.length - 15);
    expect(r.kind).toBe(K.Update);
    expect(r.flags).toBe(F.HasWhere);
  });

  it("reuses an out object", () => {
    const out = classify(Buffer.from("SELECT @a"));
    const again = classify(Buffer.from("/* mysqlgw:primary */ BEGIN"), 0, undefined, out);
    expect(again).toBe(out);
    expect(out).toEqual({ kind: K.Begin, flags: 0, autocommit: -1, hint: RouteHint.Primary, traceparentStart: -1, traceparentEnd: -1, skeleton: classify(Buffer.from("BEGIN")).skeleton });
  });
});

describe("hints", () => {
  it.each([
    ["/* mysqlgw:primary */ SELECT 1", RouteHint.Primary],
    ["SELECT /*mysqlgw:replica*/ 1", RouteHint.Replica],
    ["SELECT 1 /* MYSQLGW:Primary */", RouteHint.Primary],
    ["SELECT 1 /* mysqlgw:primaryx */", RouteHint.None],
    ["SELECT '/* mysqlgw:primary */'", RouteHint.None],
    ["SELECT 1 -- mysqlgw:primary\n", RouteHint.None],
    ["/*! mysqlgw:primary */ SELECT 1", RouteHint.None],
    ["/* mysqlgw:replica */ /* mysqlgw:primary */ SELECT 1", RouteHint.Replica],
  ])("%s", (sql, hint) => {
    expect(classify(Buffer.from(sql)).hint).toBe(hint);
  });

  it("returns the offsets of a sqlcommenter traceparent", () => {
    const tp = "00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01";
    const sql = `SELECT * FROM t /*action='run',traceparent='${tp}',tracestate='a%3Db'*/`;
    const buf = Buffer.from(sql);
    const r = classify(buf);
    expect(buf.toString("latin1", r.traceparentStart, r.traceparentEnd)).toBe(tp);
    expect(r.kind).toBe(K.Select);
  });

  it("ignores an unterminated traceparent value", () => {
    const r = classify(Buffer.from("SELECT 1 /*traceparent='00-abc*/"));
    expect(r.traceparentStart).toBe(-1);
  });
});
