/**
 * Session settings a multiplexed session carries from one backend connection
 * to the next: the assignments of a `SET` statement, read with the lexer,
 * sorted into those the gateway tracks and replays (sql_mode, time_zone,
 * names, …) and those it cannot (user variables, unknown variables), which
 * pin the session to its connection instead.
 *
 * Values are kept as the client wrote them (source text) and replayed as
 * `SET name = value`; an expression that reads other session state is
 * replayed as written, which is what the client asked for.
 */
import { Kw } from "./keywords";
import { Ch, Lexer, Token } from "./lexer";

/** Session variables whose value is replayed on a borrowed connection. */
export const TRACKED_VARIABLES: ReadonlySet<string> = new Set([
  "sql_mode",
  "time_zone",
  "character_set_client",
  "character_set_connection",
  "character_set_results",
  "collation_connection",
  "transaction_isolation",
  "tx_isolation",
  "transaction_read_only",
  "tx_read_only",
  "sql_select_limit",
  "max_statement_time",
  "max_execution_time",
  "group_concat_max_len",
  "sql_auto_is_null",
  "sql_safe_updates",
  "sql_big_selects",
  "sql_quote_show_create",
  "foreign_key_checks",
  "unique_checks",
  "innodb_lock_wait_timeout",
  "lock_wait_timeout",
  "lc_time_names",
  "lc_messages",
  "div_precision_increment",
  "net_read_timeout",
  "net_write_timeout",
  "wait_timeout",
  "interactive_timeout",
  "sql_notes",
  "sql_warnings",
  "session_track_system_variables",
  "session_track_schema",
  "session_track_state_change",
  "session_track_transaction_info",
  "optimizer_switch",
  "join_buffer_size",
  "sort_buffer_size",
  "tmp_table_size",
  "max_heap_table_size",
  "long_query_time",
  "default_storage_engine",
  "big_tables",
  "explicit_defaults_for_timestamp",
  "sql_log_bin",
]);

/** The key under which SET NAMES / SET CHARACTER SET is kept (replayed as written). */
export const NAMES_KEY = "names";

export interface SettingAssignment {
  /** Lower-case variable name, or NAMES_KEY. */
  name: string;
  /** Replay text: `sql_mode = 'ANSI'`, `NAMES utf8mb4 COLLATE utf8mb4_bin`. */
  sql: string;
}

/** What a SET statement does to session state. */
export interface SetAnalysis {
  /** Assignments the gateway replays (session scope). */
  tracked: SettingAssignment[];
  /** Why the session must stay on its connection (null: it need not). */
  pinReason: string | null;
  /** autocommit was assigned (its effect is read from the server's status flags). */
  autocommit: boolean;
  /** Only GLOBAL assignments: no session effect. */
  globalOnly: boolean;
}

const lexer = new Lexer();
const decoder = new TextDecoder();

const enum Scope {
  Session = 0,
  Global = 1,
}

/**
 * Analyses a SET statement in buf[start, end) (a COM_QUERY payload without
 * the command byte). Never throws; anything it does not understand pins.
 */
export function analyseSet(buf: Uint8Array, start = 0, end = buf.length): SetAnalysis {
  const out: SetAnalysis = { tracked: [], pinReason: null, autocommit: false, globalOnly: true };
  const lx = lexer;
  lx.reset(buf, start, end, null);
  try {
    if (lx.next() !== Token.Word || kwOf(lx) !== Kw.Set) return pin(out, "session-variable");
    let t = lx.next();
    if (t === Token.Word && kwOf(lx) === Kw.Statement) return pin(out, "set-statement"); // SET STATEMENT … FOR: runs as one statement
    const limit = end - start + 2;
    for (let guard = 0; guard < limit; guard++) {
      // one assignment: [scope] target [= value]
      let scope = Scope.Session;
      if (t === Token.Word && (lx.kw === Kw.Global || kwOf(lx) === Kw.Persist || kwOf(lx) === Kw.PersistOnly)) {
        scope = Scope.Global;
        t = lx.next();
      } else if (t === Token.Word && (lx.kw === Kw.Session || kwOf(lx) === Kw.Local)) {
        t = lx.next();
      }
      let name: string;
      if (t === Token.UserVar) return pin(out, "user-variable");
      if (t === Token.Word && (lx.kw === Kw.Names || kwOf(lx) === Kw.Charset || kwOf(lx) === Kw.Character)) {
        // NAMES x [COLLATE y] / CHARACTER SET x / CHARSET x: replayed as written, up to a top-level comma
        const from = lx.start;
        const stop = skipValue(lx);
        if (scope === Scope.Global) return pin(out, "session-variable");
        out.globalOnly = false;
        out.tracked.push({ name: NAMES_KEY, sql: text(buf, from, stop.end) });
        if (!stop.comma) return out;
        t = lx.next();
        continue;
      }
      if (t === Token.Word && kwOf(lx) === Kw.Transaction) return pin(out, "set-transaction");
      if (t === Token.SysVar) {
        const raw = text(buf, lx.start + 2, lx.stop).toLowerCase();
        const dot = raw.indexOf(".");
        const scopeName = dot >= 0 ? raw.slice(0, dot) : "";
        name = dot >= 0 ? raw.slice(dot + 1) : raw;
        if (scopeName === "global" || scopeName === "persist" || scopeName === "persist_only") scope = Scope.Global;
      } else if (t === Token.Word || t === Token.QuotedIdent) {
        name = identifier(buf, lx.start, lx.stop, t === Token.QuotedIdent).toLowerCase();
      } else {
        return pin(out, "session-variable");
      }
      t = lx.next();
      if (!(lx.isAssignOp() || (t === Token.Punct && lx.ch === Ch.Eq))) return pin(out, "session-variable");
      const valueStart = lx.pos;
      const stop = skipValue(lx);
      if (scope === Scope.Session) {
        out.globalOnly = false;
        if (name === "autocommit") out.autocommit = true;
        else if (TRACKED_VARIABLES.has(name)) out.tracked.push({ name, sql: `${name} = ${text(buf, valueStart, stop.end).trim()}` });
        else return pin(out, "session-variable");
      }
      if (!stop.comma) return out;
      t = lx.next();
    }
    return pin(out, "session-variable");
  } finally {
    lx.release();
  }
}

/** The current token's keyword (a call, so that TypeScript does not narrow the field across next()). */
function kwOf(lx: Lexer): Kw {
  return lx.kw;
}

function pin(out: SetAnalysis, reason: string): SetAnalysis {
  out.pinReason = reason;
  out.tracked.length = 0;
  out.globalOnly = false;
  return out;
}

/** Skips a value up to a top-level comma or the end (a `;` pins: the caller sees no comma and the end). */
function skipValue(lx: Lexer): { end: number; comma: boolean } {
  let depth = 0;
  let last = lx.stop;
  for (let guard = 0; guard < lx.end + 2; guard++) {
    lx.mark();
    const t = lx.next();
    if (t === Token.End) {
      lx.restore();
      return { end: last, comma: false };
    }
    if (t === Token.Punct) {
      if (lx.ch === Ch.LParen) depth++;
      else if (lx.ch === Ch.RParen && depth > 0) depth--;
      else if (lx.ch === Ch.Comma && depth === 0) return { end: last, comma: true };
      else if (lx.ch === Ch.Semicolon && depth === 0) return { end: last, comma: false };
    }
    last = lx.stop;
  }
  return { end: last, comma: false };
}

function text(buf: Uint8Array, start: number, end: number): string {
  return decoder.decode(buf.subarray(start, Math.max(start, end)));
}

function identifier(buf: Uint8Array, start: number, end: number, quoted: boolean): string {
  if (!quoted) return text(buf, start, end);
  return text(buf, start + 1, end - 1).replace(/``/g, "`");
}

/**
 * The database a `USE db` statement selects, or null when it is not one
 * (a multi-statement text is not: the caller pins instead).
 */
export function useStatementSchema(buf: Uint8Array, start = 0, end = buf.length): string | null {
  const lx = lexer;
  lx.reset(buf, start, end, null);
  try {
    if (lx.next() !== Token.Word || kwOf(lx) !== Kw.Use) return null;
    const t = lx.next();
    let name: string;
    if (t === Token.QuotedIdent) name = identifier(buf, lx.start, lx.stop, true);
    else if (t === Token.Word) name = text(buf, lx.start, lx.stop);
    else return null;
    const n = lx.next();
    if (n === Token.End || (n === Token.Punct && lx.ch === Ch.Semicolon && lx.next() === Token.End)) return name;
    return null;
  } finally {
    lx.release();
  }
}
