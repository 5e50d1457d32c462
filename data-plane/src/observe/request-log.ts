/**
 * The request log: one JSON line per statement (routed listeners) and per
 * session event (open, authentication ok/refused, close), for a log platform.
 * Statements carry their digest (hash and normalised text, literals as ?),
 * never the raw SQL unless `rawSql` is set. Volume controls: `sample` keeps
 * that share of statements (errors always kept), `slowMs` keeps only
 * statements at least that slow (plus errors). Lines go to a LineWriter: the
 * session never waits for the log.
 */
import type { Observer, SessionEnd, SessionInfo, StatementRecord } from "./observer";

export interface RequestLogOptions {
  /** Share of (non-error) statements logged, 0..1; default 1. */
  sample?: number;
  /** Only statements taking at least this many ms (and errors); null = all. */
  slowMs?: number | null;
  /** Log the statement's raw text (with its literals) as "sql"; default false. */
  rawSql?: boolean;
  /** Log session events (open, auth, close); default true. */
  sessions?: boolean;
  /** Converts performance.now() ms to epoch ms (Observers.epochOffsetMs). */
  epochOffsetMs: number;
  /** [0, 1); default Math.random. */
  random?: () => number;
}

/** Where lines go (a LineWriter). */
export interface LineSink {
  write(line: string): void;
}

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

/** The JSON object of one statement's line (exported for tests). */
export function statementLine(r: StatementRecord, epochOffsetMs: number, rawSql: boolean): Record<string, unknown> {
  const d = r.digest();
  const line: Record<string, unknown> = {
    time: new Date(r.startedAt + epochOffsetMs).toISOString(),
    event: "statement",
  };
  // set by the tracing observer (registered before this one) when it exported the statement's span
  const t = r.traceIds;
  if (t !== undefined && t !== null) {
    line.trace_id = t.traceId;
    line.span_id = t.spanId;
  }
  Object.assign(line, {
    connection_id: r.session.connectionId,
    user: r.session.user,
    client: r.session.clientAddress,
    listener: r.session.listener,
    schema: r.schema ?? "",
    kind: r.kind,
    cluster: r.cluster,
    target: r.target,
    backend: r.backend ?? "",
    reason: r.reason,
    rule: r.rule ?? "",
    digest: d.hash,
    digest_text: d.text,
  });
  if (rawSql) line.sql = r.sql;
  if (r.pinReason !== null) line.pin = r.pinReason;
  Object.assign(line, {
    duration_ms: round3(r.endedAt - r.startedAt),
    queue_ms: round3(r.acquiredAt - r.routedAt),
    backend_ms: round3(r.endedAt - r.acquiredAt),
    rows: r.rows,
    bytes: r.bytes,
    errno: r.errno,
  });
  return line;
}

function sessionBase(s: SessionInfo, event: string, at: number, epochOffsetMs: number): Record<string, unknown> {
  return {
    time: new Date(at + epochOffsetMs).toISOString(),
    event,
    connection_id: s.connectionId,
    user: s.user,
    client: s.clientAddress,
    listener: s.listener,
  };
}

/** A request-log observer writing to `sink`. */
export function createRequestLog(sink: LineSink, options: RequestLogOptions): Observer & { readonly options: Required<RequestLogOptions> } {
  const o: Required<RequestLogOptions> = {
    sample: options.sample ?? 1,
    slowMs: options.slowMs ?? null,
    rawSql: options.rawSql ?? false,
    sessions: options.sessions ?? true,
    epochOffsetMs: options.epochOffsetMs,
    random: options.random ?? Math.random,
  };
  const put = (obj: Record<string, unknown>): void => sink.write(JSON.stringify(obj));
  const observer: Observer & { readonly options: Required<RequestLogOptions> } = {
    options: o,
    wants: { digest: true, sql: o.rawSql },
    statement(r) {
      if (r.sql === "" && r.kind === "") return; // PING and other non-statements
      if (r.errno === 0) {
        if (o.slowMs !== null && r.endedAt - r.startedAt < o.slowMs) return;
        if (o.sample < 1 && !(o.random() < o.sample)) return;
      }
      put(statementLine(r, o.epochOffsetMs, o.rawSql));
    },
  };
  if (o.sessions) {
    observer.sessionOpened = (s) => put(sessionBase(s, "session_open", s.openedAt, o.epochOffsetMs));
    observer.sessionAuthenticated = (s, ok, errno, startedAt, endedAt) =>
      put({ ...sessionBase(s, ok ? "auth_ok" : "auth_refused", endedAt, o.epochOffsetMs), tls: s.tls, duration_ms: round3(endedAt - startedAt), errno });
    observer.sessionClosed = (e: SessionEnd) =>
      put({ ...sessionBase(e.session, "session_close", e.closedAt, o.epochOffsetMs), reason: e.reason, duration_ms: round3(e.closedAt - e.session.openedAt) });
  }
  return observer;
}
