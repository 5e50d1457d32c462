/**
 * The routing decision for one statement: primary or replica (and, by rule,
 * another cluster), with a short stable reason. Pure: no I/O, no clock, no
 * backend state — which backend of the chosen class runs the statement, the
 * read-only listener's fallback to the primary, read-your-writes and load
 * balancing are the session engine's job. `mysqlgw explain` calls the same
 * function, so what it prints is what the data plane does.
 *
 * Precedence, first that applies (docs/policy.md "Routing"):
 * 1. inside a transaction (or with autocommit off): where the transaction runs;
 *    hints and rule routes are ignored (`ignored` says which);
 * 2. a matching rule's route (its target; its cluster);
 * 3. on a split listener, a hint comment `/* mysqlgw:primary|replica *\/`;
 * 4. the listener's role: READ_WRITE → primary, READ_ONLY → replica, SPLIT →
 *    the statement: whatever reads state of this session or the previous
 *    statement, takes locks, writes, or changes session state → primary (or the
 *    previous statement's backend); plain reads → replica.
 *
 * Without a rule the result is one of a fixed set of frozen objects: deciding
 * allocates nothing.
 */
import { type Classification, RouteHint, StatementFlags as F, StatementKind as K } from "./statement-kind";
import type { RuleAction } from "./rules";

/** The class of backend a statement runs on. */
export const enum RouteTarget {
  Primary = 1,
  Replica = 2,
}

/** A listener's role (proto ListenerRole; UNSPECIFIED means ReadWrite). */
export const enum ListenerMode {
  ReadWrite = 1,
  ReadOnly = 2,
  Split = 3,
}

/** What the session engine knows before the statement runs. */
export interface SessionRouteState {
  /** A transaction is open (server status SERVER_STATUS_IN_TRANS, or BEGIN / XA START seen). */
  inTransaction: boolean;
  /** The open transaction is START TRANSACTION READ ONLY. */
  readOnlyTransaction: boolean;
  /** false after SET autocommit=0: every statement belongs to a transaction, so everything goes where transactions go. */
  autocommit: boolean;
  /** A statement set a user variable on the primary earlier; statements reading user variables then go there too. */
  userVariablesSet: boolean;
  /** Where the previous statement ran; null before the first one. */
  lastTarget: RouteTarget | null;
  /** (Added to the engine's interface.) The cluster the previous statement ran on when a rule chose another one; null or absent: the listener's. Inside a transaction the statement follows it. */
  lastCluster?: string | null;
  /** (Added.) A CREATE TEMPORARY TABLE ran in this session (on the primary): reads go to the primary, where the table is. */
  temporaryTables?: boolean;
}

export interface RouteDecision {
  target: RouteTarget;
  /** Another cluster chosen by a rule (or followed inside a transaction); null: the listener's cluster. */
  cluster: string | null;
  /**
   * Why, as a short stable token (for metrics, traces, explain): read, write,
   * in-transaction, autocommit-off, transaction-control, session-state,
   * multi-statement, for-update, lock-in-share-mode, for-share, get-lock,
   * last-insert-id, found-rows, previous-statement, user-variable,
   * temporary-table, select-into, hint:primary, hint:replica, rule:<name>,
   * listener-read-write, listener-read-only.
   */
  reason: string;
  /** The matching rule's name (whether or not its route was applied), else null. */
  rule: string | null;
  /** (Added.) A hint or rule route that was not followed ("hint:replica", "rule:<name>"); `reason` says why. Else null. */
  ignored: string | null;
}

/** ListenerMode of a proto ListenerRole value (0 UNSPECIFIED, 1 READ_WRITE, 2 READ_ONLY, 3 SPLIT). */
export function listenerModeOf(role: number): ListenerMode {
  return role === 2 ? ListenerMode.ReadOnly : role === 3 ? ListenerMode.Split : ListenerMode.ReadWrite;
}

/** "primary" | "replica". */
export function routeTargetName(t: RouteTarget): string {
  return t === RouteTarget.Replica ? "replica" : "primary";
}

/** "read-write" | "read-only" | "split". */
export function listenerModeName(m: ListenerMode): string {
  return m === ListenerMode.ReadOnly ? "read-only" : m === ListenerMode.Split ? "split" : "read-write";
}

/** A fresh session: autocommit on, no transaction, nothing set, no previous statement. */
export function createSessionRouteState(): SessionRouteState {
  return { inTransaction: false, readOnlyTransaction: false, autocommit: true, userVariablesSet: false, lastTarget: null, lastCluster: null, temporaryTables: false };
}

function fixed(target: RouteTarget, reason: string, ignored: string | null): RouteDecision {
  return Object.freeze({ target, cluster: null, reason, rule: null, ignored });
}

const P = RouteTarget.Primary;
const R = RouteTarget.Replica;
const HINT_PRIMARY = "hint:primary";
const HINT_REPLICA = "hint:replica";

/** The split listener's choice for a statement outside a transaction, ignoring hints and rules. */
function splitChoice(c: Classification, s: SessionRouteState): RouteDecision {
  const f = c.flags;
  const k = c.kind;
  if ((f & F.MultiStatement) !== 0) return D.multiStatement; // only the first statement's kind is known
  if ((f & F.ReadsDiagnostics) !== 0) return s.lastTarget === R ? D.previousReplica : D.previousPrimary;
  if ((f & F.UsesFoundRows) !== 0) return s.lastTarget === R ? D.foundRowsReplica : D.foundRowsPrimary;
  if ((f & F.UsesLastInsertId) !== 0) return D.lastInsertId;
  if ((f & F.ForUpdate) !== 0) return D.forUpdate;
  if ((f & F.LockInShareMode) !== 0) return D.lockInShareMode;
  if ((f & F.ForShare) !== 0) return D.forShare;
  if ((f & F.UsesGetLock) !== 0) return D.getLock;
  if ((f & F.SelectInto) !== 0) return D.selectInto;
  if ((f & F.TemporaryTable) !== 0) return D.temporaryTable;
  if ((f & F.UsesUserVariableAssignment) !== 0) return D.userVariable;
  if ((f & F.ReadsUserVariable) !== 0 && s.userVariablesSet) return D.userVariable;
  switch (k) {
    case K.Select: case K.Show: case K.Explain:
      return s.temporaryTables === true ? D.temporaryTable : D.read;
    case K.Begin: case K.Commit: case K.Rollback: case K.Savepoint: case K.Xa:
      return D.transactionControl;
    case K.Set: case K.Use: case K.Prepare: case K.Execute: case K.Deallocate: case K.Handler:
      return D.sessionState;
    default:
      // INSERT, UPDATE, DELETE, REPLACE, DDL, CALL, LOAD, LOCK/UNLOCK, GRANT/REVOKE, KILL, DO, and anything unknown
      return D.write;
  }
}

const D = {
  read: fixed(R, "read", null),
  write: fixed(P, "write", null),
  multiStatement: fixed(P, "multi-statement", null),
  previousPrimary: fixed(P, "previous-statement", null),
  previousReplica: fixed(R, "previous-statement", null),
  foundRowsPrimary: fixed(P, "found-rows", null),
  foundRowsReplica: fixed(R, "found-rows", null),
  lastInsertId: fixed(P, "last-insert-id", null),
  forUpdate: fixed(P, "for-update", null),
  lockInShareMode: fixed(P, "lock-in-share-mode", null),
  forShare: fixed(P, "for-share", null),
  getLock: fixed(P, "get-lock", null),
  selectInto: fixed(P, "select-into", null),
  temporaryTable: fixed(P, "temporary-table", null),
  userVariable: fixed(P, "user-variable", null),
  transactionControl: fixed(P, "transaction-control", null),
  sessionState: fixed(P, "session-state", null),
  hintPrimary: fixed(P, HINT_PRIMARY, null),
  hintReplica: fixed(R, HINT_REPLICA, null),
};

function hintName(h: RouteHint): string | null {
  return h === RouteHint.Primary ? HINT_PRIMARY : h === RouteHint.Replica ? HINT_REPLICA : null;
}

/** Frozen decisions for statements in a transaction / with autocommit off, indexed by target, reason and the hint ignored. */
const IN_TX: RouteDecision[] = [];
for (const target of [P, R]) {
  for (const reason of ["in-transaction", "autocommit-off"]) {
    for (const hint of [RouteHint.None, RouteHint.Primary, RouteHint.Replica]) IN_TX.push(fixed(target, reason, hintName(hint)));
  }
}
function inTxDecision(target: RouteTarget, autocommitOff: boolean, hint: RouteHint): RouteDecision {
  return IN_TX[(target === R ? 6 : 0) + (autocommitOff ? 3 : 0) + hint];
}

/** Frozen decisions of READ_WRITE / READ_ONLY listeners, indexed by mode and the hint ignored. */
const BY_ROLE: RouteDecision[] = [];
for (const [target, reason] of [[P, "listener-read-write"], [R, "listener-read-only"]] as const) {
  for (const hint of [RouteHint.None, RouteHint.Primary, RouteHint.Replica]) BY_ROLE.push(fixed(target, reason, hintName(hint)));
}

/**
 * Where statement `c` runs on a listener in `mode`, given the session's state
 * before it and the first matching query rule (or null). Never throws.
 *
 * - Inside a transaction (session.inTransaction) the statement follows the
 *   transaction: session.lastTarget (else the listener's transaction target:
 *   replica on READ_ONLY, primary otherwise) and session.lastCluster, reason
 *   "in-transaction"; with autocommit off likewise (reason "autocommit-off").
 *   A hint or a rule's route is ignored there and named in `ignored`.
 * - Otherwise a rule's route applies on every listener: its target replaces the
 *   listener's choice (reason "rule:<name>"), its cluster is used with whichever
 *   target results. Rules win over hints.
 * - Hints apply on SPLIT listeners only; READ_WRITE and READ_ONLY listeners keep
 *   to their role (a hint there is reported in `ignored`).
 */
export function decideRoute(mode: ListenerMode, c: Classification, session: SessionRouteState, rule: RuleAction | null): RouteDecision {
  const route = rule === null ? null : rule.route;
  const hint = c.hint;
  if (session.inTransaction || !session.autocommit) {
    const reason = session.inTransaction ? "in-transaction" : "autocommit-off";
    const target = session.inTransaction && session.lastTarget !== null
      ? session.lastTarget
      : mode === ListenerMode.ReadOnly ? R : P;
    const cluster = session.inTransaction ? session.lastCluster ?? null : null;
    if (rule === null && cluster === null) return inTxDecision(target, !session.inTransaction, hint);
    const ignored = route !== null ? `rule:${rule!.rule}` : hintName(hint);
    return { target, cluster, reason, rule: rule === null ? null : rule.rule, ignored };
  }
  let base: RouteDecision;
  let ignoredHint: string | null = null;
  if (mode === ListenerMode.Split) {
    if (hint === RouteHint.Primary) base = D.hintPrimary;
    else if (hint === RouteHint.Replica) base = D.hintReplica;
    else base = splitChoice(c, session);
  } else {
    base = BY_ROLE[(mode === ListenerMode.ReadOnly ? 3 : 0) + hint];
    ignoredHint = base.ignored;
  }
  if (rule === null) return base;
  if (route === null) return { target: base.target, cluster: null, reason: base.reason, rule: rule.rule, ignored: ignoredHint };
  if (route.target !== null) {
    // the rule's target wins; a hint it overrides is reported
    const overridden = hint !== RouteHint.None ? hintName(hint) : null;
    return { target: route.target, cluster: route.cluster, reason: `rule:${rule.rule}`, rule: rule.rule, ignored: overridden };
  }
  return { target: base.target, cluster: route.cluster, reason: base.reason, rule: rule.rule, ignored: ignoredHint };
}
