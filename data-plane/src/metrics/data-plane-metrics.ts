import { Counter, Gauge, Registry } from "prom-client";
import { FastCounter, FastHistogram } from "./series";

/**
 * The metrics of one data-plane process (a worker, or the single process of
 * `--workers 0`), named by Prometheus conventions: prefix `mysqlgw_`, base
 * units (seconds, bytes) in the name, `_total` on counters. The supervisor
 * scrapes every worker's registry over IPC and serves the sum (see
 * docs/observability.md for the list).
 *
 * Calls are made at connection and command boundaries only; nothing here is
 * called per packet. Labels are bounded by configuration (listener, cluster,
 * backend and user names) or by fixed sets (kind, result, reason): never a
 * client address, SQL text or secret.
 *
 * Not safe to call from anything but the process's event loop (no locking; one
 * thread).
 */
export interface DataPlaneMetrics {
  readonly registry: Registry;

  // ---- client connections (listener-manager.ts, frontend-session.ts) ----
  /** A TCP connection passed the accept-time checks: it gets a greeting. Counts and opens a session. */
  connectionAccepted(listener: string): void;
  /** A session accepted with connectionAccepted() ended (exactly once per session). */
  connectionClosed(listener: string): void;
  /** Refused by access control or a connection limit (see RefusalReason). */
  connectionRefused(listener: string, reason: RefusalReason): void;
  /** Authentication and backend login succeeded: the session forwards commands. */
  sessionEstablished(listener: string): void;
  /**
   * The handshake of an accepted connection ended without a session. An
   * access-control reason (user_host_denied, user_full, cluster_full) counts
   * as a refusal, anything else as a handshake failure.
   */
  handshakeFailed(listener: string, reason: HandshakeFailureReason | AuthRefusalReason): void;
  /** Closed by the listener's idle_timeout. */
  idleTimeout(listener: string): void;

  // ---- backends ----
  /** One backend login attempt failed (the next backend is tried). */
  backendConnectFailed(cluster: string, backend: string, reason: BackendConnectFailureReason): void;
  /** A backend was skipped because it was at its maxConnections. */
  backendFullSkipped(cluster: string, backend: string): void;

  // ---- statements and routing (called by the routed session engine) ----
  /**
   * One statement (or command) finished: `kind` is a bounded name such as
   * STATEMENT_KIND_LABELS[kind] ("select", "insert", …) or a command name
   * ("com_stmt_execute"); `seconds` from the command's first byte to the end of
   * its response.
   */
  statementFinished(listener: string, kind: string, result: "ok" | "error", seconds: number): void;
  /** Where a statement was sent, and why (a bounded reason such as "read", "hint", "transaction"). */
  routed(listener: string, target: "primary" | "replica", reason: string): void;
  /** A session was pinned to its backend connection (a bounded reason such as "temporary_table", "lock"). */
  pinned(listener: string, reason: string): void;
  /** Pool figures, read at each scrape; null removes the provider. A provider that throws is skipped (counted). */
  setPoolStatsProvider(fn: (() => readonly PoolStats[]) | null): void;
  /** Backend state as this process routes on it, read at each scrape; null removes it. */
  setBackendStateProvider(fn: (() => readonly BackendState[]) | null): void;
}

/** Refused at accept (before any handshake byte), by the Gateway's or the listener's settings. */
export type AcceptRefusalReason = "host_not_allowed" | "gateway_full" | "listener_full";
/** Refused at authentication, by the user's settings or full backends. */
export type AuthRefusalReason = "user_host_denied" | "user_full" | "cluster_full";
export type RefusalReason = AcceptRefusalReason | AuthRefusalReason;

export type HandshakeFailureReason =
  | "access_denied" // wrong password, unknown user, TLS required, …: 1045
  | "timeout" // not authenticated within the handshake timeout
  | "bad_handshake" // malformed, oversized or unsupported handshake packets
  | "proxy_protocol" // a PROXY header refused or malformed
  | "unsupported_plugin"
  | "no_backend" // no backend of the cluster could be logged in to (or credentials unresolvable)
  | "unknown_cluster" // the listener names a cluster the config lacks
  | "backend_refused" // the backend refused the client's request (1044, 1049), passed on
  | "client_closed" // the client went away before the handshake ended
  | "shutdown" // drained
  | "other";

export type BackendConnectFailureReason = "connect" | "timeout" | "rejected" | "protocol" | "tls" | "other";

/** One pool (cluster, backend, backend user). `total` counts idle, in use and opening connections. */
export interface PoolStats {
  cluster: string;
  backend: string;
  user: string;
  total: number;
  idle: number;
  inUse: number;
  /** Requests waiting to acquire a connection. */
  waiting: number;
  /** Since the pool was made (optional): connections opened, closed, and acquires that timed out. Exported as counters. */
  created?: number;
  closed?: number;
  timeouts?: number;
}

export interface BackendState {
  cluster: string;
  backend: string;
  up: boolean;
  /** Seconds behind its primary; null when unknown or not a replica (no sample then). */
  replicationLagSeconds: number | null;
  /** Statements sent and not yet answered. */
  outstandingStatements: number;
}

/** Bucket bounds of mysqlgw_statement_duration_seconds: 100 µs (a point select through the gateway) to 30 s. */
export const STATEMENT_DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** Label of each StatementKind (routing/statement-kind.ts), indexed by its value. */
export const STATEMENT_KIND_LABELS: readonly string[] = [
  "other",
  "select",
  "insert",
  "update",
  "delete",
  "replace",
  "begin",
  "commit",
  "rollback",
  "savepoint",
  "set",
  "use",
  "show",
  "call",
  "load",
  "lock",
  "unlock",
  "create",
  "alter",
  "drop",
  "truncate",
  "rename",
  "grant",
  "revoke",
  "xa",
  "kill",
  "prepare",
  "execute",
  "deallocate",
  "do",
  "handler",
  "explain",
];

const AUTH_REFUSALS: ReadonlySet<string> = new Set<AuthRefusalReason>(["user_host_denied", "user_full", "cluster_full"]);

export interface DataPlaneMetricsOptions {
  /** Where the metrics are registered; default a new Registry. */
  registry?: Registry;
  /** Bound on label sets of each per-statement metric; default 2000 (see series.ts). */
  maxSeries?: number;
}

export function createDataPlaneMetrics(options: DataPlaneMetricsOptions = {}): DataPlaneMetrics {
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const maxSeries = options.maxSeries;

  const connections = new Gauge({
    name: "mysqlgw_client_connections",
    help: "Client connections open now (accepted, not yet closed), by listener.",
    labelNames: ["listener"],
    registers,
    aggregator: "sum",
  });
  const accepted = new Counter({
    name: "mysqlgw_client_connections_accepted_total",
    help: "Client connections that passed the accept-time checks and got a greeting, by listener.",
    labelNames: ["listener"],
    registers,
  });
  const refused = new Counter({
    name: "mysqlgw_client_connections_refused_total",
    help: "Client connections refused by access control or a connection limit, by listener and reason (host_not_allowed, gateway_full, listener_full at accept; user_host_denied, user_full, cluster_full at authentication).",
    labelNames: ["listener", "reason"],
    registers,
  });
  const established = new Counter({
    name: "mysqlgw_client_sessions_established_total",
    help: "Client connections that authenticated and reached a backend (now forwarding commands), by listener.",
    labelNames: ["listener"],
    registers,
  });
  const handshakeFailures = new Counter({
    name: "mysqlgw_client_handshake_failures_total",
    help: "Accepted client connections whose handshake or authentication failed for a reason other than an access-control refusal, by listener and reason.",
    labelNames: ["listener", "reason"],
    registers,
  });
  const idleTimeouts = new Counter({
    name: "mysqlgw_client_idle_timeouts_total",
    help: "Client sessions closed by the listener's idle_timeout, by listener.",
    labelNames: ["listener"],
    registers,
  });
  const backendConnectFailures = new Counter({
    name: "mysqlgw_backend_connect_failures_total",
    help: "Failed backend logins (connect, timeout, rejected, protocol, tls, other), by cluster, backend and reason.",
    labelNames: ["cluster", "backend", "reason"],
    registers,
  });
  const backendFullSkips = new Counter({
    name: "mysqlgw_backend_full_skips_total",
    help: "Times a backend was skipped because this data plane held its maxConnections, by cluster and backend.",
    labelNames: ["cluster", "backend"],
    registers,
  });

  const statements = new FastCounter({
    name: "mysqlgw_statements_total",
    help: "Statements and commands finished, by listener, kind and result (ok, error).",
    labelNames: ["listener", "kind", "result"],
    registry,
    maxSeries,
  });
  const statementSeconds = new FastHistogram({
    name: "mysqlgw_statement_duration_seconds",
    help: "Time from a statement's first byte from the client to the end of its response, by listener and kind.",
    labelNames: ["listener", "kind"],
    buckets: STATEMENT_DURATION_BUCKETS,
    registry,
    maxSeries,
  });
  const routingDecisions = new FastCounter({
    name: "mysqlgw_routing_decisions_total",
    help: "Statements routed, by listener, target (primary, replica) and reason.",
    labelNames: ["listener", "target", "reason"],
    registry,
    maxSeries,
  });
  const pins = new FastCounter({
    name: "mysqlgw_session_pins_total",
    help: "Sessions pinned to their backend connection, by listener and reason.",
    labelNames: ["listener", "reason"],
    registry,
    maxSeries,
  });

  let poolProvider: (() => readonly PoolStats[]) | null = null;
  let backendProvider: (() => readonly BackendState[]) | null = null;

  /** The provider's figures, or [] (and counted) when it throws. */
  function read<T>(name: string, fn: (() => readonly T[]) | null): readonly T[] {
    if (fn === null) return [];
    try {
      return fn();
    } catch {
      collectErrors.inc({ provider: name });
      return [];
    }
  }

  // Provider gauges are refilled at each scrape: collect() runs at the start of get().
  let poolCache: readonly PoolStats[] = [];
  new Gauge({
    name: "mysqlgw_pool_connections",
    help: "Backend connections held by the pools, by cluster, backend, backend user and state (idle, in_use, opening).",
    labelNames: ["cluster", "backend", "user", "state"],
    registers,
    aggregator: "sum",
    collect() {
      this.reset();
      poolCache = read("pool", poolProvider);
      for (const p of poolCache) {
        const l = { cluster: p.cluster, backend: p.backend, user: p.user };
        this.set({ ...l, state: "idle" }, p.idle);
        this.set({ ...l, state: "in_use" }, p.inUse);
        this.set({ ...l, state: "opening" }, Math.max(0, p.total - p.idle - p.inUse));
      }
    },
  });
  new Gauge({
    name: "mysqlgw_pool_waiting_requests",
    help: "Requests waiting to acquire a pooled backend connection, by cluster, backend and backend user.",
    labelNames: ["cluster", "backend", "user"],
    registers,
    aggregator: "sum",
    collect() {
      // registered after mysqlgw_pool_connections, whose collect() read the provider for this scrape
      this.reset();
      for (const p of poolCache) this.set({ cluster: p.cluster, backend: p.backend, user: p.user }, p.waiting);
    },
  });

  // cumulative figures of each pool, as counters (a pool made anew starts from 0: a counter reset)
  const poolCounter = (name: string, help: string, pick: (p: PoolStats) => number | undefined): void => {
    new Counter({
      name,
      help,
      labelNames: ["cluster", "backend", "user"],
      registers,
      collect() {
        this.reset();
        for (const p of poolCache) {
          const v = pick(p);
          if (v !== undefined && Number.isFinite(v) && v >= 0) this.inc({ cluster: p.cluster, backend: p.backend, user: p.user }, v);
        }
      },
    });
  };
  poolCounter("mysqlgw_pool_connections_opened_total", "Backend connections the pool opened (logged in), by cluster, backend and backend user.", (p) => p.created);
  poolCounter("mysqlgw_pool_connections_closed_total", "Backend connections the pool closed (lifetime, idle timeout, failed check or reset, discard), by cluster, backend and backend user.", (p) => p.closed);
  poolCounter("mysqlgw_pool_acquire_timeouts_total", "Requests that got no pooled connection within the pool's acquire timeout, by cluster, backend and backend user.", (p) => p.timeouts);

  let backendCache: readonly BackendState[] = [];
  new Gauge({
    name: "mysqlgw_backend_up",
    help: "1 when this data plane considers the backend usable, else 0 (the minimum across workers), by cluster and backend.",
    labelNames: ["cluster", "backend"],
    registers,
    aggregator: "min",
    collect() {
      this.reset();
      backendCache = read("backend", backendProvider);
      for (const b of backendCache) this.set({ cluster: b.cluster, backend: b.backend }, b.up ? 1 : 0);
    },
  });
  new Gauge({
    name: "mysqlgw_backend_replication_lag_seconds",
    help: "Replication lag of a replica as this data plane routes on it (the maximum across workers), by cluster and backend.",
    labelNames: ["cluster", "backend"],
    registers,
    aggregator: "max",
    collect() {
      this.reset();
      for (const b of backendCache) {
        if (b.replicationLagSeconds !== null && Number.isFinite(b.replicationLagSeconds)) {
          this.set({ cluster: b.cluster, backend: b.backend }, b.replicationLagSeconds);
        }
      }
    },
  });
  new Gauge({
    name: "mysqlgw_backend_outstanding_statements",
    help: "Statements sent to the backend and not yet answered, by cluster and backend.",
    labelNames: ["cluster", "backend"],
    registers,
    aggregator: "sum",
    collect() {
      this.reset();
      for (const b of backendCache) this.set({ cluster: b.cluster, backend: b.backend }, b.outstandingStatements);
    },
  });

  // registered after the provider gauges: their collect() counts into it during the same scrape
  const collectErrors = new Counter({
    name: "mysqlgw_metrics_provider_errors_total",
    help: "Scrapes at which a metrics provider (pool, backend) threw; its gauges were left empty.",
    labelNames: ["provider"],
    registers,
  });

  return {
    registry,
    connectionAccepted(listener) {
      accepted.inc({ listener });
      connections.inc({ listener });
    },
    connectionClosed(listener) {
      connections.dec({ listener });
    },
    connectionRefused(listener, reason) {
      refused.inc({ listener, reason });
    },
    sessionEstablished(listener) {
      established.inc({ listener });
    },
    handshakeFailed(listener, reason) {
      if (AUTH_REFUSALS.has(reason)) refused.inc({ listener, reason });
      else handshakeFailures.inc({ listener, reason });
    },
    idleTimeout(listener) {
      idleTimeouts.inc({ listener });
    },
    backendConnectFailed(cluster, backend, reason) {
      backendConnectFailures.inc({ cluster, backend, reason });
    },
    backendFullSkipped(cluster, backend) {
      backendFullSkips.inc({ cluster, backend });
    },
    statementFinished(listener, kind, result, seconds) {
      statements.inc(listener, kind, result);
      statementSeconds.observe(seconds, listener, kind);
    },
    routed(listener, target, reason) {
      routingDecisions.inc(listener, target, reason);
    },
    pinned(listener, reason) {
      pins.inc(listener, reason);
    },
    setPoolStatsProvider(fn) {
      poolProvider = fn;
    },
    setBackendStateProvider(fn) {
      backendProvider = fn;
    },
  };
}
