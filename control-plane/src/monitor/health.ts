import { create, toJsonString } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Backend_Role, BackendHealth_Role, BackendHealth_State, BackendHealthSchema, type BackendHealth, type HealthCheck } from "@mysqlgw/proto";

/** Defaults of HealthCheck fields left unset. */
export const DEFAULT_PROBE_INTERVAL_MS = 1000;
export const DEFAULT_PROBE_TIMEOUT_MS = 1000;
export const DEFAULT_FAILURE_THRESHOLD = 3;
/** Floor on the interval, so that a typo cannot turn the monitor into a load generator. */
export const MIN_PROBE_INTERVAL_MS = 100;
/** An unchanged BackendHealth is rewritten (checked_at refreshed) at most this often. */
export const DEFAULT_REFRESH_MS = 5000;

/** A HealthCheck with every default applied. */
export interface ProbeSettings {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly failureThreshold: number;
  /** 0: no bound. */
  readonly maxReplicationLagMs: number;
}

export function probeSettings(hc: HealthCheck | undefined): ProbeSettings {
  const ms = (d: Parameters<typeof durationMs>[0] | undefined, dflt: number): number => {
    if (d === undefined) return dflt;
    const v = durationMs(d);
    return Number.isFinite(v) && v > 0 ? v : dflt;
  };
  return {
    intervalMs: Math.max(MIN_PROBE_INTERVAL_MS, ms(hc?.interval, DEFAULT_PROBE_INTERVAL_MS)),
    timeoutMs: ms(hc?.timeout, DEFAULT_PROBE_TIMEOUT_MS),
    failureThreshold: hc?.failureThreshold !== undefined && hc.failureThreshold > 0 ? hc.failureThreshold : DEFAULT_FAILURE_THRESHOLD,
    maxReplicationLagMs: ms(hc?.maxReplicationLag, 0),
  };
}

/** What one successful probe read from a server. */
export interface ProbeObservation {
  readOnly: boolean;
  serverId: number;
  gtidBinlogPos: string;
  gtidCurrentPos: string;
  gtidSlavePos: string;
  /** SHOW SLAVE STATUS returned a row with a Master_Host: replication is configured. */
  replicationConfigured: boolean;
  ioRunning: boolean;
  sqlRunning: boolean;
  /** Seconds_Behind_Master; null when NULL (threads stopped, unknown) or not replicating. */
  lagSeconds: number | null;
  /** "host:port" of the source, "" when not replicating. */
  sourceAddress: string;
}

/** Row shape of SHOW SLAVE STATUS, the columns the monitor reads. */
export interface SlaveStatusRow {
  Slave_IO_Running?: unknown;
  Slave_SQL_Running?: unknown;
  Seconds_Behind_Master?: unknown;
  Master_Host?: unknown;
  Master_Port?: unknown;
}

/** Turns the two queries' rows into an observation (pure, for tests). */
export function observe(vars: Record<string, unknown>, slave: SlaveStatusRow | undefined): ProbeObservation {
  const str = (v: unknown): string => (v === null || v === undefined ? "" : String(v));
  const masterHost = slave === undefined ? "" : str(slave.Master_Host);
  const configured = masterHost !== "";
  const lag = configured ? slave?.Seconds_Behind_Master : null;
  const lagNum = lag === null || lag === undefined || lag === "" ? null : Number(lag);
  return {
    readOnly: Number(vars["@@read_only"]) === 1,
    serverId: Number(vars["@@server_id"]) || 0,
    gtidBinlogPos: str(vars["@@gtid_binlog_pos"]),
    gtidCurrentPos: str(vars["@@gtid_current_pos"]),
    gtidSlavePos: str(vars["@@gtid_slave_pos"]),
    replicationConfigured: configured,
    ioRunning: configured && str(slave?.Slave_IO_Running) === "Yes",
    sqlRunning: configured && str(slave?.Slave_SQL_Running) === "Yes",
    lagSeconds: lagNum !== null && Number.isFinite(lagNum) ? lagNum : null,
    sourceAddress: configured ? formatAddress(masterHost, Number(slave?.Master_Port) || 3306) : "",
  };
}

function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Role discovery from the server itself: PRIMARY when it does not replicate
 * (no source configured) and read_only is off; REPLICA when it replicates —
 * even with its threads stopped, a paused replica is still a replica — or is
 * read_only (a fenced or not yet promoted server takes no writes).
 */
export function discoverRole(o: ProbeObservation): BackendHealth_Role {
  return !o.replicationConfigured && !o.readOnly ? BackendHealth_Role.PRIMARY : BackendHealth_Role.REPLICA;
}

/**
 * Roles in policy are expectations: a discovered role that differs is
 * described (for BackendHealth.role_disagreement), never applied. "" when
 * there is no expectation, no discovered role yet, or they agree.
 */
export function roleDisagreement(expected: Backend_Role, o: ProbeObservation | null): string {
  if (expected === Backend_Role.UNSPECIFIED || o === null) return "";
  const found = discoverRole(o);
  const want = expected === Backend_Role.PRIMARY ? BackendHealth_Role.PRIMARY : BackendHealth_Role.REPLICA;
  if (found === want) return "";
  const why = found === BackendHealth_Role.PRIMARY
    ? "read_only is OFF and it replicates from no source"
    : o.replicationConfigured
      ? `it replicates from ${o.sourceAddress}${o.readOnly ? " and is read_only" : ""}`
      : "it is read_only";
  return `policy expects ${want === BackendHealth_Role.PRIMARY ? "PRIMARY" : "REPLICA"}, the server is ${found === BackendHealth_Role.PRIMARY ? "PRIMARY" : "REPLICA"}: ${why}; fix the server or the policy's expectedRole`;
}

/** Per-backend state the prober carries from one probe to the next. */
export interface BackendTracker {
  consecutiveFailures: number;
  /** The last successful observation, kept while probes fail so that role and positions stay known. */
  last: ProbeObservation | null;
  lastError: string;
  state: BackendHealth_State;
}

export function newTracker(): BackendTracker {
  return { consecutiveFailures: 0, last: null, lastError: "", state: BackendHealth_State.UNSPECIFIED };
}

/**
 * Folds one probe result into the tracker: a success makes the backend UP at
 * once and resets the count; a failure counts, and the backend is DOWN from
 * the `threshold`-th consecutive one on (before that it keeps its state; a
 * backend never seen answering stays UNSPECIFIED until then).
 */
export function applyProbe(t: BackendTracker, result: { ok: true; observation: ProbeObservation } | { ok: false; error: string }, threshold: number): void {
  if (result.ok) {
    t.consecutiveFailures = 0;
    t.last = result.observation;
    t.lastError = "";
    t.state = BackendHealth_State.UP;
    return;
  }
  t.consecutiveFailures = Math.min(t.consecutiveFailures + 1, 1_000_000);
  t.lastError = result.error;
  if (t.consecutiveFailures >= threshold) t.state = BackendHealth_State.DOWN;
}

/** The BackendHealth to publish for a tracker. */
export function buildHealth(
  t: BackendTracker,
  ids: { cluster: string; backend: string; address: string; monitorId: string },
  checkedAtMs: number,
  expectedRole: Backend_Role = Backend_Role.UNSPECIFIED,
): BackendHealth {
  const o = t.last;
  return create(BackendHealthSchema, {
    cluster: ids.cluster,
    backend: ids.backend,
    address: ids.address,
    state: t.state,
    role: o === null ? BackendHealth_Role.UNSPECIFIED : discoverRole(o),
    readOnly: o?.readOnly ?? false,
    serverId: o?.serverId ?? 0,
    gtidBinlogPos: o?.gtidBinlogPos ?? "",
    gtidCurrentPos: o?.gtidCurrentPos ?? "",
    gtidSlavePos: o?.gtidSlavePos ?? "",
    replicaIoRunning: o?.ioRunning ?? false,
    replicaSqlRunning: o?.sqlRunning ?? false,
    replicationLag: o !== null && o.lagSeconds !== null ? durationFromMs(o.lagSeconds * 1000) : undefined,
    sourceAddress: o?.sourceAddress ?? "",
    consecutiveFailures: t.consecutiveFailures,
    lastError: t.lastError,
    checkedAt: timestampFromMs(checkedAtMs),
    monitorId: ids.monitorId,
    roleDisagreement: roleDisagreement(expectedRole, o),
  });
}

/**
 * What decides whether a BackendHealth is worth an etcd write: everything but
 * checked_at; consecutive_failures counts only up to the threshold, so that a
 * backend that stays down does not cause a write per probe.
 */
export function healthFingerprint(h: BackendHealth, threshold: number): string {
  const copy = create(BackendHealthSchema, { ...h, checkedAt: undefined, consecutiveFailures: Math.min(h.consecutiveFailures, threshold) });
  return toJsonString(BackendHealthSchema, copy);
}

/** True when the health must be written now: it changed, or the last write is `refreshMs` old. */
export function shouldWrite(prev: { fingerprint: string; atMs: number } | undefined, fingerprint: string, nowMs: number, refreshMs = DEFAULT_REFRESH_MS): boolean {
  return prev === undefined || prev.fingerprint !== fingerprint || nowMs - prev.atMs >= refreshMs;
}
