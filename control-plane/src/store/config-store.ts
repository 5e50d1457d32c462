import type { BackendHealth, ConfigVersion, DataPlane, FailoverRecord, Policy } from "@mysqlgw/proto";

/** Result of ConfigStore.applyIfChanged. */
export interface ApplyResult {
  /** The version current after the call: the new one if changed, else the existing one. */
  readonly version: bigint;
  /** False when the policy's digest equals the current version's (nothing written). */
  readonly changed: boolean;
}

/**
 * The control plane's narrow seam to its storage (etcd in production, memory in
 * tests). Implementations convert their own errors: every failure to reach the
 * backing store is an MgwError MGW_ERR_STORE_UNAVAILABLE whose message says
 * where the store is and what to check; a lost race is MGW_ERR_STORE_CONFLICT.
 *
 * Concurrency: methods may be called concurrently. Reads return fresh copies
 * that the caller may keep and modify. Every call is bounded in time.
 */
export interface ConfigStore {
  /** Where the configuration lives, for messages: e.g. "etcd at http://127.0.0.1:2379". */
  readonly description: string;
  /** The current config version, or undefined if nothing was ever applied. */
  getCurrent(): Promise<ConfigVersion | undefined>;
  /** A version from the history, or undefined if there is no such version. */
  getVersion(version: bigint): Promise<ConfigVersion | undefined>;
  /**
   * Makes `policy` (already validated and normalised) the current config,
   * atomically: if its digest equals the current version's, writes nothing;
   * otherwise writes version current+1 and moves `current` to it in one
   * transaction. Versions increase strictly from 1.
   *
   * `expectedVersion` is the version the caller read (0n: none yet); if the
   * current version is another one, or changes before the write commits, it
   * throws MGW_ERR_STORE_CONFLICT and writes nothing.
   */
  applyIfChanged(policy: Policy, expectedVersion: bigint, appliedBy: string): Promise<ApplyResult>;
  /** Data planes currently registered (leases alive), sorted by id. */
  listDataPlanes(): Promise<DataPlane[]>;
  /** Backend health as the monitor last wrote it, for one cluster or ("") all, sorted by cluster then backend. */
  listBackendHealth(cluster: string): Promise<BackendHealth[]>;
  /** Failovers the monitor recorded, for one cluster or ("") all, newest first. */
  listFailovers(cluster: string): Promise<FailoverRecord[]>;
  /** Releases connections. Further calls fail. */
  close(): Promise<void>;
}
