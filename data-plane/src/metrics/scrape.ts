import { AggregatorRegistry, Registry } from "prom-client";

/** Something whose metrics are fetched at each scrape: a worker over IPC. */
export interface WorkerMetricsSource {
  readonly index: number;
  /** The worker's registry as getMetricsAsJSON() returns it; rejects when it does not answer within `timeoutMs`. */
  metrics(timeoutMs: number): Promise<unknown[]>;
}

export interface ScrapeOptions {
  /** This process's own registries (the supervisor's; with --workers 0 also the serving process's). */
  own: readonly Registry[];
  workers: readonly WorkerMetricsSource[];
  /** Bound on each worker's answer. */
  timeoutMs: number;
  /** A worker did not answer: its figures are left out of this scrape. */
  onWorkerFailed(index: number): void;
}

/**
 * One scrape of a data plane: every worker's metrics (in parallel, each
 * bounded by `timeoutMs`) and this process's, merged by each metric's
 * aggregator (counters and histograms summed; gauges summed, or min/max where
 * a metric says so), in the Prometheus text format.
 */
export async function scrapeDataPlane(options: ScrapeOptions): Promise<string> {
  const fromWorkers = await Promise.all(
    options.workers.map((w) =>
      w.metrics(options.timeoutMs).catch(() => {
        options.onWorkerFailed(w.index);
        return [] as unknown[];
      }),
    ),
  );
  // own registries last: they count the failures just seen
  const own = await Promise.all(options.own.map((r) => r.getMetricsAsJSON()));
  return AggregatorRegistry.aggregate([...fromWorkers, ...own] as object[]).metrics();
}

/** Content-Type of the Prometheus text exposition format (0.0.4). */
export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
