/**
 * Statement classification from the lexer alone (no parse): the verb, the
 * routing-relevant flags and the comment hints of a COM_QUERY text, read
 * straight from the payload bytes. One pass, no strings, one result object
 * (or none when `out` is given). Pure; never throws on any bytes.
 *
 * The kind is the first statement's; with several statements
 * (MultiStatement) the flags are the union over all of them, so a later
 * `SET autocommit=0` or `FOR UPDATE` is not missed.
 */
import { Kw } from "./keywords";
import { Ch, Lexer, Token } from "./lexer";
import { type Classification, createClassification, RouteHint, StatementFlags as F, StatementKind as K } from "./statement-kind";

const lexer = new Lexer();

/** Where a SET statement's assignment list is. */
const enum SetState {
  Off = 0, // not in a SET assignment list
  Target = 1, // expecting a variable name (or NAMES, TRANSACTION, …)
  Assign = 2, // expecting = or :=
  Value = 3, // the first token of the value
  Expr = 4, // the rest of the value, up to a top-level comma
  Skip = 5, // the rest of the statement is not assignments (SET TRANSACTION …)
}

/** The kind of a statement from its first keyword (WITH and ambiguous verbs are refined later). */
function kindOf(kw: Kw): K {
  switch (kw) {
    case Kw.Select: case Kw.Table: case Kw.Values: return K.Select;
    case Kw.Insert: return K.Insert;
    case Kw.Update: return K.Update;
    case Kw.Delete: return K.Delete;
    case Kw.Replace: return K.Replace;
    case Kw.Begin: return K.Begin;
    case Kw.Commit: return K.Commit;
    case Kw.Rollback: return K.Rollback;
    case Kw.Savepoint: case Kw.Release: return K.Savepoint;
    case Kw.Set: return K.Set;
    case Kw.Use: return K.Use;
    case Kw.Show: return K.Show;
    case Kw.Call: return K.Call;
    case Kw.Load: return K.Load;
    case Kw.Lock: return K.Lock;
    case Kw.Unlock: return K.Unlock;
    case Kw.Create: return K.Create;
    case Kw.Alter: return K.Alter;
    case Kw.Drop: return K.Drop;
    case Kw.Truncate: return K.Truncate;
    case Kw.Rename: return K.Rename;
    case Kw.Grant: return K.Grant;
    case Kw.Revoke: return K.Revoke;
    case Kw.Xa: return K.Xa;
    case Kw.Kill: return K.Kill;
    case Kw.Prepare: return K.Prepare;
    case Kw.Execute: return K.Execute;
    case Kw.Deallocate: return K.Deallocate;
    case Kw.Do: return K.Do;
    case Kw.Handler: return K.Handler;
    case Kw.Explain: case Kw.Describe: case Kw.Desc: return K.Explain;
    default: return K.Other;
  }
}

function isDmlVerb(kw: Kw): boolean {
  return kw === Kw.Select || kw === Kw.Insert || kw === Kw.Update || kw === Kw.Delete || kw === Kw.Replace;
}

/** Whether buf[start, end) equals the lower-case ASCII `name`, case-insensitively. */
function equalsCi(buf: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    const c = buf[start + i];
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== name.charCodeAt(i)) return false; // only letters fold: '_' | 0x20 is DEL
  }
  return true;
}

/** The start of a system variable's name after `@@` and an optional `session.`/`global.`/`local.` scope. */
function sysVarNameStart(buf: Uint8Array, start: number, end: number): number {
  const s = start + 2;
  for (let i = s; i < end; i++) if (buf[i] === Ch.Dot) return i + 1;
  return s;
}

/**
 * Classifies the statement in bytes[start, end) (a COM_QUERY payload without
 * its command byte). `out`, when given, is overwritten and returned. The
 * result's offsets point into `bytes`.
 */
export function classify(bytes: Uint8Array, start = 0, end = bytes.length, out: Classification = createClassification()): Classification {
  out.kind = K.Other;
  out.flags = 0;
  out.autocommit = -1;
  out.hint = RouteHint.None;
  out.traceparentStart = -1;
  out.traceparentEnd = -1;
  out.skeleton = -1;
  const lx = lexer;
  lx.reset(bytes, start, end, out);
  let flags = 0;
  let kind = K.Other; // the current statement's kind
  let stmt = 0; // which statement of a multi-statement text (the first one's kind is the result's)
  let index = 0; // significant tokens seen in the current statement (leading parentheses excluded)
  let firstKw = Kw.None;
  let depth = 0;
  let prevKw = Kw.None;
  let prev2Kw = Kw.None;
  let withPending = false; // WITH …: the main verb is not seen yet
  let afterSemicolon = false;
  let pendingVar = false; // a user variable whose next token says read or assignment
  let pendingFn = 0; // a flag that applies if the next token is `(`
  let intoState = 0; // 1: after SELECT … INTO; 2: in its variable list
  let setState = SetState.Off;
  let setAutocommit = false; // the current SET target is autocommit
  let setStatement = false; // MariaDB SET STATEMENT … FOR <statement>
  let showCount = false; // SHOW COUNT(*) …: WARNINGS/ERRORS may follow the parenthesis
  const limit = end - start + 2;
  // the skeleton: two 32-bit multiplicative hashes over every token's kind and, but for literals, its bytes
  let h1 = 0x811c9dc5;
  let h2 = 0x3c6ef372;
  let ended = false;
  const buf = lx.buf;
  for (let guard = 0; guard < limit; guard++) {
    const t = lx.next();
    if (t === Token.End) {
      ended = true;
      break;
    }
    h1 = Math.imul(h1 ^ (t + 0x100), 0x01000193);
    h2 = Math.imul(h2 ^ (t + 0x100), 0x5bd1e995);
    if (t < Token.String || t > Token.Placeholder) {
      for (let i = lx.start; i < lx.stop; i++) {
        const b = buf[i];
        h1 = Math.imul(h1 ^ b, 0x01000193);
        h2 = Math.imul(h2 ^ b, 0x5bd1e995);
      }
    }
    const kw = t === Token.Word ? lx.kw : Kw.None;
    const isPunct = t === Token.Punct;
    const ch = lx.ch;
    if (afterSemicolon && !(isPunct && ch === Ch.Semicolon)) {
      flags |= F.MultiStatement;
      afterSemicolon = false;
    }
    if (pendingVar) {
      flags |= lx.isAssignOp() ? F.UsesUserVariableAssignment : F.ReadsUserVariable;
      pendingVar = false;
    }
    if (pendingFn !== 0) {
      if (isPunct && ch === Ch.LParen) flags |= pendingFn;
      pendingFn = 0;
    }
    if (isPunct) {
      if (ch === Ch.Semicolon) {
        // a new statement starts; its flags count, its kind does not replace the first one's
        afterSemicolon = true;
        stmt++;
        index = 0;
        firstKw = Kw.None;
        depth = 0;
        withPending = false;
        intoState = 0;
        setState = SetState.Off;
        setStatement = false;
        showCount = false;
        prevKw = prev2Kw = Kw.None;
        continue;
      }
      if (ch === Ch.LParen) {
        depth++;
        if (index === 0) continue; // (SELECT …) UNION …
      } else if (ch === Ch.RParen) {
        if (depth > 0) depth--;
      } else if (ch === Ch.Comma && depth === 0 && setState === SetState.Expr) {
        setState = SetState.Target;
        setAutocommit = false;
      }
    }
    if (setState !== SetState.Off && setState !== SetState.Skip && !(isPunct && ch === Ch.Comma)) {
      if (setState === SetState.Target) {
        if (kw === Kw.Statement && index === 1) {
          setStatement = true; // SET STATEMENT a=1, b=2 FOR <statement>
          index++;
          continue;
        }
        if (kw === Kw.Global || kw === Kw.Session || kw === Kw.Local || kw === Kw.Persist || kw === Kw.PersistOnly) {
          index++;
          continue; // a scope; the name follows
        }
        if (kw === Kw.Transaction) {
          if (!setStatement) flags |= F.SetTransaction;
          setState = SetState.Skip;
        } else if (kw === Kw.Names || kw === Kw.Charset || kw === Kw.Character) {
          if (!setStatement) flags |= F.SetNames;
          setState = SetState.Expr;
        } else if (t === Token.UserVar) {
          if (!setStatement) flags |= F.UsesUserVariableAssignment;
          setState = SetState.Assign;
        } else if (kw === Kw.Autocommit || (t === Token.SysVar && equalsCi(lx.buf, sysVarNameStart(lx.buf, lx.start, lx.stop), lx.stop, "autocommit"))) {
          if (!setStatement) {
            flags |= F.SetAutocommit;
            setAutocommit = true;
          }
          setState = SetState.Assign;
        } else if (t === Token.Word || t === Token.QuotedIdent || t === Token.SysVar) {
          if (!setStatement) flags |= F.SetOther;
          setState = SetState.Assign;
        } else {
          setState = SetState.Expr;
        }
        index++;
        prev2Kw = prevKw;
        prevKw = kw;
        continue;
      }
      if (setState === SetState.Assign) {
        setState = SetState.Expr;
        if (lx.isAssignOp() || (isPunct && ch === Ch.Eq)) {
          setState = SetState.Value;
          index++;
          continue;
        }
      } else if (setState === SetState.Value) {
        setState = SetState.Expr;
        if (setAutocommit) {
          let v = -1;
          if (t === Token.Number && lx.stop - lx.start === 1) v = lx.buf[lx.start] === 0x31 ? 1 : lx.buf[lx.start] === 0x30 ? 0 : -1;
          else if (kw === Kw.On || kw === Kw.True) v = 1;
          else if (kw === Kw.Off || kw === Kw.False) v = 0;
          out.autocommit = v;
          // anything but a comma or the end after the value makes it an expression
          lx.mark();
          const n = lx.next();
          if (!(n === Token.End || (n === Token.Punct && (lx.ch === Ch.Comma || lx.ch === Ch.Semicolon)))) out.autocommit = -1;
          lx.restore();
        }
      }
    }
    if (index === 0) {
      // the first keyword of a statement
      index = 1;
      firstKw = kw;
      const k = kw === Kw.With ? K.Other : kindOf(kw);
      withPending = kw === Kw.With;
      kind = k;
      if (stmt === 0 && !withPending) out.kind = k;
      if (k === K.Set) setState = SetState.Target;
      prev2Kw = Kw.None;
      prevKw = kw;
      continue;
    }
    if (setStatement && setState !== SetState.Off && kw === Kw.For && depth === 0) {
      // SET STATEMENT a=1 FOR <statement>: the statement after FOR is what runs
      setState = SetState.Off;
      setStatement = false;
      index = 0;
      continue;
    }
    switch (t) {
      case Token.Word:
        if (withPending && depth === 0 && isDmlVerb(kw)) {
          withPending = false;
          kind = kindOf(kw);
          if (stmt === 0) out.kind = kind;
        } else {
          switch (kw) {
            case Kw.Update:
              if (prevKw === Kw.For) flags |= F.ForUpdate;
              break;
            case Kw.Share:
              if (prevKw === Kw.For) flags |= F.ForShare;
              break;
            case Kw.Mode:
              if (prevKw === Kw.Share && prev2Kw === Kw.In) flags |= F.LockInShareMode;
              break;
            case Kw.Where:
              if (depth === 0) flags |= F.HasWhere;
              break;
            case Kw.Limit:
              if (depth === 0) flags |= F.HasLimit;
              break;
            case Kw.Into:
              if (kind === K.Select) intoState = 1;
              break;
            case Kw.Outfile: case Kw.Dumpfile:
              if (intoState === 1) flags |= F.SelectInto;
              break;
            case Kw.LastInsertId:
              pendingFn = F.UsesLastInsertId;
              break;
            case Kw.FoundRows: case Kw.RowCount:
              pendingFn = F.UsesFoundRows;
              break;
            case Kw.SqlCalcFoundRows:
              flags |= F.UsesFoundRows;
              break;
            case Kw.GetLock: case Kw.ReleaseLock: case Kw.ReleaseAllLocks: case Kw.IsUsedLock: case Kw.IsFreeLock:
              pendingFn = F.UsesGetLock;
              break;
            case Kw.Temporary:
              if ((firstKw === Kw.Create || firstKw === Kw.Drop) && index <= 3) flags |= F.TemporaryTable;
              break;
            case Kw.Prepare:
              if (firstKw === Kw.Drop && index === 1) kind = setKind(out, stmt, K.Deallocate);
              break;
            case Kw.To:
              if (firstKw === Kw.Rollback && index <= 2) kind = setKind(out, stmt, K.Savepoint);
              break;
            case Kw.Transaction:
              if (firstKw === Kw.Start && index === 1) kind = setKind(out, stmt, K.Begin);
              break;
            case Kw.Only:
              if (prevKw === Kw.Read && kind === K.Begin && firstKw === Kw.Start) flags |= F.ReadOnlyTransaction;
              break;
            default:
              if (intoState === 1 && kw === Kw.None) flags |= F.SelectInto; // INTO a stored-program variable
              if (firstKw === Kw.Show && depth === 0 && (index === 1 || (index === 5 && showCount))) {
                // SHOW WARNINGS / SHOW ERRORS / SHOW COUNT(*) WARNINGS: they read the previous statement's diagnostics
                if (equalsCi(lx.buf, lx.start, lx.stop, "warnings") || equalsCi(lx.buf, lx.start, lx.stop, "errors")) flags |= F.ReadsDiagnostics;
                else if (index === 1) showCount = equalsCi(lx.buf, lx.start, lx.stop, "count");
              }
              // MariaDB's BEGIN NOT ATOMIC … END is a compound statement, not a transaction
              if (firstKw === Kw.Begin && index === 1 && equalsCi(lx.buf, lx.start, lx.stop, "not")) kind = setKind(out, stmt, K.Other);
          }
        }
        break;
      case Token.UserVar:
        if (intoState !== 0) {
          flags |= F.SelectInto | F.UsesUserVariableAssignment;
          intoState = 2;
          prev2Kw = prevKw;
          prevKw = Kw.None;
          index++;
          continue;
        }
        pendingVar = true;
        break;
      case Token.SysVar: {
        const s = sysVarNameStart(lx.buf, lx.start, lx.stop);
        if (equalsCi(lx.buf, s, lx.stop, "last_insert_id") || equalsCi(lx.buf, s, lx.stop, "identity")) flags |= F.UsesLastInsertId;
        else if (equalsCi(lx.buf, s, lx.stop, "warning_count") || equalsCi(lx.buf, s, lx.stop, "error_count")) flags |= F.ReadsDiagnostics;
        break;
      }
    }
    if (intoState !== 0 && !(intoState === 1 && kw === Kw.Into) && !(intoState === 2 && isPunct && ch === Ch.Comma)) intoState = 0;
    index++;
    prev2Kw = prevKw;
    prevKw = kw;
  }
  if (pendingVar) flags |= F.ReadsUserVariable;
  out.flags = flags;
  out.skeleton = ended ? (h1 >>> 0) * 0x200000 + ((h2 >>> 11) & 0x1fffff) : -1;
  lx.release();
  return out;
}

/** Sets the kind of the current statement, and the result's when it is the first statement. */
function setKind(out: Classification, stmt: number, k: K): K {
  if (stmt === 0) out.kind = k;
  return k;
}
