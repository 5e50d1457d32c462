import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { HistoryService, ListVersionsRequestSchema, ListVersionsResponseSchema, RollbackPolicyRequestSchema, RollbackPolicyResponseSchema } from "@mysqlgw/proto";
import { MgwError } from "../errors";
import type { HistoryServiceImpl } from "./history-service";
import { toConnectError } from "./connect-errors";
import { errorBody } from "./rest";

import { readJsonMessage, sendJson, sendMessage, type Req, type Res } from "./rest-json";

/** REST routes of the HistoryService (the AdminService's are in rest.ts). */
export const HISTORY_REST_ROUTES = ["GET /v1/versions[?limit=N&before=V]", "POST /v1/policy:rollback"] as const;

/** A RollbackPolicyRequest body is tiny. */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * REST JSON for the HistoryService, in the same style as rest.ts (proto3 JSON
 * bodies, unknown fields rejected; every field present in responses; Connect
 * error JSON with Connect's HTTP status); any other path goes to `next`.
 */
export function createHistoryRestHandler(service: HistoryServiceImpl, next: (req: Req, res: Res) => void): (req: Req, res: Res) => void {
  async function route(req: Req, res: Res, path: string, url: URL): Promise<void> {
    const method = req.method ?? "GET";
    const ctx = (name: keyof typeof HistoryService.method): HandlerContext =>
      createHandlerContext({ service: HistoryService, method: HistoryService.method[name], protocolName: "rest", requestMethod: method, url: req.url ?? "/" });
    const allow = (m: string): void => {
      if (method === m || (m === "GET" && method === "HEAD")) return;
      res.setHeader("allow", m);
      throw Object.assign(new ConnectError(`${method} is not allowed on ${path}; use ${m}`, Code.Unimplemented), { httpStatus: 405 });
    };
    if (path === "/v1/versions") {
      allow("GET");
      const limit = url.searchParams.get("limit") ?? "0";
      const before = url.searchParams.get("before") ?? "0";
      if (!/^[0-9]{1,4}$/.test(limit)) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `limit=${JSON.stringify(limit)} is not a number; use ?limit=N with N from 1 to 1000`);
      if (!/^[0-9]{1,20}$/.test(before)) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `before=${JSON.stringify(before)} is not a version number; use ?before=V (the next_before of the previous page)`);
      const r = create(ListVersionsRequestSchema, { limit: Number(limit), before: BigInt(before) });
      return sendMessage(res, ListVersionsResponseSchema, await service.listVersions(r, ctx("listVersions")));
    }
    allow("POST");
    const body = await readJsonMessage(req, RollbackPolicyRequestSchema, MAX_BODY_BYTES, "send only the RollbackPolicyRequest fields");
    return sendMessage(res, RollbackPolicyResponseSchema, await service.rollbackPolicy(body, ctx("rollbackPolicy")));
  }

  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = decodeURIComponent(url.pathname);
    if (path !== "/v1/versions" && path !== "/v1/policy:rollback") {
      next(req, res);
      return;
    }
    route(req, res, path, url).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy?.();
        return;
      }
      const status = (err as { httpStatus?: number }).httpStatus;
      const ce = toConnectError(err);
      sendJson(res, status ?? codeToHttpStatus(ce.code), errorBody(ce));
    });
  };
}

