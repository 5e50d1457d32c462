/**
 * OpenTelemetry tracing of sessions and statements (docs/observability.md,
 * "Tracing"): an Observer that turns the data plane's observations into spans
 * AFTER THE FACT, with explicit start and end times:
 *
 *   mysqlgw session                 sessionOpened → sessionClosed
 *   ├─ auth                         the client's authentication
 *   └─ SELECT shop                  one per statement (command read → response sent)
 *      ├─ route                     command read → routing decided
 *      ├─ pool acquire              → backend connection in hand (pool wait, state replay)
 *      ├─ backend                   → first response byte from the backend
 *      └─ transfer                  → response sent whole
 *
 * A statement that carries a sqlcommenter traceparent continues the
 * application's trace: its span has the application's trace id and span id as
 * parent (the session span is then not its parent). Sampling (policy
 * Gateway.tracing, read at each statement): the ratio is decided per trace id,
 * so a session and its statements go together; slow and failing statements are
 * kept whatever the ratio, and then their session span is exported at close
 * too (without its other statements), so the tree is whole.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span, type Tracer } from "@opentelemetry/api";
import {
  ATTR_DB_NAMESPACE,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_TEXT,
  ATTR_DB_RESPONSE_STATUS_CODE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  DB_SYSTEM_NAME_VALUE_MARIADB,
  DB_SYSTEM_NAME_VALUE_MYSQL,
} from "@opentelemetry/semantic-conventions";
import type { Observer, SessionEnd, SessionInfo, StatementRecord } from "./observer";
import { tracingView, type TracedCluster, type TracingView } from "./tracing-settings";

export interface TracingObserverOptions {
  tracer: Tracer;
  /** Date.now() − performance.now() (observers.epochOffsetMs). */
  epochOffsetMs: number;
  /** Export statements' raw text (literals included) as db.query.text instead of the digest. */
  rawSql?: boolean;
  /** Default: the worker's tracingView (set by the listener manager per config version). */
  view?: TracingView;
  /** Command names for statements without a kind (COM_PING → "PING"). */
  commandName?(command: number): string;
}

/** Per-session state kept between sessionOpened and sessionClosed. */
interface SessionTrace {
  readonly span: Span;
  readonly context: Context;
  /** The trace id's last 8 hex digits as a number: compared with ratio × 2³² at each decision. */
  readonly sample: number;
  auth: { ok: boolean; errno: number; startedAt: number; endedAt: number } | null;
  /** A statement of this session was exported: the session span is exported at close. */
  kept: boolean;
}

const W3C_TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = "00000000000000000000000000000000";
const ZERO_SPAN = "0000000000000000";

/** A W3C traceparent (version 00) → its span context, or null when malformed or all-zero. */
export function parseTraceparent(tp: string): { traceId: string; spanId: string; sampled: boolean } | null {
  const m = W3C_TRACEPARENT.exec(tp.trim().toLowerCase());
  if (m === null || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return null;
  return { traceId: m[1]!, spanId: m[2]!, sampled: (parseInt(m[3]!, 16) & 1) === 1 };
}

/** True when a trace with this sample value is kept at `ratio` (TraceIdRatio style: the same trace id gives the same answer everywhere). */
function ratioKeeps(sample: number, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  return sample < ratio * 0x100000000;
}

function sampleOf(traceId: string): number {
  return parseInt(traceId.slice(24), 16) >>> 0;
}

/** "ip:port", "[v6]:port" → address and port. */
function splitAddress(a: string): { address: string; port: number | undefined } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(a);
  return m === null ? { address: a, port: undefined } : { address: m[1]!, port: Number(m[2]) };
}

function dbSystem(c: TracedCluster | undefined): string {
  // unknown (no greeting seen yet): MariaDB, what mysqlgw is built for
  const v = c?.runtime.serverVersion;
  return v != null && !/mariadb/i.test(v) ? DB_SYSTEM_NAME_VALUE_MYSQL : DB_SYSTEM_NAME_VALUE_MARIADB;
}

export function createTracingObserver(options: TracingObserverOptions): Observer {
  const { tracer, epochOffsetMs: off } = options;
  const view = options.view ?? tracingView;
  const rawSql = options.rawSql === true;
  const sessions = new WeakMap<SessionInfo, SessionTrace>();

  function sessionAttributes(s: SessionInfo): Attributes {
    const peer = splitAddress(s.clientAddress);
    const a: Attributes = {
      "mysqlgw.span": "session",
      "mysqlgw.listener": s.listener,
      "mysqlgw.connection_id": s.connectionId,
      [ATTR_NETWORK_PEER_ADDRESS]: peer.address,
    };
    if (peer.port !== undefined) a[ATTR_NETWORK_PEER_PORT] = peer.port;
    return a;
  }

  function open(s: SessionInfo): SessionTrace {
    const span = tracer.startSpan("mysqlgw session", { kind: SpanKind.SERVER, startTime: s.openedAt + off, attributes: sessionAttributes(s), root: true }, ROOT_CONTEXT);
    const st: SessionTrace = { span, context: trace.setSpan(ROOT_CONTEXT, span), sample: sampleOf(span.spanContext().traceId), auth: null, kept: false };
    sessions.set(s, st);
    return st;
  }

  function child(name: string, parent: Context, start: number, end: number, kind: SpanKind = SpanKind.INTERNAL, attributes?: Attributes): Span {
    const sp = tracer.startSpan(name, { kind, startTime: start + off, attributes }, parent);
    sp.end(end + off);
    return sp;
  }

  function statement(r: StatementRecord): void {
    const settings = view.settings;
    const duration = r.endedAt - r.startedAt;
    const forced = (!r.ok && settings.keepErrors) || (settings.slowThresholdMs > 0 && duration >= settings.slowThresholdMs);
    let parent: Context;
    let st: SessionTrace | undefined;
    const tp = r.traceparent === null ? null : parseTraceparent(r.traceparent);
    if (tp !== null) {
      if (!tp.sampled && !forced) return;
      parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: tp.traceId, spanId: tp.spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
    } else {
      st = sessions.get(r.session) ?? open(r.session);
      if (!forced && !ratioKeeps(st.sample, settings.samplingRatio)) return;
      st.kept = true;
      parent = st.context;
    }

    const cluster = view.clusters.get(r.cluster);
    const operation = r.kind !== "" ? r.kind : (options.commandName?.(r.command) ?? `COM_${r.command}`);
    const attributes: Attributes = {
      // what `mysqlgw trace --user U` searches on (Jaeger tags)
      "mysqlgw.span": "statement",
      [ATTR_DB_SYSTEM_NAME]: dbSystem(cluster),
      [ATTR_DB_OPERATION_NAME]: operation,
      "mysqlgw.listener": r.session.listener,
      "mysqlgw.user": r.session.user,
      "mysqlgw.cluster": r.cluster,
      "mysqlgw.target": r.target,
      "mysqlgw.reason": r.reason,
      "mysqlgw.rows": r.rows,
      "mysqlgw.bytes": r.bytes,
    };
    if (r.schema !== null && r.schema !== "") attributes[ATTR_DB_NAMESPACE] = r.schema;
    const d = r.digest();
    if (d.text !== "") {
      attributes[ATTR_DB_QUERY_TEXT] = rawSql && r.sql !== "" ? r.sql : d.text;
      attributes["mysqlgw.digest"] = d.hash;
    }
    const peer = splitAddress(r.session.clientAddress);
    attributes[ATTR_NETWORK_PEER_ADDRESS] = peer.address;
    if (peer.port !== undefined) attributes[ATTR_NETWORK_PEER_PORT] = peer.port;
    let server: Attributes | undefined;
    if (r.backend !== null) {
      attributes["mysqlgw.backend"] = r.backend;
      const b = cluster?.backends.find((x) => x.name === r.backend);
      if (b !== undefined) {
        server = { [ATTR_SERVER_ADDRESS]: b.host, [ATTR_SERVER_PORT]: b.port, "mysqlgw.backend": r.backend };
        attributes[ATTR_SERVER_ADDRESS] = b.host;
        attributes[ATTR_SERVER_PORT] = b.port;
      }
    }
    if (r.rule !== null) attributes["mysqlgw.rule"] = r.rule;
    if (r.pinReason !== null) attributes["mysqlgw.pin_reason"] = r.pinReason;
    if (!r.ok) {
      attributes[ATTR_DB_RESPONSE_STATUS_CODE] = String(r.errno);
      attributes[ATTR_ERROR_TYPE] = String(r.errno);
      attributes["mysqlgw.error_code"] = r.errno;
    }
    if (forced) attributes["mysqlgw.kept"] = !r.ok && settings.keepErrors ? "error" : "slow";

    const name = r.schema !== null && r.schema !== "" ? `${operation} ${r.schema}` : operation;
    const span = tracer.startSpan(name, { kind: SpanKind.SERVER, startTime: r.startedAt + off, attributes }, parent);
    if (!r.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: `error ${r.errno}` });
    const ctx = trace.setSpan(ROOT_CONTEXT, span);
    child("route", ctx, r.startedAt, r.routedAt, SpanKind.INTERNAL, { "mysqlgw.target": r.target, "mysqlgw.reason": r.reason });
    if (r.backend !== null) {
      child("pool acquire", ctx, r.routedAt, r.acquiredAt, SpanKind.INTERNAL, server);
      child("backend", ctx, r.acquiredAt, r.firstByteAt, SpanKind.CLIENT, server);
    }
    child("transfer", ctx, r.backend !== null ? r.firstByteAt : r.routedAt, r.endedAt, SpanKind.INTERNAL, { "mysqlgw.rows": r.rows, "mysqlgw.bytes": r.bytes });
    span.end(r.endedAt + off);
  }

  return {
    wants: { digest: true, sql: rawSql },
    sessionOpened(s) {
      open(s);
    },
    sessionAuthenticated(s, ok, errno, startedAt, endedAt) {
      const st = sessions.get(s) ?? open(s);
      st.auth = { ok, errno, startedAt, endedAt };
    },
    statement,
    sessionClosed(e: SessionEnd) {
      const st = sessions.get(e.session);
      if (st === undefined) return;
      sessions.delete(e.session);
      const keep = st.kept || ratioKeeps(st.sample, view.settings.samplingRatio) || (st.auth !== null && !st.auth.ok && view.settings.keepErrors);
      if (!keep) return; // never ended: never exported
      const s = e.session;
      st.span.setAttributes({ "mysqlgw.user": s.user, "mysqlgw.tls": s.tls, "mysqlgw.close_reason": e.reason });
      if (st.auth !== null) {
        const a = st.auth;
        const auth = tracer.startSpan("auth", { startTime: a.startedAt + off, attributes: { "mysqlgw.user": s.user } }, st.context);
        if (!a.ok) {
          auth.setAttributes({ [ATTR_DB_RESPONSE_STATUS_CODE]: String(a.errno), "mysqlgw.error_code": a.errno });
          auth.setStatus({ code: SpanStatusCode.ERROR, message: `error ${a.errno}` });
          st.span.setStatus({ code: SpanStatusCode.ERROR, message: `authentication failed (${a.errno})` });
        }
        auth.end(a.endedAt + off);
      }
      st.span.end(e.closedAt + off);
    },
  };
}
