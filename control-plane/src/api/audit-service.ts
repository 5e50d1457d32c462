import type { ServiceImpl } from "@connectrpc/connect";
import type { AuditService } from "@mysqlgw/proto";
import { MgwError } from "../errors";
import { DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT, type AuditLog } from "./audit";
import { toConnectError } from "./connect-errors";

export type AuditServiceImpl = ServiceImpl<typeof AuditService>;

/** mysqlgw.admin.v1.AuditService over an AuditLog. Handlers throw ConnectErrors only. */
export function createAuditService(log: AuditLog): AuditServiceImpl {
  return {
    async listAuditRecords(req) {
      try {
        const limit = req.limit === 0 ? DEFAULT_AUDIT_LIMIT : req.limit;
        if (limit > MAX_AUDIT_LIMIT) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `limit ${limit} is over ${MAX_AUDIT_LIMIT}; ask for fewer and page with before`);
        return await log.list(limit, req.before);
      } catch (err) {
        throw toConnectError(err);
      }
    },
  };
}
