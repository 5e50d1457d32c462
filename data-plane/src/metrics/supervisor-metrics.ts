import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Bucket bounds of mysqlgw_config_watch_delay_seconds: 10 ms to 2 min. */
export const WATCH_DELAY_BUCKETS: readonly number[] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** A config version now served by every worker. */
export interface ServedConfig {
  version: bigint;
  source: "etcd" | "disk";
  /** The ConfigVersion's applied_at (control plane clock); null when absent. */
  appliedAt: Date | null;
}

/**
 * The supervisor's own metrics: what config the data plane serves and how
 * fast it got there. Created once per supervisor process; the supervisor
 * serves them next to the sum of its workers' metrics.
 */
export interface SupervisorMetrics {
  readonly registry: Registry;
  /**
   * Every worker serves `served` (call at each "serving config"). A version
   * other than the last one counts as a change applied; one that arrived over
   * the etcd watch after the first one served also gives a watch-delay sample:
   * `now` − applied_at (clamped at 0). The first version served after startup
   * gives none (it may have been applied long before this process started).
   */
  configServed(served: ServedConfig, nowMs?: number): void;
  /** A config version some worker rejected (it is not served, not retried). */
  configRejected(): void;
  /** A worker did not answer a metrics scrape in time (its figures are missing from that scrape). */
  workerScrapeFailed(worker: number): void;
}

export function createSupervisorMetrics(registry: Registry = new Registry()): SupervisorMetrics {
  const registers = [registry];
  const version = new Gauge({
    name: "mysqlgw_config_version",
    help: "Config version every worker of this data plane serves (0 before the first).",
    registers,
    aggregator: "max",
  });
  const fromDisk = new Gauge({
    name: "mysqlgw_config_served_from_disk",
    help: "1 while the config served is the last good copy on disk (etcd unreachable at startup), else 0.",
    registers,
    aggregator: "max",
  });
  const appliedAt = new Gauge({
    name: "mysqlgw_config_applied_timestamp_seconds",
    help: "applied_at of the config version served (Unix seconds, control-plane clock); 0 when unknown.",
    registers,
    aggregator: "max",
  });
  const changes = new Counter({
    name: "mysqlgw_config_changes_total",
    help: "Config versions this data plane moved to (result=applied) or that a worker rejected (result=rejected).",
    labelNames: ["result"],
    registers,
  });
  const delay = new Histogram({
    name: "mysqlgw_config_watch_delay_seconds",
    help: "Time from a config version's applied_at (control plane) to every worker serving it (data plane), for versions seen over the etcd watch; includes clock skew between the hosts.",
    buckets: [...WATCH_DELAY_BUCKETS],
    registers,
  });
  const scrapeFailures = new Counter({
    name: "mysqlgw_metrics_worker_scrape_failures_total",
    help: "Metrics scrapes a worker did not answer in time, by worker index.",
    labelNames: ["worker"],
    registers,
  });
  version.set(0);
  fromDisk.set(0);
  appliedAt.set(0);
  changes.inc({ result: "applied" }, 0);
  changes.inc({ result: "rejected" }, 0);

  let last: bigint | null = null;

  return {
    registry,
    configServed(served, nowMs = Date.now()) {
      version.set(Number(served.version));
      fromDisk.set(served.source === "disk" ? 1 : 0);
      appliedAt.set(served.appliedAt === null ? 0 : served.appliedAt.getTime() / 1000);
      if (last === served.version) return;
      const first = last === null;
      last = served.version;
      changes.inc({ result: "applied" });
      if (!first && served.source === "etcd" && served.appliedAt !== null) {
        delay.observe(Math.max(0, nowMs - served.appliedAt.getTime()) / 1000);
      }
    },
    configRejected() {
      changes.inc({ result: "rejected" });
    },
    workerScrapeFailed(worker) {
      scrapeFailures.inc({ worker: String(worker) });
    },
  };
}
