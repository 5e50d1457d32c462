/**
 * What the replication operations read from a server, and which backend of a
 * cluster is its primary (pure).
 */

/** One server's replication state, read by readBackendState(). */
export interface BackendState {
  readOnly: boolean;
  serverId: number;
  /** @@log_bin: its own writes get GTIDs in its binlog. */
  logBin: boolean;
  gtidBinlogPos: string;
  /** @@gtid_binlog_state: the last GTID per (domain, server id) in its binlog. */
  gtidBinlogState: string;
  gtidCurrentPos: string;
  gtidSlavePos: string;
  /** SHOW SLAVE STATUS has a Master_Host. */
  replicationConfigured: boolean;
  ioRunning: boolean;
  sqlRunning: boolean;
  /** "host:port" of its source; "" when not replicating. */
  sourceAddress: string;
  masterUser: string;
  lastIoError: string;
  lastSqlError: string;
  /** rpl_semi_sync_master_enabled / _slave_enabled; null when the server has no such variable. */
  semiSyncMaster: boolean | null;
  semiSyncSlave: boolean | null;
}

/** A backend of the cluster as the operation sees it: its state, or why it could not be read. */
export interface BackendView {
  name: string;
  address: string;
  state: BackendState | null;
  error: string;
}

/** The fencing epoch's parts an operation needs. */
export interface EpochView {
  epoch: bigint;
  primary: string;
  fenced: readonly string[];
}

/** "host:port" (or "[v6]:port") → host and port; port 3306 when absent. */
export function splitAddress(address: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  return [m?.[1] ?? m?.[2] ?? address, m !== null ? Number(m[3]) : 3306];
}

/** Same server address, with localhost, ::1 and 127.0.0.1 taken as one. */
export function sameAddress(a: string, b: string): boolean {
  const [ha, pa] = splitAddress(a);
  const [hb, pb] = splitAddress(b);
  const local = (h: string): string => (h === "localhost" || h === "::1" ? "127.0.0.1" : h.toLowerCase());
  return pa === pb && local(ha) === local(hb);
}

/** The backends (by name) whose source is `address`. */
export function replicasOf(views: readonly BackendView[], address: string): string[] {
  return views.filter((v) => v.state !== null && v.state.replicationConfigured && sameAddress(v.state.sourceAddress, address)).map((v) => v.name);
}

export type PrimaryResult = { primary: string; why: string } | { primary: null; why: string };

/**
 * The cluster's current primary:
 *  1. the failover epoch's primary, when there is an epoch naming a backend of the policy;
 *  2. else the one backend that replicates from nobody and that others replicate from
 *     (a primary paused read_only is still the root of the topology);
 *  3. else the one backend that replicates from nobody and is writable;
 *  4. else the only backend of a one-backend cluster.
 * Otherwise none, with why (what an operator should look at).
 */
export function findPrimary(views: readonly BackendView[], epoch: EpochView | null): PrimaryResult {
  if (epoch !== null && epoch.primary !== "" && views.some((v) => v.name === epoch.primary)) {
    return { primary: epoch.primary, why: `the failover epoch ${epoch.epoch} names it` };
  }
  const roots = views.filter((v) => v.state !== null && !v.state.replicationConfigured);
  const withReplicas = roots.filter((v) => replicasOf(views, v.address).length > 0);
  if (withReplicas.length === 1) return { primary: withReplicas[0]!.name, why: "the other backends replicate from it" };
  const writable = roots.filter((v) => !v.state!.readOnly);
  if (withReplicas.length === 0 && writable.length === 1) return { primary: writable[0]!.name, why: "it is the one writable backend that replicates from nobody" };
  if (views.length === 1) return { primary: views[0]!.name, why: "it is the cluster's only backend" };
  const unread = views.filter((v) => v.state === null).map((v) => v.name);
  const problem =
    withReplicas.length > 1
      ? `${withReplicas.map((v) => v.name).join(" and ")} both have replicas and replicate from nobody`
      : writable.length > 1
        ? `${writable.map((v) => v.name).join(" and ")} are all writable and replicate from nobody`
        : "no backend is writable with the others replicating from it";
  return {
    primary: null,
    why: `cannot tell which backend is the primary: ${problem}${unread.length > 0 ? ` (${unread.join(", ")} could not be read)` : ""}; check the servers (mysqlgw backends) and fix the topology by hand`,
  };
}
