/**
 * What a statement is, as far as routing needs to know: the verb, and a bit
 * set of the facts that decide where it may run (locks, session state,
 * transaction control). Produced by `classify()` from the lexer alone.
 */

/** The statement's main verb. */
export const enum StatementKind {
  Other = 0, // anything not listed: ANALYZE, CHECK, FLUSH, START SLAVE, …
  Select = 1, // SELECT, (SELECT …) UNION …, WITH … SELECT, TABLE t, VALUES (…)
  Insert = 2,
  Update = 3,
  Delete = 4,
  Replace = 5,
  Begin = 6, // BEGIN [WORK] / START TRANSACTION [READ ONLY|READ WRITE|WITH CONSISTENT SNAPSHOT]
  Commit = 7,
  Rollback = 8, // ROLLBACK [WORK] (ends the transaction; ROLLBACK TO is Savepoint)
  Savepoint = 9, // SAVEPOINT x, ROLLBACK TO [SAVEPOINT] x, RELEASE SAVEPOINT x
  Set = 10,
  Use = 11,
  Show = 12,
  Call = 13,
  Load = 14, // LOAD DATA / LOAD XML
  Lock = 15, // LOCK TABLES / LOCK TABLE
  Unlock = 16, // UNLOCK TABLES
  Create = 17,
  Alter = 18,
  Drop = 19,
  Truncate = 20,
  Rename = 21,
  Grant = 22,
  Revoke = 23,
  Xa = 24,
  Kill = 25,
  Prepare = 26, // SQL-level PREPARE s FROM …
  Execute = 27, // SQL-level EXECUTE s [USING …]
  Deallocate = 28, // DEALLOCATE PREPARE s / DROP PREPARE s
  Do = 29,
  Handler = 30,
  Explain = 31, // EXPLAIN / DESCRIBE / DESC
}

/** Facts about a statement (bit set). */
export const enum StatementFlags {
  None = 0,
  ForUpdate = 0x1, // … FOR UPDATE
  LockInShareMode = 0x2, // … LOCK IN SHARE MODE
  ForShare = 0x4, // … FOR SHARE (MySQL 8)
  SelectInto = 0x8, // SELECT … INTO OUTFILE|DUMPFILE|@var|local var
  UsesUserVariableAssignment = 0x10, // @x := …, SET @x = …, SELECT … INTO @x
  ReadsUserVariable = 0x20, // @x anywhere else
  UsesLastInsertId = 0x40, // LAST_INSERT_ID(), @@last_insert_id, @@identity
  UsesFoundRows = 0x80, // FOUND_ROWS(), SQL_CALC_FOUND_ROWS, ROW_COUNT()
  UsesGetLock = 0x100, // GET_LOCK, RELEASE_LOCK, RELEASE_ALL_LOCKS, IS_USED_LOCK, IS_FREE_LOCK
  TemporaryTable = 0x200, // CREATE [OR REPLACE] TEMPORARY TABLE / DROP TEMPORARY TABLE
  SetAutocommit = 0x400, // SET [SESSION|@@[session.]]autocommit = v; the value is in `autocommit`
  SetTransaction = 0x800, // SET [SESSION|GLOBAL] TRANSACTION …
  SetNames = 0x1000, // SET NAMES … / SET CHARACTER SET … / SET CHARSET …
  MultiStatement = 0x2000, // a `;` followed by more statement text
  HasWhere = 0x4000, // a WHERE outside parentheses
  HasLimit = 0x8000, // a LIMIT outside parentheses
  ReadOnlyTransaction = 0x10000, // START TRANSACTION READ ONLY
  SetOther = 0x20000, // SET of a variable none of the above covers (session state the gateway does not track)
  ReadsDiagnostics = 0x40000, // SHOW WARNINGS|ERRORS, SHOW COUNT(*) WARNINGS|ERRORS, @@warning_count, @@error_count: the previous statement's diagnostics
}

/** A routing hint found in a comment. */
export const enum RouteHint {
  None = 0,
  Primary = 1, // /* mysqlgw:primary */
  Replica = 2, // /* mysqlgw:replica */
}

/** What `classify()` returns. Offsets are into the bytes given to it. */
export interface Classification {
  kind: StatementKind;
  /** StatementFlags bits. */
  flags: number;
  /** With SetAutocommit: the value set (0 or 1); -1 otherwise or when it is an expression. */
  autocommit: number;
  hint: RouteHint;
  /** A sqlcommenter `traceparent='…'` value: [start, end) of the text between the quotes, or -1. */
  traceparentStart: number;
  traceparentEnd: number;
  /**
   * A 53-bit hash of the statement's token stream with literal values left
   * out (their kind kept): statements with the same skeleton have the same
   * digest, so a digest can be looked up by it instead of computed again
   * (observe/digest-cache.ts). -1 when the text was not read to its end.
   */
  skeleton: number;
}

export function createClassification(): Classification {
  return { kind: StatementKind.Other, flags: 0, autocommit: -1, hint: RouteHint.None, traceparentStart: -1, traceparentEnd: -1, skeleton: -1 };
}
