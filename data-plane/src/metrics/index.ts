// Prometheus metrics of the data plane (docs/observability.md).
import { createDataPlaneMetrics, type DataPlaneMetrics } from "./data-plane-metrics";

/**
 * This process's metrics: every session of a worker counts here, and the
 * supervisor scrapes this registry over IPC. Tests that need a clean slate
 * create their own with createDataPlaneMetrics().
 */
export const metrics: DataPlaneMetrics = createDataPlaneMetrics();

export {
  createDataPlaneMetrics,
  STATEMENT_DURATION_BUCKETS,
  STATEMENT_KIND_LABELS,
  type DataPlaneMetrics,
  type DataPlaneMetricsOptions,
  type PoolStats,
  type BackendState,
  type RefusalReason,
  type AcceptRefusalReason,
  type AuthRefusalReason,
  type HandshakeFailureReason,
  type BackendConnectFailureReason,
} from "./data-plane-metrics";
export { handshakeFailureReason, backendConnectFailureReason } from "./reasons";
export { createSupervisorMetrics, WATCH_DELAY_BUCKETS, type SupervisorMetrics, type ServedConfig } from "./supervisor-metrics";
export { scrapeDataPlane, PROMETHEUS_CONTENT_TYPE, type WorkerMetricsSource, type ScrapeOptions } from "./scrape";
export { enableProcessMetrics } from "./process-metrics";
export { startMetricsHttpServer, type MetricsHttpServer, type MetricsHttpServerOptions, type Health } from "./http-server";
