/**
 * What the data plane tells observers (tracing, the request log, the query
 * digest table, metrics) about sessions and statements: one call when a
 * session opens, one when it closes, and ONE call per statement after its
 * response went out, carrying the timestamps of its phases so that spans can
 * be made after the fact. Nothing is computed for observers that do not ask
 * (`wants`), and nothing at all when no observer is registered
 * (`observers.active` is false): the hot path pays one boolean test.
 *
 * Timestamps are `performance.now()` milliseconds; `epochOffsetMs` turns them
 * into wall-clock milliseconds (Date.now() ≈ performance.now() + epochOffsetMs).
 */

export interface SessionInfo {
  /** The connection id the client saw in the greeting. */
  readonly connectionId: number;
  readonly listener: string;
  /** mysqlgw user (empty before authentication). */
  user: string;
  /** "ip:port" of the client (from its PROXY header when a trusted peer sent one). */
  readonly clientAddress: string;
  /** When the TCP connection was accepted. */
  readonly openedAt: number;
  /** The client's TLS/compression as negotiated. */
  tls: boolean;
}

/** Why a statement ran where it ran, and how it went. */
export interface StatementRecord {
  readonly session: SessionInfo;
  /** COM_QUERY, COM_STMT_EXECUTE, …: the command byte. */
  readonly command: number;
  /** Statement kind as `mysqlgw explain` names it (SELECT, INSERT, …; "" when not a statement). */
  readonly kind: string;
  /**
   * The statement's text: COM_QUERY's, or the prepared statement's for
   * COM_STMT_EXECUTE. Raw: observers must not export it as is (literals) —
   * they use `digest()` unless configured otherwise.
   */
  readonly sql: string;
  /** Normalised text (literals → ?) and its 16-hex hash, computed on first call. */
  digest(): { text: string; hash: string };
  /** A W3C traceparent from a sqlcommenter comment of the statement, or null. */
  readonly traceparent: string | null;
  readonly schema: string | null;
  /** "primary" | "replica" | "local" (answered by the gateway: cache, plugin, PING) | "cache". */
  readonly target: string;
  readonly cluster: string;
  /** Backend name that ran it; null when answered locally. */
  readonly backend: string | null;
  /** Why it went there (decideRoute's reason). */
  readonly reason: string;
  /** The matching query rule, or null. */
  readonly rule: string | null;
  /** Set when this statement pinned the session to its connection. */
  readonly pinReason: string | null;
  readonly ok: boolean;
  /** 0 when ok. */
  readonly errno: number;
  /** Rows of its result sets (0 for OK-only responses). */
  readonly rows: number;
  /** Response bytes sent to the client. */
  readonly bytes: number;
  // phase timestamps (performance.now() ms); a phase that did not happen has the previous one's time
  /** The whole command was read from the client. */
  readonly startedAt: number;
  /** Classification, rules and routing decided. */
  readonly routedAt: number;
  /** A backend connection was in hand (pool acquire, state replay done). */
  readonly acquiredAt: number;
  /** The first response byte came from the backend. */
  readonly firstByteAt: number;
  /** The response went out whole. */
  readonly endedAt: number;
  /**
   * Set by the tracing observer (registered first, so observers after it see
   * them) when it exported this statement's span: the request log writes them,
   * so that a log line leads to its trace. Absent when not traced.
   */
  traceIds?: { traceId: string; spanId: string } | null;
}

export interface SessionEnd {
  readonly session: SessionInfo;
  /** "quit", "client closed", "killed", "idle timeout", "backend lost", "refused: <why>", … */
  readonly reason: string;
  readonly closedAt: number;
}

export interface Observer {
  /** What this observer needs computed for it. */
  readonly wants: { digest: boolean; sql: boolean };
  sessionOpened?(s: SessionInfo): void;
  /** Authentication finished (ok or not); `errno` 0 when ok. */
  sessionAuthenticated?(s: SessionInfo, ok: boolean, errno: number, startedAt: number, endedAt: number): void;
  statement?(r: StatementRecord): void;
  sessionClosed?(e: SessionEnd): void;
}

/** The observers of one worker process. */
export class Observers {
  private list: Observer[] = [];
  /** Any observer registered: false → the sessions skip all observation work. */
  active = false;
  /**
   * Statements of every listener must be observed (tracing): listeners that
   * would forward commands unread run the routed engine instead (a connection
   * per session, as before; see routed-session.ts routedListener).
   */
  everyStatement = false;
  /** Some observer wants digests / raw SQL. */
  wantsDigest = false;
  wantsSql = false;
  readonly epochOffsetMs = Date.now() - performance.now();

  add(o: Observer): void {
    this.list.push(o);
    this.refresh();
  }

  remove(o: Observer): void {
    this.list = this.list.filter((x) => x !== o);
    this.refresh();
  }

  private refresh(): void {
    this.active = this.list.length > 0;
    this.wantsDigest = this.list.some((o) => o.wants.digest);
    this.wantsSql = this.list.some((o) => o.wants.sql);
  }

  sessionOpened(s: SessionInfo): void {
    for (const o of this.list) safe(() => o.sessionOpened?.(s));
  }

  sessionAuthenticated(s: SessionInfo, ok: boolean, errno: number, startedAt: number, endedAt: number): void {
    for (const o of this.list) safe(() => o.sessionAuthenticated?.(s, ok, errno, startedAt, endedAt));
  }

  statement(r: StatementRecord): void {
    // per statement: no closure per observer
    const list = this.list;
    for (let i = 0; i < list.length; i++) {
      try {
        list[i].statement?.(r);
      } catch {
        // observers count their own failures
      }
    }
  }

  sessionClosed(e: SessionEnd): void {
    for (const o of this.list) safe(() => o.sessionClosed?.(e));
  }
}

/** An observer's bug must never reach a session. */
function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    // observers count their own failures
  }
}

/** The worker's observers (tracing, request log, digests register here at startup). */
export const observers = new Observers();
