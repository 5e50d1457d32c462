import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Prometheus metrics of one control plane (docs/observability.md), served at
 * GET /metrics on its API port. Named by Prometheus conventions: prefix
 * `mysqlgw_`, base units in the name, `_total` on counters. Labels are
 * bounded: RPC method names, Connect codes, fixed results, and the cluster and
 * backend names of the policy.
 */
export interface ControlPlaneMetrics {
  readonly registry: Registry;
  /** One AdminService call (gRPC, Connect or REST) ended with `code` ("ok" or a Connect code name). */
  apiRequest(method: string, code: string, seconds: number): void;
  /** One ApplyPolicy ended (see ApplyResult). */
  applied(result: ApplyResult): void;
  /** The current config version is known to be `version` (after an apply, or read from etcd). */
  configVersion(version: bigint): void;
  readonly monitor: MonitorMetrics;
  /** Read at each scrape; bounded by `timeoutMs` (a failure keeps the last version and sets mysqlgw_etcd_reachable 0). */
  setCurrentVersionSource(fn: () => Promise<bigint | null>, timeoutMs?: number): void;
  /** Read at each scrape: does this process lead the monitor? */
  setMonitorLeaderSource(fn: () => boolean): void;
  /** The Prometheus text of one scrape. */
  scrape(): Promise<string>;
}

/**
 * applied: a new config version was written; unchanged: the policy equals the
 * current one (nothing written); dry_run; invalid: validation refused it;
 * conflict: expectedVersion did not match, or a concurrent apply won twice;
 * error: anything else (etcd unreachable, …).
 */
export type ApplyResult = "applied" | "unchanged" | "dry_run" | "invalid" | "conflict" | "error";

/** What the monitor's leader reports after each probe. */
export interface MonitorMetrics {
  /** One probe of cluster/backend ended: `ok` or not; `up` is the backend's state after it; `lagSeconds` null when not a replica or unknown. */
  probed(cluster: string, backend: string, ok: boolean, up: boolean, lagSeconds: number | null): void;
  /** The backend is no longer probed by this process (left the policy, or leadership lost): its gauges go. */
  forget(cluster: string, backend: string): void;
  /** An automatic failover attempt ended; `seconds`: from detection to the new roles published (promoted only). */
  failover?(cluster: string, outcome: "promoted" | "aborted", seconds: number | null): void;
}

export const API_DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const APPLY_RESULTS: readonly ApplyResult[] = ["applied", "unchanged", "dry_run", "invalid", "conflict", "error"];

export function createControlPlaneMetrics(registry: Registry = new Registry()): ControlPlaneMetrics {
  const registers = [registry];
  const requests = new Counter({
    name: "mysqlgw_api_requests_total",
    help: "AdminService calls (gRPC, Connect and REST alike), by method and code (ok or the Connect error code).",
    labelNames: ["method", "code"],
    registers,
  });
  const duration = new Histogram({
    name: "mysqlgw_api_request_duration_seconds",
    help: "Time AdminService calls took in their handler, by method.",
    labelNames: ["method"],
    buckets: [...API_DURATION_BUCKETS],
    registers,
  });
  const applies = new Counter({
    name: "mysqlgw_policy_applies_total",
    help: "ApplyPolicy calls by result: applied (new version), unchanged, dry_run, invalid, conflict, error.",
    labelNames: ["result"],
    registers,
  });
  for (const r of APPLY_RESULTS) applies.inc({ result: r }, 0);

  let versionSource: (() => Promise<bigint | null>) | null = null;
  let versionTimeoutMs = 1000;
  let lastVersion = 0;
  let reachable = 0;
  /** One etcd read per scrape, shared by the two gauges that report it. */
  let reading: Promise<void> | null = null;
  function readVersion(): Promise<void> {
    const src = versionSource;
    if (src === null) return Promise.resolve();
    reading ??= withTimeout(src(), versionTimeoutMs)
      .then(
        (v) => {
          lastVersion = Number(v ?? 0n);
          reachable = 1;
        },
        () => {
          reachable = 0;
        },
      )
      .finally(() => {
        reading = null;
      });
    return reading;
  }
  new Gauge({
    name: "mysqlgw_config_version",
    help: "The current config version in etcd (0 before the first apply); the last one known when etcd does not answer.",
    registers,
    async collect() {
      await readVersion();
      this.set(lastVersion);
    },
  });
  new Gauge({
    name: "mysqlgw_etcd_reachable",
    help: "1 when this scrape's read of the current config from etcd succeeded, else 0.",
    registers,
    async collect() {
      await readVersion();
      this.set(reachable);
    },
  });

  let leading: () => boolean = () => false;
  new Gauge({
    name: "mysqlgw_monitor_leader",
    help: "1 while this control plane leads the backend monitor (probes and writes health), else 0.",
    registers,
    collect() {
      this.set(leading() ? 1 : 0);
    },
  });

  const probes = new Counter({
    name: "mysqlgw_monitor_probes_total",
    help: "Backend probes run by this control plane while leading the monitor, by cluster, backend and result (ok, error).",
    labelNames: ["cluster", "backend", "result"],
    registers,
  });
  const up = new Gauge({
    name: "mysqlgw_monitor_backend_up",
    help: "1 when the monitor sees the backend UP, 0 when DOWN; only on the leading control plane.",
    labelNames: ["cluster", "backend"],
    registers,
  });
  const lag = new Gauge({
    name: "mysqlgw_monitor_backend_replication_lag_seconds",
    help: "Seconds_Behind_Master of a replica at the monitor's last probe; only on the leading control plane, only for replicas.",
    labelNames: ["cluster", "backend"],
    registers,
  });

  const failovers = new Counter({
    name: "mysqlgw_monitor_failovers_total",
    help: "Automatic failover attempts run by this control plane (--failover), by cluster and outcome (promoted, aborted).",
    labelNames: ["cluster", "outcome"],
    registers,
  });
  const failoverSeconds = new Histogram({
    name: "mysqlgw_monitor_failover_duration_seconds",
    help: "Promoted automatic failovers: seconds from the primary's detection (DOWN) to the new primary's health written.",
    labelNames: ["cluster"],
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers,
  });

  return {
    registry,
    apiRequest(method, code, seconds) {
      requests.inc({ method, code });
      duration.observe({ method }, seconds);
    },
    applied(result) {
      applies.inc({ result });
    },
    configVersion(version) {
      lastVersion = Number(version);
    },
    monitor: {
      probed(cluster, backend, ok, isUp, lagSeconds) {
        probes.inc({ cluster, backend, result: ok ? "ok" : "error" });
        up.set({ cluster, backend }, isUp ? 1 : 0);
        if (lagSeconds !== null && Number.isFinite(lagSeconds)) lag.set({ cluster, backend }, lagSeconds);
        else lag.remove({ cluster, backend });
      },
      forget(cluster, backend) {
        up.remove({ cluster, backend });
        lag.remove({ cluster, backend });
      },
      failover(cluster, outcome, seconds) {
        failovers.inc({ cluster, outcome });
        if (seconds !== null && Number.isFinite(seconds)) failoverSeconds.observe({ cluster }, seconds);
      },
    },
    setCurrentVersionSource(fn, timeoutMs = 1000) {
      versionSource = fn;
      versionTimeoutMs = timeoutMs;
    },
    setMonitorLeaderSource(fn) {
      leading = fn;
    },
    scrape: () => registry.metrics(),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The ApplyResult of an ApplyPolicy that threw `code` (an MgwError code, or "" for anything else). */
export function applyFailureResult(code: string): ApplyResult {
  if (code === "MGW_ERR_POLICY_INVALID") return "invalid";
  if (code === "MGW_ERR_POLICY_VERSION_MISMATCH" || code === "MGW_ERR_STORE_CONFLICT") return "conflict";
  return "error";
}
