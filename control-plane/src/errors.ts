/**
 * The control plane's one error family. Every error this package raises on
 * purpose is an MgwError with a stable code; the API boundary
 * (api/connect-errors.ts) maps each code to a Connect code through one
 * exhaustive table.
 */
export type MgwErrorCode =
  /** etcd did not answer (connection refused, timeout, no leader). */
  | "MGW_ERR_STORE_UNAVAILABLE"
  /** etcd answered but refused the request (too large, permission, …). */
  | "MGW_ERR_STORE_REJECTED"
  /** The current config changed between our read and our write. */
  | "MGW_ERR_STORE_CONFLICT"
  /** A stored value could not be decoded (hand-edited key, newer schema). */
  | "MGW_ERR_STORE_CORRUPT"
  /** The caller's expected_version is not the current version. */
  | "MGW_ERR_POLICY_VERSION_MISMATCH"
  /** The policy failed validation; see `violations`. */
  | "MGW_ERR_POLICY_INVALID"
  /** A requested config version does not exist. */
  | "MGW_ERR_POLICY_NOT_FOUND"
  /** A request that cannot be understood (REST body, query string). */
  | "MGW_ERR_API_BAD_REQUEST"
  /** No valid bearer token or client certificate (docs/security.md). */
  | "MGW_ERR_API_UNAUTHENTICATED"
  /** The caller's role is below what the method needs (api/access.ts). */
  | "MGW_ERR_API_PERMISSION_DENIED"
  /** The --tokens-file cannot be read or is invalid. */
  | "MGW_ERR_API_TOKENS_FILE"
  /** The monitor cannot resolve a cluster's health.credentials.secret_ref. */
  | "MGW_ERR_MONITOR_SECRET"
  /** A health probe failed (connect, query, or its timeout). */
  | "MGW_ERR_MONITOR_PROBE"
  /** A planned switchover is unsafe or impossible now (see the message); nothing was changed. */
  | "MGW_ERR_SWITCHOVER_REFUSED"
  /** A planned switchover names a cluster the current policy does not have. */
  | "MGW_ERR_SWITCHOVER_NOT_FOUND"
  /** A replication operation is unsafe or makes no sense in the cluster's state; nothing was changed (replication/). */
  | "MGW_ERR_REPLICATION_REFUSED"
  /** A replication operation names a cluster or backend the current policy does not have. */
  | "MGW_ERR_REPLICATION_NOT_FOUND"
  /** Another replication change of the cluster (switchover, failover, operation) holds its lock. */
  | "MGW_ERR_REPLICATION_BUSY"
  /** A replication operation's step failed on a server, or a server it needs did not answer. */
  | "MGW_ERR_REPLICATION_FAILED";

export class MgwError extends Error {
  readonly code: MgwErrorCode;
  /** Structured problems for MGW_ERR_POLICY_INVALID; empty otherwise. */
  readonly violations: readonly PolicyViolationInit[];

  constructor(code: MgwErrorCode, message: string, options?: { cause?: unknown; violations?: readonly PolicyViolationInit[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "MgwError";
    this.code = code;
    this.violations = options?.violations ?? [];
  }
}

/** Plain shape of a mysqlgw.admin.v1.PolicyViolation. */
export interface PolicyViolationInit {
  kind: string;
  name: string;
  index: number;
  field: string;
  description: string;
}

export function isMgwError(err: unknown, code?: MgwErrorCode): err is MgwError {
  return err instanceof MgwError && (code === undefined || err.code === code);
}
