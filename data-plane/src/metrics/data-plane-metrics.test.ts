import { Registry } from "prom-client";
import { createDataPlaneMetrics, STATEMENT_DURATION_BUCKETS, STATEMENT_KIND_LABELS, type BackendState, type PoolStats } from "./data-plane-metrics";
import { handshakeFailureReason, backendConnectFailureReason } from "./reasons";
import { FastCounter, FastHistogram, OVERFLOW_LABEL } from "./series";
import { AccessDeniedError, BackendConnectError, BackendRejectedError, BackendTimeoutError, HandshakeTimeoutError, MalformedPacketError, NoBackendAvailableError, TooManyConnectionsError, UserTooManyConnectionsError } from "../errors";

/** The value of one sample line of the text format, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) got[k!] = v!;
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe("DataPlaneMetrics", () => {
  it("counts statements by listener, kind and result, and their durations in cumulative buckets", async () => {
    const m = createDataPlaneMetrics();
    m.statementFinished("rw", "select", "ok", 0.0003);
    m.statementFinished("rw", "select", "ok", 0.002);
    m.statementFinished("rw", "select", "error", 0.04);
    m.statementFinished("ro", "insert", "ok", 45);
    const text = await m.registry.metrics();
    expect(sample(text, "mysqlgw_statements_total", { listener: "rw", kind: "select", result: "ok" })).toBe(2);
    expect(sample(text, "mysqlgw_statements_total", { listener: "rw", kind: "select", result: "error" })).toBe(1);
    expect(sample(text, "mysqlgw_statements_total", { listener: "ro", kind: "insert", result: "ok" })).toBe(1);
    const h = (le: string, listener = "rw", kind = "select") => sample(text, "mysqlgw_statement_duration_seconds_bucket", { listener, kind, le });
    expect(h("0.0001")).toBe(0);
    expect(h("0.0005")).toBe(1); // 0.0003
    expect(h("0.0025")).toBe(2); // + 0.002
    expect(h("0.025")).toBe(2);
    expect(h("0.05")).toBe(3); // + 0.04
    expect(h("+Inf")).toBe(3);
    expect(sample(text, "mysqlgw_statement_duration_seconds_count", { listener: "rw", kind: "select" })).toBe(3);
    expect(sample(text, "mysqlgw_statement_duration_seconds_sum", { listener: "rw", kind: "select" })).toBeCloseTo(0.0423, 10);
    // above the last bound: only +Inf
    expect(h("30", "ro", "insert")).toBe(0);
    expect(h("+Inf", "ro", "insert")).toBe(1);
    expect(text).toContain("# TYPE mysqlgw_statement_duration_seconds histogram");
    expect(text).toContain("# TYPE mysqlgw_statements_total counter");
  });

  it("counts routing decisions and pins", async () => {
    const m = createDataPlaneMetrics();
    m.routed("split", "replica", "read");
    m.routed("split", "replica", "read");
    m.routed("split", "primary", "transaction");
    m.pinned("split", "temporary_table");
    const text = await m.registry.metrics();
    expect(sample(text, "mysqlgw_routing_decisions_total", { listener: "split", target: "replica", reason: "read" })).toBe(2);
    expect(sample(text, "mysqlgw_routing_decisions_total", { listener: "split", target: "primary", reason: "transaction" })).toBe(1);
    expect(sample(text, "mysqlgw_session_pins_total", { listener: "split", reason: "temporary_table" })).toBe(1);
  });

  it("keeps connections open as a gauge and counts accepted, refused (accept and auth), established and failed handshakes", async () => {
    const m = createDataPlaneMetrics();
    for (let i = 0; i < 3; i++) m.connectionAccepted("rw");
    m.connectionClosed("rw");
    m.connectionRefused("rw", "host_not_allowed");
    m.connectionRefused("rw", "listener_full");
    m.sessionEstablished("rw");
    m.handshakeFailed("rw", "user_full"); // an access-control refusal
    m.handshakeFailed("rw", "access_denied");
    m.handshakeFailed("rw", "access_denied");
    m.idleTimeout("rw");
    m.backendConnectFailed("main", "db1", "timeout");
    m.backendFullSkipped("main", "db1");
    const text = await m.registry.metrics();
    expect(sample(text, "mysqlgw_client_connections", { listener: "rw" })).toBe(2);
    expect(sample(text, "mysqlgw_client_connections_accepted_total", { listener: "rw" })).toBe(3);
    expect(sample(text, "mysqlgw_client_connections_refused_total", { listener: "rw", reason: "host_not_allowed" })).toBe(1);
    expect(sample(text, "mysqlgw_client_connections_refused_total", { listener: "rw", reason: "listener_full" })).toBe(1);
    expect(sample(text, "mysqlgw_client_connections_refused_total", { listener: "rw", reason: "user_full" })).toBe(1);
    expect(sample(text, "mysqlgw_client_handshake_failures_total", { listener: "rw", reason: "user_full" })).toBeUndefined();
    expect(sample(text, "mysqlgw_client_handshake_failures_total", { listener: "rw", reason: "access_denied" })).toBe(2);
    expect(sample(text, "mysqlgw_client_sessions_established_total", { listener: "rw" })).toBe(1);
    expect(sample(text, "mysqlgw_client_idle_timeouts_total", { listener: "rw" })).toBe(1);
    expect(sample(text, "mysqlgw_backend_connect_failures_total", { cluster: "main", backend: "db1", reason: "timeout" })).toBe(1);
    expect(sample(text, "mysqlgw_backend_full_skips_total", { cluster: "main", backend: "db1" })).toBe(1);
  });

  it("reads pool and backend gauges from their providers at each scrape", async () => {
    const m = createDataPlaneMetrics();
    let pools: PoolStats[] = [{ cluster: "main", backend: "db1", user: "app", total: 5, idle: 2, inUse: 2, waiting: 3, created: 9, closed: 4, timeouts: 1 }];
    const backends: BackendState[] = [
      { cluster: "main", backend: "db1", up: true, replicationLagSeconds: null, outstandingStatements: 4 },
      { cluster: "main", backend: "db2", up: false, replicationLagSeconds: 1.5, outstandingStatements: 0 },
    ];
    m.setPoolStatsProvider(() => pools);
    m.setBackendStateProvider(() => backends);
    let text = await m.registry.metrics();
    const pool = { cluster: "main", backend: "db1", user: "app" };
    expect(sample(text, "mysqlgw_pool_connections", { ...pool, state: "idle" })).toBe(2);
    expect(sample(text, "mysqlgw_pool_connections", { ...pool, state: "in_use" })).toBe(2);
    expect(sample(text, "mysqlgw_pool_connections", { ...pool, state: "opening" })).toBe(1);
    expect(sample(text, "mysqlgw_pool_waiting_requests", pool)).toBe(3);
    expect(sample(text, "mysqlgw_pool_connections_opened_total", pool)).toBe(9);
    expect(sample(text, "mysqlgw_pool_connections_closed_total", pool)).toBe(4);
    expect(sample(text, "mysqlgw_pool_acquire_timeouts_total", pool)).toBe(1);
    expect(text).toContain("# TYPE mysqlgw_pool_acquire_timeouts_total counter");
    expect(sample(text, "mysqlgw_backend_up", { cluster: "main", backend: "db1" })).toBe(1);
    expect(sample(text, "mysqlgw_backend_up", { cluster: "main", backend: "db2" })).toBe(0);
    expect(sample(text, "mysqlgw_backend_replication_lag_seconds", { cluster: "main", backend: "db1" })).toBeUndefined();
    expect(sample(text, "mysqlgw_backend_replication_lag_seconds", { cluster: "main", backend: "db2" })).toBe(1.5);
    expect(sample(text, "mysqlgw_backend_outstanding_statements", { cluster: "main", backend: "db1" })).toBe(4);

    // a pool that went away leaves no series behind
    pools = [];
    text = await m.registry.metrics();
    expect(sample(text, "mysqlgw_pool_connections", { ...pool, state: "idle" })).toBeUndefined();

    // a provider that throws: empty gauges, counted, the scrape still works
    m.setPoolStatsProvider(() => {
      throw new Error("boom");
    });
    text = await m.registry.metrics();
    expect(sample(text, "mysqlgw_metrics_provider_errors_total", { provider: "pool" })).toBe(1);
    expect(sample(text, "mysqlgw_backend_up", { cluster: "main", backend: "db1" })).toBe(1);
    m.setPoolStatsProvider(null);
    m.setBackendStateProvider(null);
    text = await m.registry.metrics();
    expect(sample(text, "mysqlgw_backend_up", { cluster: "main", backend: "db1" })).toBeUndefined();
  });

  it("bounds label sets: beyond maxSeries new ones share one overflow series", async () => {
    const m = createDataPlaneMetrics({ maxSeries: 3 });
    for (let i = 0; i < 10; i++) m.statementFinished("rw", `k${i}`, "ok", 0.001);
    const json = await m.registry.getMetricsAsJSON();
    const statements = json.find((x) => x.name === "mysqlgw_statements_total")!;
    expect(statements.values).toHaveLength(4);
    expect(statements.values.at(-1)).toEqual({ value: 7, labels: { listener: OVERFLOW_LABEL, kind: OVERFLOW_LABEL, result: OVERFLOW_LABEL } });
  });

  it("names every StatementKind", () => {
    expect(STATEMENT_KIND_LABELS).toHaveLength(32);
    expect(STATEMENT_KIND_LABELS[1]).toBe("select");
    expect(STATEMENT_KIND_LABELS[31]).toBe("explain");
    expect(new Set(STATEMENT_KIND_LABELS).size).toBe(STATEMENT_KIND_LABELS.length);
    expect([...STATEMENT_DURATION_BUCKETS].sort((a, b) => a - b)).toEqual(STATEMENT_DURATION_BUCKETS);
  });

  it("counts every statementFinished call of a long run exactly (its cost, ~90 ns, is measured in bench/, not here)", async () => {
    const m = createDataPlaneMetrics();
    const kinds = STATEMENT_KIND_LABELS.slice(0, 8);
    const n = 200_000;
    for (let i = 0; i < n; i++) m.statementFinished("orders-rw", kinds[i & 7]!, "ok", 0.0003);
    const text = await m.registry.metrics();
    let total = 0;
    for (const line of text.split("\n")) {
      const mm = /^mysqlgw_statements_total\{[^}]*listener="orders-rw"[^}]*\} (\d+)/.exec(line);
      if (mm !== null) total += Number(mm[1]);
    }
    expect(total).toBe(n);
  });
});

describe("FastCounter / FastHistogram", () => {
  it("report what prom-client's own metrics report, in the same JSON shape", async () => {
    const r = new Registry();
    const c = new FastCounter({ name: "t_total", help: "h", labelNames: ["a"], registry: r });
    const h = new FastHistogram({ name: "t_seconds", help: "h", labelNames: ["a", "b"], buckets: [1, 0.5], registry: r });
    c.inc("x");
    c.inc("x");
    h.observe(0.5, "x", "y"); // le is inclusive
    h.observe(0.7, "x", "y");
    h.observe(NaN, "x", "y"); // ignored
    expect(c.value("x")).toBe(2);
    expect(h.snapshot("x", "y")).toEqual({ count: 2, sum: 1.2, buckets: { "0.5": 1, "1": 2, "+Inf": 2 } });
    const text = await r.metrics();
    expect(text).toContain('t_total{a="x"} 2');
    expect(text).toContain('t_seconds_bucket{a="x",b="y",le="0.5"} 1');
    expect(text).toContain('t_seconds_bucket{a="x",b="y",le="+Inf"} 2');
    expect(text).toContain('t_seconds_count{a="x",b="y"} 2');
    expect(() => new FastHistogram({ name: "u", help: "h", labelNames: ["le"], buckets: [1], registry: r })).toThrow(/reserved/);
    expect(() => new FastHistogram({ name: "v", help: "h", labelNames: ["a"], buckets: [], registry: r })).toThrow(/buckets/);
    r.resetMetrics();
    expect(c.value("x")).toBe(0);
  });

  it("escapes label values in the text format", async () => {
    const r = new Registry();
    const c = new FastCounter({ name: "e_total", help: "h", labelNames: ["a"], registry: r });
    c.inc('we"ird\\name\n');
    expect(await r.metrics()).toContain('e_total{a="we\\"ird\\\\name\\n"} 1');
  });
});

describe("reason labels", () => {
  it("maps handshake errors to bounded reasons", () => {
    expect(handshakeFailureReason(new AccessDeniedError("u", "h", true))).toBe("access_denied");
    expect(handshakeFailureReason(new UserTooManyConnectionsError("u"))).toBe("user_full");
    expect(handshakeFailureReason(new TooManyConnectionsError())).toBe("cluster_full");
    expect(handshakeFailureReason(new HandshakeTimeoutError(10))).toBe("timeout");
    expect(handshakeFailureReason(new MalformedPacketError("x"))).toBe("bad_handshake");
    expect(handshakeFailureReason(new NoBackendAvailableError("x"))).toBe("no_backend");
    expect(handshakeFailureReason(new Error("x"))).toBe("other");
    expect(handshakeFailureReason("x")).toBe("other");
  });

  it("maps backend login errors to bounded reasons", () => {
    expect(backendConnectFailureReason(new BackendConnectError("refused"))).toBe("connect");
    expect(backendConnectFailureReason(new BackendTimeoutError("slow"))).toBe("timeout");
    expect(backendConnectFailureReason(new BackendRejectedError(1045, "28000", "Access denied", "db1"))).toBe("rejected");
    expect(backendConnectFailureReason(null)).toBe("other");
  });
});
