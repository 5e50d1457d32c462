import { durationMs, type Duration } from "@bufbuild/protobuf/wkt";
import type { Cluster } from "@mysqlgw/proto";
import type { PolicyViolationInit } from "../errors";

/** What max_connections 0 (absent) means; as the data plane's pool-settings.ts. */
export const DEFAULT_POOL_MAX_CONNECTIONS = 100;
/** MariaDB's own ceiling on max_connections. */
const MAX_POOL_CONNECTIONS = 100_000;
const DAY_MS = 86_400_000;
const MAX_ACQUIRE_TIMEOUT_MS = 60_000;

/**
 * Cluster.pool: maxConnections within MariaDB's range, minIdle at most the
 * (effective) maxConnections, every duration at least 1 ms and within sane
 * bounds (acquireTimeout at most 60 s: a statement should fail rather than
 * hang). Pushes violations onto `out`.
 */
export function checkClusterPool(c: Cluster, index: number, out: PolicyViolationInit[]): void {
  const p = c.pool;
  if (p === undefined) return;
  const add = (field: string, description: string): void => {
    out.push({ kind: "Cluster", name: c.name, index, field: `pool.${field}`, description });
  };
  if (p.maxConnections > MAX_POOL_CONNECTIONS) {
    add("maxConnections", `${p.maxConnections} is too large; use 1..${MAX_POOL_CONNECTIONS} (0 or absent means ${DEFAULT_POOL_MAX_CONNECTIONS}); it is per data-plane worker and backend`);
  }
  const max = p.maxConnections === 0 ? DEFAULT_POOL_MAX_CONNECTIONS : p.maxConnections;
  if (p.minIdle > max) {
    add(
      "minIdle",
      `${p.minIdle} is more than maxConnections (${max}${p.maxConnections === 0 ? ", the default" : ""}); lower minIdle or raise maxConnections`,
    );
  }
  const checkDuration = (field: string, d: Duration | undefined, maxMs: number, example: string): void => {
    if (d === undefined) return;
    const ms = durationMs(d);
    if (!(ms >= 1 && ms <= maxMs)) {
      const days = maxMs / DAY_MS;
      const range = maxMs >= DAY_MS ? `${days} day${days === 1 ? "" : "s"}` : `${maxMs / 1000} s`;
      add(field, `${ms} ms is out of range; use 1 ms to ${range} (e.g. ${example}) or leave it out for the default`);
    }
  };
  checkDuration("maxLifetime", p.maxLifetime, 30 * DAY_MS, "3600s");
  checkDuration("idleTimeout", p.idleTimeout, 30 * DAY_MS, "300s");
  checkDuration("checkAfterIdle", p.checkAfterIdle, DAY_MS, "5s");
  checkDuration("acquireTimeout", p.acquireTimeout, MAX_ACQUIRE_TIMEOUT_MS, "2s");
}
