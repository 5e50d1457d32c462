import * as http from "node:http";
import pino from "pino";
import type { ListenerManager } from "../types";
import { createIpcWorkerHandle } from "../supervisor/worker-handle";
import { createWorkerRuntime } from "../supervisor/worker-runtime";
import { readFromWorkerMessage, readToWorkerMessage } from "../supervisor/ipc-protocol";
import { createDataPlaneMetrics, type DataPlaneMetrics } from "./data-plane-metrics";
import { scrapeDataPlane, type WorkerMetricsSource } from "./scrape";
import { createSupervisorMetrics } from "./supervisor-metrics";
import { startMetricsHttpServer } from "./http-server";
import { enableProcessMetrics } from "./process-metrics";

const silent = pino({ level: "silent" });

const manager: ListenerManager = {
  apply: () => Promise.reject(new Error("not used")),
  drain: () => Promise.resolve(),
  connectionCount: () => 0,
};

/** A supervisor-side handle wired to a worker runtime through JSON round-trips, as process.send does. */
function wiredWorker(index: number, m: DataPlaneMetrics | null, options: { mute?: boolean } = {}) {
  const handle = createIpcWorkerHandle({
    index,
    send: (msg) => {
      const copy: unknown = JSON.parse(JSON.stringify(msg));
      if (!options.mute) setImmediate(() => runtime.handleMessage(copy));
      return true;
    },
  });
  const runtime = createWorkerRuntime({
    manager,
    logger: silent,
    onDrained: () => undefined,
    send: (msg) => {
      const copy: unknown = JSON.parse(JSON.stringify(msg));
      setImmediate(() => handle.handleMessage(copy));
    },
    metrics: m === null ? undefined : () => m.registry.getMetricsAsJSON(),
  });
  return handle;
}

/** Value of one sample line of the text format. */
function sample(text: string, line: string): number | undefined {
  const l = text.split("\n").find((x) => x.startsWith(line + " "));
  return l === undefined ? undefined : Number(l.slice(line.length + 1));
}

describe("metrics over the supervisor IPC", () => {
  it("validates mgw:metrics and mgw:metrics-result", () => {
    expect(readToWorkerMessage({ t: "mgw:metrics", seq: 4 })).toEqual({ t: "mgw:metrics", seq: 4 });
    expect(readToWorkerMessage({ t: "mgw:metrics", seq: -1 })).toBeNull();
    expect(readFromWorkerMessage({ t: "mgw:metrics-result", seq: 4, metrics: [], error: "" })).toEqual({ t: "mgw:metrics-result", seq: 4, metrics: [], error: "" });
    expect(readFromWorkerMessage({ t: "mgw:metrics-result", seq: 4, metrics: {}, error: "" })).toBeNull();
    expect(readFromWorkerMessage({ t: "mgw:metrics-result", seq: 4, metrics: [] })).toBeNull();
  });

  it("sums two workers' counters and histograms, takes min/max where a gauge says so, and adds the supervisor's own", async () => {
    const a = createDataPlaneMetrics();
    const b = createDataPlaneMetrics();
    a.connectionAccepted("rw");
    a.connectionAccepted("rw");
    b.connectionAccepted("rw");
    b.connectionRefused("rw", "host_not_allowed");
    a.statementFinished("rw", "select", "ok", 0.001);
    b.statementFinished("rw", "select", "ok", 0.003);
    a.setBackendStateProvider(() => [{ cluster: "c", backend: "r1", up: true, replicationLagSeconds: 1, outstandingStatements: 2 }]);
    b.setBackendStateProvider(() => [{ cluster: "c", backend: "r1", up: false, replicationLagSeconds: 3, outstandingStatements: 5 }]);
    const sup = createSupervisorMetrics();
    sup.configServed({ version: 7n, source: "etcd", appliedAt: new Date() });

    const workers = [wiredWorker(0, a), wiredWorker(1, b)];
    const text = await scrapeDataPlane({ own: [sup.registry], workers, timeoutMs: 2000, onWorkerFailed: () => undefined });
    expect(sample(text, 'mysqlgw_client_connections_accepted_total{listener="rw"}')).toBe(3);
    expect(sample(text, 'mysqlgw_client_connections{listener="rw"}')).toBe(3);
    expect(sample(text, 'mysqlgw_client_connections_refused_total{listener="rw",reason="host_not_allowed"}')).toBe(1);
    expect(sample(text, 'mysqlgw_statements_total{listener="rw",kind="select",result="ok"}')).toBe(2);
    expect(sample(text, 'mysqlgw_statement_duration_seconds_bucket{listener="rw",kind="select",le="0.001"}')).toBe(1);
    expect(sample(text, 'mysqlgw_statement_duration_seconds_bucket{listener="rw",kind="select",le="0.005"}')).toBe(2);
    expect(sample(text, 'mysqlgw_statement_duration_seconds_count{listener="rw",kind="select"}')).toBe(2);
    expect(sample(text, 'mysqlgw_backend_up{cluster="c",backend="r1"}')).toBe(0);
    expect(sample(text, 'mysqlgw_backend_replication_lag_seconds{cluster="c",backend="r1"}')).toBe(3);
    expect(sample(text, 'mysqlgw_backend_outstanding_statements{cluster="c",backend="r1"}')).toBe(7);
    expect(sample(text, "mysqlgw_config_version")).toBe(7);
    // one HELP/TYPE per metric after the merge
    expect(text.match(/^# TYPE mysqlgw_statements_total /gm)).toHaveLength(1);
  });

  it("leaves out a worker that does not answer in time (counted), and one without metrics", async () => {
    const a = createDataPlaneMetrics();
    a.connectionAccepted("rw");
    const sup = createSupervisorMetrics();
    const failed: number[] = [];
    const workers: WorkerMetricsSource[] = [wiredWorker(0, a), wiredWorker(1, null, { mute: true }), wiredWorker(2, null)];
    const text = await scrapeDataPlane({
      own: [sup.registry],
      workers,
      timeoutMs: 100,
      onWorkerFailed: (i) => {
        failed.push(i);
        sup.workerScrapeFailed(i);
      },
    });
    expect(failed.sort()).toEqual([1, 2]);
    expect(sample(text, 'mysqlgw_client_connections_accepted_total{listener="rw"}')).toBe(1);
    expect(sample(text, 'mysqlgw_metrics_worker_scrape_failures_total{worker="1"}')).toBe(1);
  });

  it("with --workers 0 serves the supervisor's and the one process's registries, no IPC", async () => {
    const local = createDataPlaneMetrics();
    local.connectionAccepted("rw");
    const sup = createSupervisorMetrics();
    sup.configServed({ version: 2n, source: "disk", appliedAt: null });
    const text = await scrapeDataPlane({ own: [sup.registry, local.registry], workers: [], timeoutMs: 100, onWorkerFailed: () => undefined });
    expect(sample(text, 'mysqlgw_client_connections_accepted_total{listener="rw"}')).toBe(1);
    expect(sample(text, "mysqlgw_config_version")).toBe(2);
    expect(sample(text, "mysqlgw_config_served_from_disk")).toBe(1);
  });

  it("keeps one series of the process metrics per process (label worker)", async () => {
    const a = createDataPlaneMetrics();
    const b = createDataPlaneMetrics();
    enableProcessMetrics(a.registry, "0");
    enableProcessMetrics(a.registry, "0"); // idempotent
    enableProcessMetrics(b.registry, "1");
    const text = await scrapeDataPlane({ own: [a.registry, b.registry], workers: [], timeoutMs: 100, onWorkerFailed: () => undefined });
    expect(sample(text, 'process_cpu_seconds_total{worker="0"}')).toBeGreaterThan(0);
    expect(sample(text, 'process_cpu_seconds_total{worker="1"}')).toBeGreaterThan(0);
    expect(text).not.toContain("process_start_time_seconds"); // omitted by its aggregator
  });

  it("rejects a scrape of a worker that exited", async () => {
    const h = wiredWorker(0, null, { mute: true });
    const p = h.metrics(5000);
    h.handleExit("code 1");
    await expect(p).rejects.toMatchObject({ code: "MGW_ERR_WORKER_EXITED" });
    await expect(h.metrics(5000)).rejects.toMatchObject({ code: "MGW_ERR_WORKER_EXITED" });
  });
});

describe("supervisor metrics", () => {
  it("counts config changes; the watch delay is sampled for versions after the first, from etcd", async () => {
    const s = createSupervisorMetrics();
    const t0 = Date.parse("2026-01-01T00:00:00Z");
    s.configServed({ version: 3n, source: "disk", appliedAt: new Date(t0 - 86_400_000) }, t0);
    s.configServed({ version: 3n, source: "etcd", appliedAt: new Date(t0 - 86_400_000) }, t0 + 10); // same version from etcd: no change
    s.configServed({ version: 4n, source: "etcd", appliedAt: new Date(t0) }, t0 + 180); // 0.18 s
    s.configServed({ version: 5n, source: "etcd", appliedAt: new Date(t0 + 1000) }, t0 + 900); // clock skew: 0
    s.configRejected();
    const text = await s.registry.metrics();
    expect(sample(text, "mysqlgw_config_version")).toBe(5);
    expect(sample(text, "mysqlgw_config_served_from_disk")).toBe(0);
    expect(sample(text, "mysqlgw_config_applied_timestamp_seconds")).toBe((t0 + 1000) / 1000);
    expect(sample(text, 'mysqlgw_config_changes_total{result="applied"}')).toBe(3);
    expect(sample(text, 'mysqlgw_config_changes_total{result="rejected"}')).toBe(1);
    expect(sample(text, "mysqlgw_config_watch_delay_seconds_count")).toBe(2);
    expect(sample(text, "mysqlgw_config_watch_delay_seconds_sum")).toBeCloseTo(0.18, 10);
    expect(sample(text, 'mysqlgw_config_watch_delay_seconds_bucket{le="0.01"}')).toBe(1);
    expect(sample(text, 'mysqlgw_config_watch_delay_seconds_bucket{le="0.25"}')).toBe(2);
  });
});

function get(port: number, path: string, method = "GET"): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? ""), body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("metrics HTTP server", () => {
  it("serves /metrics and /healthz, 404 elsewhere, 405 for other methods", async () => {
    let ok = false;
    let fail = false;
    const srv = await startMetricsHttpServer({
      host: "127.0.0.1",
      port: 0,
      logger: silent,
      metrics: () => (fail ? Promise.reject(new Error("x")) : Promise.resolve("a_total 1\n")),
      health: () => ({ ok, body: { status: ok ? "serving" : "no config" } }),
    });
    try {
      const port = srv.address.port;
      expect(port).toBeGreaterThan(0);
      const m = await get(port, "/metrics");
      expect(m).toEqual({ status: 200, type: "text/plain; version=0.0.4; charset=utf-8", body: "a_total 1\n" });
      expect(await get(port, "/healthz")).toMatchObject({ status: 503, body: '{"status":"no config"}\n' });
      ok = true;
      expect(await get(port, "/healthz?x=1")).toMatchObject({ status: 200, type: "application/json", body: '{"status":"serving"}\n' });
      expect((await get(port, "/")).status).toBe(404);
      expect((await get(port, "/metrics", "POST")).status).toBe(405);
      fail = true;
      expect((await get(port, "/metrics")).status).toBe(500);
    } finally {
      await srv.close();
    }
  });

  it("rejects when the address is taken", async () => {
    const a = await startMetricsHttpServer({ host: "127.0.0.1", port: 0, logger: silent, metrics: async () => "", health: () => ({ ok: true, body: {} }) });
    try {
      await expect(
        startMetricsHttpServer({ host: "127.0.0.1", port: a.address.port, logger: silent, metrics: async () => "", health: () => ({ ok: true, body: {} }) }),
      ).rejects.toMatchObject({ code: "EADDRINUSE" });
    } finally {
      await a.close();
    }
  });
});
