import { classify } from "./classify";
import { createSessionRouteState, decideRoute, ListenerMode, listenerModeOf, RouteTarget, routeTargetName, type SessionRouteState } from "./decide";
import type { RuleAction } from "./rules";

const P = RouteTarget.Primary;
const R = RouteTarget.Replica;
const SPLIT = ListenerMode.Split;

function route(mode: ListenerMode, sql: string, session: Partial<SessionRouteState> = {}, rule: RuleAction | null = null) {
  return decideRoute(mode, classify(Buffer.from(sql)), { ...createSessionRouteState(), ...session }, rule);
}

function action(name: string, r: RuleAction["route"]): RuleAction {
  return { rule: name, route: r, deny: null, rewrite: null, mirror: null, cache: null };
}

const USERVARS = { userVariablesSet: true };
const LAST_REPLICA = { lastTarget: R };
const LAST_PRIMARY = { lastTarget: P };

// [statement, session before it, target, reason] on a SPLIT listener, no rule
const SPLIT_CASES: Array<[string, Partial<SessionRouteState>, RouteTarget, string]> = [
  // reads
  ["SELECT c FROM sbtest1 WHERE id=5023", {}, R, "read"],
  ["select 1", {}, R, "read"],
  ["(SELECT a FROM t) UNION (SELECT a FROM u)", {}, R, "read"],
  ["WITH x AS (SELECT 1) SELECT * FROM x", {}, R, "read"],
  ["TABLE t", {}, R, "read"],
  ["SHOW TABLES", {}, R, "read"],
  ["SHOW CREATE TABLE t", {}, R, "read"],
  ["DESCRIBE t", {}, R, "read"],
  ["EXPLAIN SELECT * FROM t", {}, R, "read"],
  ["EXPLAIN UPDATE t SET a=1", {}, R, "read"],
  ["SELECT @a", {}, R, "read"], // no variable set in this session: NULL anywhere
  ["SELECT @@version, @@session.sql_mode", {}, R, "read"],
  ["SET STATEMENT max_statement_time=1 FOR SELECT c FROM t", {}, R, "read"],
  // writes, DDL and the rest
  ["INSERT INTO t VALUES (1)", {}, P, "write"],
  ["UPDATE t SET a=1 WHERE id=2", {}, P, "write"],
  ["DELETE FROM t WHERE id=2", {}, P, "write"],
  ["REPLACE INTO t VALUES (1)", {}, P, "write"],
  ["INSERT INTO t SELECT * FROM u", {}, P, "write"],
  ["WITH x AS (SELECT 1) UPDATE t SET a=1", {}, P, "write"],
  ["CREATE TABLE t (a INT)", {}, P, "write"],
  ["ALTER TABLE t ADD b INT", {}, P, "write"],
  ["DROP TABLE t", {}, P, "write"],
  ["TRUNCATE t", {}, P, "write"],
  ["RENAME TABLE a TO b", {}, P, "write"],
  ["GRANT SELECT ON db.* TO u", {}, P, "write"],
  ["REVOKE SELECT ON db.* FROM u", {}, P, "write"],
  ["CALL p()", {}, P, "write"],
  ["LOAD DATA LOCAL INFILE 'x' INTO TABLE t", {}, P, "write"],
  ["LOCK TABLES t READ", {}, P, "write"],
  ["UNLOCK TABLES", {}, P, "write"],
  ["KILL QUERY 5", {}, P, "write"],
  ["DO SLEEP(1)", {}, P, "write"], // DO runs for its side effects
  ["FLUSH TABLES", {}, P, "write"],
  ["ANALYZE TABLE t", {}, P, "write"],
  ["", {}, P, "write"],
  // transaction control
  ["BEGIN", {}, P, "transaction-control"],
  ["START TRANSACTION", {}, P, "transaction-control"],
  ["START TRANSACTION READ ONLY", {}, P, "transaction-control"],
  ["COMMIT", {}, P, "transaction-control"],
  ["ROLLBACK", {}, P, "transaction-control"],
  ["XA START 'x'", {}, P, "transaction-control"],
  ["SAVEPOINT a", {}, P, "transaction-control"],
  // session state
  ["SET autocommit=0", {}, P, "session-state"],
  ["SET NAMES utf8mb4", {}, P, "session-state"],
  ["SET time_zone='+00:00'", {}, P, "session-state"],
  ["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", {}, P, "session-state"],
  ["USE db", {}, P, "session-state"],
  ["PREPARE s FROM 'SELECT 1'", {}, P, "session-state"],
  ["EXECUTE s", {}, P, "session-state"],
  ["DEALLOCATE PREPARE s", {}, P, "session-state"],
  ["HANDLER t OPEN", {}, P, "session-state"],
  // locking reads and functions with session state
  ["SELECT * FROM t WHERE id=1 FOR UPDATE", {}, P, "for-update"],
  ["SELECT * FROM t WHERE id=1 LOCK IN SHARE MODE", {}, P, "lock-in-share-mode"],
  ["SELECT * FROM t WHERE id=1 FOR SHARE", {}, P, "for-share"],
  ["SELECT GET_LOCK('a', 1)", {}, P, "get-lock"],
  ["SELECT RELEASE_LOCK('a')", {}, P, "get-lock"],
  ["DO RELEASE_ALL_LOCKS()", {}, P, "get-lock"],
  ["SELECT IS_FREE_LOCK('a')", {}, P, "get-lock"],
  ["SELECT LAST_INSERT_ID()", {}, P, "last-insert-id"],
  ["SELECT LAST_INSERT_ID()", LAST_REPLICA, P, "last-insert-id"], // the insert ran on the primary whatever ran since
  ["SELECT @@identity", {}, P, "last-insert-id"],
  ["SELECT * FROM t INTO OUTFILE '/tmp/x'", {}, P, "select-into"],
  ["SELECT a INTO @x FROM t", {}, P, "select-into"],
  ["CREATE TEMPORARY TABLE tmp (a INT)", {}, P, "temporary-table"],
  ["DROP TEMPORARY TABLE tmp", {}, P, "temporary-table"],
  ["SELECT * FROM tmp", { temporaryTables: true }, P, "temporary-table"],
  ["SHOW COLUMNS FROM tmp", { temporaryTables: true }, P, "temporary-table"],
  // user variables: set on the primary, read there once set
  ["SET @x = 1", {}, P, "user-variable"],
  ["SELECT @x := MAX(id) FROM t", {}, P, "user-variable"],
  ["SELECT @x", USERVARS, P, "user-variable"],
  ["SELECT * FROM t WHERE id = @x", USERVARS, P, "user-variable"],
  ["SELECT c FROM t WHERE id=1", USERVARS, R, "read"], // reads no variable
  // the previous statement's state: where it ran
  ["SHOW WARNINGS", LAST_REPLICA, R, "previous-statement"],
  ["SHOW WARNINGS", LAST_PRIMARY, P, "previous-statement"],
  ["SHOW ERRORS", {}, P, "previous-statement"], // no previous statement: primary
  ["SHOW COUNT(*) WARNINGS", LAST_REPLICA, R, "previous-statement"],
  ["SELECT @@warning_count", LAST_REPLICA, R, "previous-statement"],
  ["SELECT @@session.error_count", LAST_PRIMARY, P, "previous-statement"],
  ["SELECT FOUND_ROWS()", LAST_REPLICA, R, "found-rows"],
  ["SELECT FOUND_ROWS()", {}, P, "found-rows"],
  ["SELECT ROW_COUNT()", LAST_PRIMARY, P, "found-rows"],
  ["SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 5", LAST_REPLICA, R, "found-rows"],
  // several statements: only the first one's kind is known
  ["SELECT 1; SELECT 2", {}, P, "multi-statement"],
  ["SELECT 1; DELETE FROM t", {}, P, "multi-statement"],
  // hints (outside a transaction) override the split
  ["/* mysqlgw:primary */ SELECT c FROM t", {}, P, "hint:primary"],
  ["SELECT /* mysqlgw:replica */ c FROM t FOR UPDATE", {}, R, "hint:replica"],
  ["/* mysqlgw:replica */ SHOW WARNINGS", LAST_PRIMARY, R, "hint:replica"],
  ["/* mysqlgw:primary */ SET @x=1", {}, P, "hint:primary"],
  // inside a transaction: where it runs, whatever the statement
  ["SELECT c FROM t WHERE id=1", { inTransaction: true, lastTarget: P }, P, "in-transaction"],
  ["SELECT c FROM t WHERE id=1", { inTransaction: true }, P, "in-transaction"],
  ["COMMIT", { inTransaction: true, lastTarget: P }, P, "in-transaction"],
  ["SELECT c FROM t", { inTransaction: true, readOnlyTransaction: true, lastTarget: R }, R, "in-transaction"], // begun on a replica by a hint
  ["COMMIT", { inTransaction: true, lastTarget: R }, R, "in-transaction"],
  ["SHOW WARNINGS", { inTransaction: true, lastTarget: P }, P, "in-transaction"],
  // autocommit off: everything is in a transaction, on the primary
  ["SELECT c FROM t WHERE id=1", { autocommit: false }, P, "autocommit-off"],
  ["SELECT c FROM t WHERE id=1", { autocommit: false, lastTarget: R }, P, "autocommit-off"],
  ["SET autocommit=1", { autocommit: false }, P, "autocommit-off"],
  ["SELECT c FROM t", { autocommit: false, inTransaction: true, lastTarget: P }, P, "in-transaction"],
];

describe("decideRoute on a SPLIT listener", () => {
  it("has a table of at least 90 statements", () => {
    expect(SPLIT_CASES.length).toBeGreaterThanOrEqual(90);
  });

  it.each(SPLIT_CASES.map(([sql, s, t, reason]) => [sql, JSON.stringify(s), t, reason, s] as const))("%s %s → %s %s", (sql, _label, target, reason, session) => {
    const d = route(SPLIT, sql, session);
    expect({ target: routeTargetName(d.target), reason: d.reason, cluster: d.cluster, rule: d.rule }).toEqual({ target: routeTargetName(target), reason, cluster: null, rule: null });
  });

  it("names the hint it ignores inside a transaction or with autocommit off", () => {
    expect(route(SPLIT, "/* mysqlgw:replica */ SELECT 1", { inTransaction: true, lastTarget: P })).toMatchObject({ target: P, reason: "in-transaction", ignored: "hint:replica" });
    expect(route(SPLIT, "/* mysqlgw:replica */ SELECT 1", { autocommit: false })).toMatchObject({ target: P, reason: "autocommit-off", ignored: "hint:replica" });
    expect(route(SPLIT, "/* mysqlgw:primary */ SELECT 1", { inTransaction: true, lastTarget: R })).toMatchObject({ target: R, reason: "in-transaction", ignored: "hint:primary" });
    expect(route(SPLIT, "SELECT 1", { inTransaction: true, lastTarget: P }).ignored).toBeNull();
  });

  it("follows the transaction's cluster", () => {
    expect(route(SPLIT, "UPDATE t SET a=1", { inTransaction: true, lastTarget: P, lastCluster: "reports" })).toEqual({ target: P, cluster: "reports", reason: "in-transaction", rule: null, ignored: null });
  });

  it("allocates nothing without a rule: the same frozen decision each time", () => {
    const a = route(SPLIT, "SELECT 1");
    expect(route(SPLIT, "SELECT 2")).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    const t = route(SPLIT, "/* mysqlgw:replica */ SELECT 1", { inTransaction: true, lastTarget: P });
    expect(route(SPLIT, "/* mysqlgw:replica */ SELECT 2", { inTransaction: true, lastTarget: P })).toBe(t);
  });
});

describe("decideRoute on READ_WRITE and READ_ONLY listeners", () => {
  it.each([
    ["SELECT 1", {}],
    ["UPDATE t SET a=1", {}],
    ["SELECT * FROM t FOR UPDATE", {}],
    ["BEGIN", {}],
    ["SHOW WARNINGS", LAST_REPLICA],
  ] as Array<[string, Partial<SessionRouteState>]>)("%s", (sql, session) => {
    expect(route(ListenerMode.ReadWrite, sql, session)).toMatchObject({ target: P, reason: "listener-read-write", ignored: null });
    expect(route(ListenerMode.ReadOnly, sql, session)).toMatchObject({ target: R, reason: "listener-read-only", ignored: null });
  });

  it("keeps to the role whatever the hint, and says so", () => {
    expect(route(ListenerMode.ReadWrite, "/* mysqlgw:replica */ SELECT 1")).toMatchObject({ target: P, reason: "listener-read-write", ignored: "hint:replica" });
    expect(route(ListenerMode.ReadOnly, "/* mysqlgw:primary */ SELECT 1")).toMatchObject({ target: R, reason: "listener-read-only", ignored: "hint:primary" });
  });

  it("keeps a transaction where it runs: the replica on READ_ONLY", () => {
    expect(route(ListenerMode.ReadOnly, "SELECT 1", { inTransaction: true, lastTarget: R })).toMatchObject({ target: R, reason: "in-transaction" });
    expect(route(ListenerMode.ReadOnly, "SELECT 1", { autocommit: false })).toMatchObject({ target: R, reason: "autocommit-off" });
    expect(route(ListenerMode.ReadWrite, "SELECT 1", { autocommit: false })).toMatchObject({ target: P, reason: "autocommit-off" });
  });

  it("maps proto ListenerRole values (UNSPECIFIED is READ_WRITE)", () => {
    expect([0, 1, 2, 3, 99].map(listenerModeOf)).toEqual([ListenerMode.ReadWrite, ListenerMode.ReadWrite, ListenerMode.ReadOnly, ListenerMode.Split, ListenerMode.ReadWrite]);
  });
});

describe("decideRoute with a rule", () => {
  const toReplica = action("reports", { cluster: null, target: R });
  const toCluster = action("archive", { cluster: "archive", target: null });
  const both = action("analytics", { cluster: "olap", target: P });
  const noRoute = action("cache-it", null);

  it("a rule's target overrides the listener's choice and the statement's needs", () => {
    expect(route(SPLIT, "UPDATE t SET a=1", {}, toReplica)).toEqual({ target: R, cluster: null, reason: "rule:reports", rule: "reports", ignored: null });
    expect(route(ListenerMode.ReadWrite, "SELECT 1", {}, toReplica)).toEqual({ target: R, cluster: null, reason: "rule:reports", rule: "reports", ignored: null });
    expect(route(ListenerMode.ReadOnly, "SELECT 1", {}, both)).toEqual({ target: P, cluster: "olap", reason: "rule:analytics", rule: "analytics", ignored: null });
  });

  it("a rule wins over a hint, and names the hint", () => {
    expect(route(SPLIT, "/* mysqlgw:primary */ SELECT 1", {}, toReplica)).toMatchObject({ target: R, reason: "rule:reports", ignored: "hint:primary" });
  });

  it("a rule with only a cluster keeps the listener's target and reason", () => {
    expect(route(SPLIT, "SELECT 1", {}, toCluster)).toEqual({ target: R, cluster: "archive", reason: "read", rule: "archive", ignored: null });
    expect(route(SPLIT, "INSERT INTO t VALUES (1)", {}, toCluster)).toEqual({ target: P, cluster: "archive", reason: "write", rule: "archive", ignored: null });
    expect(route(SPLIT, "/* mysqlgw:primary */ SELECT 1", {}, toCluster)).toEqual({ target: P, cluster: "archive", reason: "hint:primary", rule: "archive", ignored: null });
    expect(route(ListenerMode.ReadWrite, "/* mysqlgw:replica */ SELECT 1", {}, toCluster)).toEqual({ target: P, cluster: "archive", reason: "listener-read-write", rule: "archive", ignored: "hint:replica" });
  });

  it("a rule without a route leaves the decision alone but is named", () => {
    expect(route(SPLIT, "SELECT 1", {}, noRoute)).toEqual({ target: R, cluster: null, reason: "read", rule: "cache-it", ignored: null });
  });

  it("inside a transaction a rule's route is ignored (transaction safety)", () => {
    expect(route(SPLIT, "SELECT 1", { inTransaction: true, lastTarget: P }, toReplica)).toEqual({ target: P, cluster: null, reason: "in-transaction", rule: "reports", ignored: "rule:reports" });
    expect(route(SPLIT, "SELECT 1", { autocommit: false }, both)).toEqual({ target: P, cluster: null, reason: "autocommit-off", rule: "analytics", ignored: "rule:analytics" });
    expect(route(SPLIT, "SELECT 1", { inTransaction: true, lastTarget: P }, noRoute)).toEqual({ target: P, cluster: null, reason: "in-transaction", rule: "cache-it", ignored: null });
  });
});
