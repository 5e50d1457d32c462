import { Gauge, type Registry } from "prom-client";
import type { QuotaRegistry } from "../quota/quota-registry";
import { FastCounter } from "./series";

/**
 * Quota figures of one worker (docs/observability.md), summed over workers by
 * the supervisor's scrape:
 *
 * - mysqlgw_quota_statements_total{quota, outcome}: admitted (at once),
 *   queued (admitted after waiting), rejected (REJECT, a full queue, maxWait);
 * - mysqlgw_quota_queued_statements{quota}: statements waiting now;
 * - mysqlgw_quota_share_queries_per_second{quota}: this data plane's part of
 *   the fleet-wide rate (its workers' shares added);
 * - mysqlgw_quota_data_planes: the live data planes the shares are computed for.
 */
export function registerQuotaMetrics(registry: Registry, quotas: QuotaRegistry): void {
  const outcomes = new FastCounter({
    name: "mysqlgw_quota_statements_total",
    help: "Statements counted by a quota, by quota and outcome (admitted at once, queued then admitted, rejected).",
    labelNames: ["quota", "outcome"],
    registry,
  });
  quotas.setSink({ outcome: (q, o) => outcomes.inc(q, o) });
  new Gauge({
    name: "mysqlgw_quota_queued_statements",
    help: "Statements waiting in a quota's queue now, by quota.",
    labelNames: ["quota"],
    registers: [registry],
    aggregator: "sum",
    collect() {
      this.reset();
      for (const q of quotas.all()) this.set({ quota: q.name }, q.queued());
    },
  });
  new Gauge({
    name: "mysqlgw_quota_share_queries_per_second",
    help: "This data plane's share of a quota's fleet-wide queries_per_second (its workers' shares added), by quota.",
    labelNames: ["quota"],
    registers: [registry],
    aggregator: "sum",
    collect() {
      this.reset();
      for (const q of quotas.all()) if (q.spec.queriesPerSecond > 0) this.set({ quota: q.name }, q.currentShare.ratePerSecond);
    },
  });
  new Gauge({
    name: "mysqlgw_quota_data_planes",
    help: "Live data planes in the etcd registry that quota shares are computed for.",
    registers: [registry],
    aggregator: "max",
    collect() {
      this.set(quotas.position.dataPlanes);
    },
  });
}
