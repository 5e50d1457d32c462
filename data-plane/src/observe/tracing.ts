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
 * Gateway.tracing, read at each statement): the ratio is drawn per statement;
 * slow and failing statements are kept whatever the ratio; a session span is
 * exported at close when one of its statements was, so the tree is whole (or,
 * for a session without a kept statement, by the ratio on its trace id).
 */
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
import { IdPool } from "./ids";
import type { Observer, SessionEnd, SessionInfo, StatementRecord } from "./observer";
import type { AttrValue, SpanData } from "./otlp-encode";
import { tracingView, type TracedCluster, type TracingView } from "./tracing-settings";

export interface TracingObserverOptions {
  /** Where finished spans go (a SpanQueue). */
  sink: { add(span: SpanData): void };
  /** Date.now() − performance.now() (observers.epochOffsetMs). */
  epochOffsetMs: number;
  /** Export statements' raw text (literals included) as db.query.text instead of the digest. */
  rawSql?: boolean;
  /** Default: the worker's tracingView (set by the listener manager per config version). */
  view?: TracingView;
  /** Command names for statements without a kind (COM_PING → "PING"). */
  commandName?(command: number): string;
  /** Default: a pool filled from the system's CSPRNG. */
  ids?: IdPool;
}

/** Per-session state kept between sessionOpened and sessionClosed. */
interface SessionTrace {
  readonly traceId: string;
  readonly spanId: string;
  /** The trace id's last 8 hex digits as a number: compared with ratio × 2³² at each decision. */
  readonly sample: number;
  auth: { ok: boolean; errno: number; startedAt: number; endedAt: number } | null;
  /** A statement of this session was exported: the session span is exported at close. */
  kept: boolean;
}

const NO_ATTRIBUTES: Record<string, AttrValue> = Object.freeze({}) as Record<string, AttrValue>;
const KIND_INTERNAL = 1;
const KIND_SERVER = 2;
const STATUS_ERROR = 2;

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

let lastVersion: string | null = null;
let lastSystem: string = DB_SYSTEM_NAME_VALUE_MARIADB;

function dbSystem(c: TracedCluster | undefined): string {
  // unknown (no greeting seen yet): MariaDB, what mysqlgw is built for
  const v = c?.runtime.serverVersion ?? null;
  if (v === null) return DB_SYSTEM_NAME_VALUE_MARIADB;
  if (v !== lastVersion) {
    lastVersion = v;
    lastSystem = /mariadb/i.test(v) ? DB_SYSTEM_NAME_VALUE_MARIADB : DB_SYSTEM_NAME_VALUE_MYSQL;
  }
  return lastSystem;
}

export function createTracingObserver(options: TracingObserverOptions): Observer {
  const { sink, epochOffsetMs: off } = options;
  const view = options.view ?? tracingView;
  const rawSql = options.rawSql === true;
  const ids = options.ids ?? new IdPool();
  const sessions = new WeakMap<SessionInfo, SessionTrace>();

  function open(s: SessionInfo): SessionTrace {
    const traceId = ids.traceId();
    const st: SessionTrace = { traceId, spanId: ids.spanId(), sample: sampleOf(traceId), auth: null, kept: false };
    sessions.set(s, st);
    return st;
  }

  // the client's address, parsed once per session
  const peers = new WeakMap<SessionInfo, { address: string; port: number | undefined }>();
  function peerOf(s: SessionInfo): { address: string; port: number | undefined } {
    let p = peers.get(s);
    if (p === undefined) {
      p = splitAddress(s.clientAddress);
      peers.set(s, p);
    }
    return p;
  }

  function span(name: string, kind: 1 | 2 | 3, traceId: string, parentSpanId: string, remoteParent: boolean, start: number, end: number, attributes: Record<string, AttrValue>, spanId = ids.spanId()): SpanData {
    return { name, kind, traceId, spanId, parentSpanId, remoteParent, startMs: start + off, endMs: end + off, attributes, status: 0, statusMessage: "" };
  }

  function statement(r: StatementRecord): void {
    const settings = view.settings;
    const duration = r.endedAt - r.startedAt;
    const failed = !r.ok && settings.keepErrors;
    const forced = failed || (settings.slowThresholdMs > 0 && duration >= settings.slowThresholdMs);
    let traceId: string;
    let parentId: string;
    let remote = false;
    const tp = r.traceparent === null ? null : parseTraceparent(r.traceparent);
    if (tp !== null) {
      if (!tp.sampled && !forced) return;
      traceId = tp.traceId;
      parentId = tp.spanId;
      remote = true;
    } else {
      const st = sessions.get(r.session) ?? open(r.session);
      // per statement, not per session: pooled connections live for hours, and a per-session draw would keep all of one or none
      if (!forced && !(settings.samplingRatio >= 1 || Math.random() < settings.samplingRatio)) return;
      st.kept = true;
      traceId = st.traceId;
      parentId = st.spanId;
    }

    const cluster = view.clusters.get(r.cluster);
    const operation = r.kind !== "" ? r.kind : (options.commandName?.(r.command) ?? `COM_${r.command}`);
    const session = r.session;
    const peer = peerOf(session);
    const attributes: Record<string, AttrValue> = {
      // what `mysqlgw trace --user U` searches on (Jaeger tags)
      "mysqlgw.span": "statement",
      [ATTR_DB_SYSTEM_NAME]: dbSystem(cluster),
      [ATTR_DB_OPERATION_NAME]: operation,
      "mysqlgw.listener": session.listener,
      "mysqlgw.user": session.user,
      "mysqlgw.cluster": r.cluster,
      "mysqlgw.target": r.target,
      "mysqlgw.reason": r.reason,
      "mysqlgw.rows": r.rows,
      "mysqlgw.bytes": r.bytes,
      [ATTR_NETWORK_PEER_ADDRESS]: peer.address,
    };
    if (peer.port !== undefined) attributes[ATTR_NETWORK_PEER_PORT] = peer.port;
    if (r.schema !== null && r.schema !== "") attributes[ATTR_DB_NAMESPACE] = r.schema;
    const d = r.digest();
    if (d.text !== "") {
      attributes[ATTR_DB_QUERY_TEXT] = rawSql && r.sql !== "" ? r.sql : d.text;
      attributes["mysqlgw.digest"] = d.hash;
    }
    let server: Record<string, AttrValue> = NO_ATTRIBUTES;
    let pool: Record<string, AttrValue> = NO_ATTRIBUTES;
    if (r.backend !== null) {
      attributes["mysqlgw.backend"] = r.backend;
      server = { "mysqlgw.backend": r.backend };
      pool = { "mysqlgw.backend": r.backend };
      const b = cluster?.backends.find((x) => x.name === r.backend);
      if (b !== undefined) {
        attributes[ATTR_SERVER_ADDRESS] = server[ATTR_SERVER_ADDRESS] = b.host;
        attributes[ATTR_SERVER_PORT] = server[ATTR_SERVER_PORT] = b.port;
      }
    }
    if (r.rule !== null) attributes["mysqlgw.rule"] = r.rule;
    if (r.pinReason !== null) attributes["mysqlgw.pin_reason"] = r.pinReason;
    if (!r.ok) {
      attributes[ATTR_DB_RESPONSE_STATUS_CODE] = String(r.errno);
      attributes[ATTR_ERROR_TYPE] = String(r.errno);
      attributes["mysqlgw.error_code"] = r.errno;
    }
    if (forced) attributes["mysqlgw.kept"] = failed ? "error" : "slow";

    const name = r.schema !== null && r.schema !== "" ? `${operation} ${r.schema}` : operation;
    const stmt = span(name, KIND_SERVER, traceId, parentId, remote, r.startedAt, r.endedAt, attributes);
    if (!r.ok) {
      stmt.status = STATUS_ERROR;
      stmt.statusMessage = `error ${r.errno}`;
    }
    r.traceIds = { traceId, spanId: stmt.spanId };
    // the phases become child spans when encoded (otlp-encode.ts phaseSpans): no object per child here
    stmt.phases = { routedMs: r.routedAt + off, acquiredMs: r.acquiredAt + off, firstByteMs: r.firstByteAt + off, pool, backend: r.backend !== null ? server : null };
    sink.add(stmt);
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
      const settings = view.settings;
      const authFailed = st.auth !== null && !st.auth.ok;
      if (!(st.kept || ratioKeeps(st.sample, settings.samplingRatio) || (authFailed && settings.keepErrors))) return;
      const s = e.session;
      const peer = peerOf(s);
      const attributes: Record<string, AttrValue> = {
        "mysqlgw.span": "session",
        "mysqlgw.listener": s.listener,
        "mysqlgw.connection_id": s.connectionId,
        "mysqlgw.user": s.user,
        "mysqlgw.tls": s.tls,
        "mysqlgw.close_reason": e.reason,
        [ATTR_NETWORK_PEER_ADDRESS]: peer.address,
      };
      if (peer.port !== undefined) attributes[ATTR_NETWORK_PEER_PORT] = peer.port;
      const root = span("mysqlgw session", KIND_SERVER, st.traceId, "", false, s.openedAt, e.closedAt, attributes, st.spanId);
      if (st.auth !== null) {
        const a = st.auth;
        const auth = span("auth", KIND_INTERNAL, st.traceId, st.spanId, false, a.startedAt, a.endedAt, { "mysqlgw.user": s.user });
        if (!a.ok) {
          auth.attributes[ATTR_DB_RESPONSE_STATUS_CODE] = String(a.errno);
          auth.attributes["mysqlgw.error_code"] = a.errno;
          auth.status = STATUS_ERROR;
          auth.statusMessage = `error ${a.errno}`;
          root.status = STATUS_ERROR;
          root.statusMessage = `authentication failed (${a.errno})`;
        }
        sink.add(auth);
      }
      sink.add(root);
    },
  };
}
