/**
 * Names of statement kinds and flags as policies (QueryRule.match.kinds) and
 * `mysqlgw explain` write them. The control plane keeps the same kind list to
 * validate policies (control-plane/src/model/validate-rules.ts); change both.
 */
import { StatementFlags as F, StatementKind as K } from "./statement-kind";

/** Kind names, indexed by StatementKind. */
const KIND_NAMES: readonly string[] = [
  "OTHER", "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT",
  "SET", "USE", "SHOW", "CALL", "LOAD", "LOCK", "UNLOCK", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME",
  "GRANT", "REVOKE", "XA", "KILL", "PREPARE", "EXECUTE", "DEALLOCATE", "DO", "HANDLER", "EXPLAIN",
];

/** Every kind name a rule may use, in StatementKind order. */
export const STATEMENT_KIND_NAMES: readonly string[] = KIND_NAMES;

const KIND_BY_NAME = new Map<string, K>(KIND_NAMES.map((n, i) => [n, i as K]));

/** "SELECT", "INSERT", …; "OTHER" for anything unlisted. */
export function statementKindName(kind: K): string {
  return KIND_NAMES[kind] ?? "OTHER";
}

/** The StatementKind of a name (case-insensitive; DESCRIBE and DESC are EXPLAIN), or null. */
export function statementKindOf(name: string): K | null {
  const up = name.toUpperCase();
  if (up === "DESCRIBE" || up === "DESC") return K.Explain;
  return KIND_BY_NAME.get(up) ?? null;
}

const FLAG_NAMES: ReadonlyArray<readonly [number, string]> = [
  [F.ForUpdate, "for-update"],
  [F.LockInShareMode, "lock-in-share-mode"],
  [F.ForShare, "for-share"],
  [F.SelectInto, "select-into"],
  [F.UsesUserVariableAssignment, "sets-user-variable"],
  [F.ReadsUserVariable, "reads-user-variable"],
  [F.UsesLastInsertId, "last-insert-id"],
  [F.UsesFoundRows, "found-rows"],
  [F.UsesGetLock, "get-lock"],
  [F.TemporaryTable, "temporary-table"],
  [F.SetAutocommit, "set-autocommit"],
  [F.SetTransaction, "set-transaction"],
  [F.SetNames, "set-names"],
  [F.MultiStatement, "multi-statement"],
  [F.HasWhere, "where"],
  [F.HasLimit, "limit"],
  [F.ReadOnlyTransaction, "read-only-transaction"],
  [F.SetOther, "set-other"],
  [F.ReadsDiagnostics, "reads-diagnostics"],
];

/** The names of the StatementFlags bits set in `flags`, in bit order. */
export function statementFlagNames(flags: number): string[] {
  const out: string[] = [];
  for (const [bit, name] of FLAG_NAMES) if ((flags & bit) !== 0) out.push(name);
  return out;
}
