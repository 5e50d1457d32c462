import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PolicyViolationsSchema } from "@mysqlgw/proto";
import { MgwError, type MgwErrorCode } from "../errors";

/**
 * MgwError code → Connect code: the API's one translation table. `satisfies`
 * makes a new MgwErrorCode without an entry a compile error.
 */
export const CONNECT_CODE_OF = {
  MGW_ERR_STORE_UNAVAILABLE: Code.Unavailable,
  MGW_ERR_STORE_REJECTED: Code.Internal,
  MGW_ERR_STORE_CONFLICT: Code.Aborted,
  MGW_ERR_STORE_CORRUPT: Code.DataLoss,
  MGW_ERR_POLICY_VERSION_MISMATCH: Code.FailedPrecondition,
  MGW_ERR_POLICY_INVALID: Code.InvalidArgument,
  MGW_ERR_POLICY_NOT_FOUND: Code.NotFound,
  MGW_ERR_API_BAD_REQUEST: Code.InvalidArgument,
  MGW_ERR_API_UNAUTHENTICATED: Code.Unauthenticated,
  MGW_ERR_API_PERMISSION_DENIED: Code.PermissionDenied,
  MGW_ERR_API_TOKENS_FILE: Code.FailedPrecondition,
  MGW_ERR_MONITOR_SECRET: Code.FailedPrecondition,
  MGW_ERR_MONITOR_PROBE: Code.Unavailable,
  MGW_ERR_SWITCHOVER_REFUSED: Code.FailedPrecondition,
  MGW_ERR_SWITCHOVER_NOT_FOUND: Code.NotFound,
  MGW_ERR_REPLICATION_REFUSED: Code.FailedPrecondition,
  MGW_ERR_REPLICATION_NOT_FOUND: Code.NotFound,
  MGW_ERR_REPLICATION_BUSY: Code.Aborted,
  MGW_ERR_REPLICATION_FAILED: Code.Aborted,
} as const satisfies Record<MgwErrorCode, Code>;

/**
 * Converts anything a handler throws into the ConnectError the client sees.
 * MGW_ERR_POLICY_INVALID carries a mysqlgw.admin.v1.PolicyViolations detail.
 * Errors that are not ours become Internal (and should be logged by the caller).
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof MgwError) {
    const details = err.violations.length > 0
      ? [{ desc: PolicyViolationsSchema, value: create(PolicyViolationsSchema, { violations: [...err.violations] }) }]
      : [];
    return new ConnectError(err.message, CONNECT_CODE_OF[err.code], undefined, details, err);
  }
  return new ConnectError(`internal error: ${err instanceof Error ? err.message : String(err)}`, Code.Internal, undefined, undefined, err);
}
