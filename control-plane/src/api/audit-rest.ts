import { create, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import type { NodeHandler, Req, Res } from "./rest-json";
import { AuditService, ListAuditRecordsRequestSchema, ListAuditRecordsResponseSchema } from "@mysqlgw/proto";
import { MgwError } from "../errors";
import type { AuditServiceImpl } from "./audit-service";
import { toConnectError } from "./connect-errors";
import { errorBody } from "./rest";


export const AUDIT_REST_ROUTES = ["GET /v1/audit[?limit=N&before=S]"] as const;

/** GET /v1/audit: AuditService.ListAuditRecords as REST JSON; any other path goes to `next`. */
export function createAuditRestHandler(service: AuditServiceImpl, next: NodeHandler): NodeHandler {
  async function route(req: Req, res: Res, url: URL): Promise<void> {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      res.setHeader("allow", "GET");
      throw Object.assign(new ConnectError(`${method} is not allowed on /v1/audit; use GET`, Code.Unimplemented), { httpStatus: 405 });
    }
    const limit = url.searchParams.get("limit") ?? "0";
    const before = url.searchParams.get("before") ?? "0";
    if (!/^[0-9]{1,4}$/.test(limit)) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `limit=${JSON.stringify(limit)} is not a number; use ?limit=N with N from 1 to 1000`);
    if (!/^[0-9]{1,20}$/.test(before)) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `before=${JSON.stringify(before)} is not a sequence number; use ?before=S (the nextBefore of the previous page)`);
    const ctx = createHandlerContext({ service: AuditService, method: AuditService.method.listAuditRecords, protocolName: "rest", requestMethod: method, url: req.url ?? "/" });
    const out = await service.listAuditRecords(create(ListAuditRecordsRequestSchema, { limit: Number(limit), before: BigInt(before) }), ctx);
    send(res, 200, JSON.stringify(toJson(ListAuditRecordsResponseSchema, create(ListAuditRecordsResponseSchema, out), { alwaysEmitImplicit: true }), null, 2) + "\n", method);
  }

  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (decodeURIComponent(url.pathname) !== "/v1/audit") {
      next(req, res);
      return;
    }
    route(req, res, url).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy?.();
        return;
      }
      const ce = toConnectError(err);
      const status = (err as { httpStatus?: number }).httpStatus ?? codeToHttpStatus(ce.code);
      send(res, status, JSON.stringify(errorBody(ce), null, 2) + "\n", "GET");
    });
  };
}

function send(res: Res, status: number, text: string, method: string): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
  if (method === "HEAD") res.end();
  else res.end(text);
}
