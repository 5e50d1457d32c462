import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { Supervisor } from "../supervisor/supervisor";
import { startMetricsHttpServer, type Health } from "./http-server";
import { scrapeDataPlane, type WorkerMetricsSource } from "./scrape";
import { createSupervisorMetrics } from "./supervisor-metrics";
import { enableProcessMetrics } from "./process-metrics";

/** Default bound on a worker's answer to a scrape. */
export const WORKER_SCRAPE_TIMEOUT_MS = 3000;

export interface DataPlaneMetricsServerOptions {
  listen: { host: string; port: number };
  logger: Logger;
  supervisor: Pick<Supervisor, "serving">;
  /** The live workers, asked at each scrape. */
  workers(): readonly WorkerMetricsSource[];
  /** With --workers 0, the registry of this process's sessions; else null. */
  local: Registry | null;
  /** True once SIGTERM started the drain (/healthz answers 503 then). */
  shuttingDown(): boolean;
  workerTimeoutMs?: number;
}

/** The supervisor's metrics endpoint; the supervisor tells it about config events. */
export interface DataPlaneMetricsServer {
  readonly address: { host: string; port: number };
  /** Every worker serves a (new) config: updates the config gauges and the watch delay. */
  served(): void;
  /** A worker rejected a config version. */
  rejected(): void;
  close(): Promise<void>;
}

/**
 * Starts `--metrics-listen`: GET /metrics is the supervisor's own metrics
 * (config version served, changes, watch delay) merged with every worker's
 * (scraped over IPC at each request); GET /healthz is 200 while a config is
 * served, 503 before the first one and while draining.
 */
export async function startDataPlaneMetricsServer(options: DataPlaneMetricsServerOptions): Promise<DataPlaneMetricsServer> {
  const sup = createSupervisorMetrics();
  // with --workers 0 this one process also serves the listeners: its series say worker "0"
  enableProcessMetrics(sup.registry, options.local === null ? "supervisor" : "0");
  const own = options.local === null ? [sup.registry] : [sup.registry, options.local];
  const timeoutMs = options.workerTimeoutMs ?? WORKER_SCRAPE_TIMEOUT_MS;

  function health(): Health {
    const s = options.supervisor.serving();
    if (options.shuttingDown()) return { ok: false, body: { status: "draining" } };
    if (s === null) return { ok: false, body: { status: "no config", message: "no config version served yet; see the data plane's log" } };
    return { ok: true, body: { status: "serving", version: s.doc.version.toString(), source: s.source, listeners: s.listening } };
  }

  const http = await startMetricsHttpServer({
    host: options.listen.host,
    port: options.listen.port,
    logger: options.logger,
    health,
    metrics: () =>
      scrapeDataPlane({
        own,
        workers: options.workers(),
        timeoutMs,
        onWorkerFailed: (index) => {
          sup.workerScrapeFailed(index);
          options.logger.warn({ worker: index, timeoutMs }, "a worker did not send its metrics; this scrape lacks its figures");
        },
      }),
  });
  options.logger.info({ metrics: `http://${hostForUrl(http.address.host)}:${http.address.port}/metrics` }, "serving metrics");

  return {
    address: http.address,
    served() {
      const s = options.supervisor.serving();
      if (s === null) return;
      const at = s.doc.config.appliedAt;
      sup.configServed({ version: s.doc.version, source: s.source, appliedAt: at === undefined ? null : timestampDate(at) });
    },
    rejected: () => sup.configRejected(),
    close: () => http.close(),
  };
}

function hostForUrl(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
