/**
 * Keyword recognition for the statement lexer: a word's bytes are hashed while
 * it is scanned (upper-cased), then looked up in a small open-addressing
 * table, so no string is made for any word. Keywords the classifier acts on
 * have their own id; the others (`Kw.Generic`) only matter to the digest,
 * which upper-cases every keyword.
 */

/** Keywords the classifier acts on. */
export const enum Kw {
  None = 0,
  Generic = 1, // a keyword the classifier ignores (upper-cased in digests)
  Select, Insert, Update, Delete, Replace, Begin, Start, Transaction, Commit, Rollback,
  Savepoint, Release, Set, Use, Show, Call, Load, Lock, Unlock, Create, Alter, Drop,
  Truncate, Rename, Grant, Revoke, Xa, Kill, Prepare, Execute, Deallocate, Do, Handler,
  Explain, Describe, Desc, With, Table, Values, Value, For, Share, In, Mode, Into,
  Outfile, Dumpfile, LastInsertId, FoundRows, SqlCalcFoundRows, RowCount, GetLock,
  ReleaseLock, ReleaseAllLocks, IsUsedLock, IsFreeLock, Temporary, Or, Autocommit, Names,
  Character, Charset, Where, Limit, Read, Only, Write, Session, Global, Local, Persist,
  PersistOnly, To, Work, True, False, On, Off, Statement, Null,
}

const CLASSIFIER_KEYWORDS: ReadonlyArray<readonly [string, Kw]> = [
  ["SELECT", Kw.Select], ["INSERT", Kw.Insert], ["UPDATE", Kw.Update], ["DELETE", Kw.Delete],
  ["REPLACE", Kw.Replace], ["BEGIN", Kw.Begin], ["START", Kw.Start], ["TRANSACTION", Kw.Transaction],
  ["COMMIT", Kw.Commit], ["ROLLBACK", Kw.Rollback], ["SAVEPOINT", Kw.Savepoint], ["RELEASE", Kw.Release],
  ["SET", Kw.Set], ["USE", Kw.Use], ["SHOW", Kw.Show], ["CALL", Kw.Call], ["LOAD", Kw.Load],
  ["LOCK", Kw.Lock], ["UNLOCK", Kw.Unlock], ["CREATE", Kw.Create], ["ALTER", Kw.Alter], ["DROP", Kw.Drop],
  ["TRUNCATE", Kw.Truncate], ["RENAME", Kw.Rename], ["GRANT", Kw.Grant], ["REVOKE", Kw.Revoke],
  ["XA", Kw.Xa], ["KILL", Kw.Kill], ["PREPARE", Kw.Prepare], ["EXECUTE", Kw.Execute],
  ["DEALLOCATE", Kw.Deallocate], ["DO", Kw.Do], ["HANDLER", Kw.Handler], ["EXPLAIN", Kw.Explain],
  ["DESCRIBE", Kw.Describe], ["DESC", Kw.Desc], ["WITH", Kw.With], ["TABLE", Kw.Table],
  ["VALUES", Kw.Values], ["VALUE", Kw.Value], ["FOR", Kw.For], ["SHARE", Kw.Share], ["IN", Kw.In],
  ["MODE", Kw.Mode], ["INTO", Kw.Into], ["OUTFILE", Kw.Outfile], ["DUMPFILE", Kw.Dumpfile],
  ["LAST_INSERT_ID", Kw.LastInsertId], ["FOUND_ROWS", Kw.FoundRows],
  ["SQL_CALC_FOUND_ROWS", Kw.SqlCalcFoundRows], ["ROW_COUNT", Kw.RowCount], ["GET_LOCK", Kw.GetLock],
  ["RELEASE_LOCK", Kw.ReleaseLock], ["RELEASE_ALL_LOCKS", Kw.ReleaseAllLocks],
  ["IS_USED_LOCK", Kw.IsUsedLock], ["IS_FREE_LOCK", Kw.IsFreeLock], ["TEMPORARY", Kw.Temporary],
  ["OR", Kw.Or], ["AUTOCOMMIT", Kw.Autocommit], ["NAMES", Kw.Names], ["CHARACTER", Kw.Character],
  ["CHARSET", Kw.Charset], ["WHERE", Kw.Where], ["LIMIT", Kw.Limit], ["READ", Kw.Read],
  ["ONLY", Kw.Only], ["WRITE", Kw.Write], ["SESSION", Kw.Session], ["GLOBAL", Kw.Global],
  ["LOCAL", Kw.Local], ["PERSIST", Kw.Persist], ["PERSIST_ONLY", Kw.PersistOnly], ["TO", Kw.To],
  ["WORK", Kw.Work], ["TRUE", Kw.True], ["FALSE", Kw.False], ["ON", Kw.On], ["OFF", Kw.Off],
  ["STATEMENT", Kw.Statement], ["NULL", Kw.Null],
];

/** Other reserved words and common functions: upper-cased in digests, ignored by the classifier. */
const GENERIC_KEYWORDS =
  "ADD ALL AND ANY AS ASC AVG BETWEEN BINARY BY CASE CAST COALESCE COLLATE COLUMN CONCAT " +
  "CONSTRAINT CONVERT COUNT CROSS CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DATABASE " +
  "DEFAULT DELAYED DISTINCT DISTINCTROW DIV DUPLICATE ELSE END ENGINE ESCAPE EXISTS FOREIGN FROM " +
  "FULL FUNCTION GROUP HAVING HIGH_PRIORITY IF IFNULL IGNORE INDEX INNER INTERVAL IS ISOLATION JOIN " +
  "KEY LATERAL LEFT LEVEL LIKE LOW_PRIORITY MAX MIN MOD NATURAL NOT NOW NOWAIT OFFSET ORDER OUTER " +
  "OVER PARTITION PRIMARY PROCEDURE QUICK RECURSIVE REFERENCES REGEXP RIGHT RLIKE ROW ROWS SCHEMA " +
  "SKIP SOUNDS SQL_BUFFER_RESULT SQL_CACHE SQL_NO_CACHE SQL_SMALL_RESULT SQL_BIG_RESULT " +
  "STRAIGHT_JOIN SUM THEN TRIGGER UNION UNIQUE USING VIEW WAIT WHEN WINDOW XOR COMMITTED " +
  "UNCOMMITTED REPEATABLE SERIALIZABLE CONSISTENT SNAPSHOT CHAIN NO TABLES DATA INFILE " +
  "LOW_PRIORITY CONCURRENT PRIVILEGES USER";

const MAX_KEYWORD_LENGTH = 24;
const TABLE_SIZE = 1024; // power of two, > 4× the keyword count
const MASK = TABLE_SIZE - 1;

/** Upper-cases an ASCII letter; other bytes unchanged. */
export function upperByte(c: number): number {
  return c >= 0x61 && c <= 0x7a ? c - 0x20 : c;
}

/** FNV-1a 32 step over an upper-cased byte (the lexer inlines the same). */
export function hashStep(h: number, upper: number): number {
  return Math.imul(h ^ upper, 0x01000193);
}
export const HASH_SEED = 0x811c9dc5 | 0;

const slots = new Int16Array(TABLE_SIZE); // index+1 into the arrays below; 0 = empty
const ids: Kw[] = [];
const offsets: number[] = [];
const lengths: number[] = [];
const bytes = new Uint8Array(4096);
let used = 0;

function add(name: string, id: Kw): void {
  let h = HASH_SEED;
  for (let i = 0; i < name.length; i++) h = hashStep(h, name.charCodeAt(i));
  for (let i = 0; i < name.length; i++) bytes[used + i] = name.charCodeAt(i);
  const index = ids.length;
  ids.push(id);
  offsets.push(used);
  lengths.push(name.length);
  used += name.length;
  let slot = (h ^ (h >>> 16)) & MASK;
  for (let probe = 0; probe < TABLE_SIZE && slots[slot] !== 0; probe++) slot = (slot + 1) & MASK;
  slots[slot] = index + 1;
}

/**
 * The keyword id of the word buf[start, end) whose upper-cased FNV-1a 32 hash is
 * `h`, or Kw.None. Case-insensitive; never reads outside [start, end).
 */
export function lookupKeyword(buf: Uint8Array, start: number, end: number, h: number): Kw {
  const len = end - start;
  if (len <= 0 || len > MAX_KEYWORD_LENGTH) return Kw.None;
  let slot = (h ^ (h >>> 16)) & MASK;
  for (let probe = 0; probe < TABLE_SIZE; probe++) {
    const entry = slots[slot];
    if (entry === 0) return Kw.None;
    const index = entry - 1;
    if (lengths[index] === len) {
      const off = offsets[index];
      let i = 0;
      while (i < len && upperByte(buf[start + i]) === bytes[off + i]) i++;
      if (i === len) return ids[index];
    }
    slot = (slot + 1) & MASK;
  }
  return Kw.None;
}

const seen = new Set<string>();
for (const [name, id] of CLASSIFIER_KEYWORDS) {
  seen.add(name);
  add(name, id);
}
for (const name of GENERIC_KEYWORDS.split(" ")) {
  if (name.length > 0 && !seen.has(name)) {
    seen.add(name);
    add(name, Kw.Generic);
  }
}
