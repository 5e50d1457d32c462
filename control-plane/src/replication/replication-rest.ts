import { create, toBinary, toJson, type DescMessage, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import {
  AttachReplicaRequestSchema,
  AttachReplicaResponseSchema,
  DetachReplicaRequestSchema,
  DetachReplicaResponseSchema,
  ListOperationsRequestSchema,
  ListOperationsResponseSchema,
  OperationRecordSchema,
  PauseBackendRequestSchema,
  PauseBackendResponseSchema,
  RegisterBackendRequestSchema,
  RegisterBackendResponseSchema,
  RejoinBackendRequestSchema,
  RejoinBackendResponseSchema,
  ReplicationService,
  ResumeBackendRequestSchema,
  ResumeBackendResponseSchema,
  SwitchoverRequestSchema,
  SwitchoverResponseSchema,
  UnregisterBackendRequestSchema,
  UnregisterBackendResponseSchema,
} from "@mysqlgw/proto";
import { MgwError } from "../errors";
import { toConnectError } from "../api/connect-errors";
import { errorBody } from "../api/rest";
import type { ReplicationServiceImpl } from "./replication-service";

import { readJsonMessage, sendJson, sendMessage, type Req, type Res } from "../api/rest-json";

/** REST routes of the ReplicationService (as in its proto comments). */
export const REPLICATION_REST_ROUTES = [
  "POST /v1/clusters/{cluster}:switchover",
  "POST /v1/clusters/{cluster}/backends",
  "DELETE /v1/clusters/{cluster}/backends/{backend}[?dryRun=true]",
  "POST /v1/clusters/{cluster}/backends/{backend}:attach|:detach|:pause|:resume|:rejoin",
  "GET /v1/operations[?cluster=C&limit=N]",
] as const;

/** Request bodies are small. */
const MAX_BODY_BYTES = 64 * 1024;

const NAME = "([^/:]+)";
const SWITCHOVER_PATH = new RegExp(`^/v1/clusters/${NAME}:switchover$`);
const BACKENDS_PATH = new RegExp(`^/v1/clusters/${NAME}/backends$`);
const BACKEND_PATH = new RegExp(`^/v1/clusters/${NAME}/backends/${NAME}$`);
const VERB_PATH = new RegExp(`^/v1/clusters/${NAME}/backends/${NAME}:(attach|detach|pause|resume|rejoin)$`);

/**
 * REST JSON for the ReplicationService, in the style of history-rest.ts:
 * bodies are the proto3 JSON of the request (unknown fields rejected; the
 * cluster and backend come from the path, a body that names others is
 * refused), responses the proto3 JSON of the response with every field
 * present; errors the Connect error JSON with Connect's HTTP status, whose
 * details carry the OperationRecord (type mysqlgw.config.v1.OperationRecord,
 * with a readable "debug" copy). Any other path goes to `next`.
 */
export function createReplicationRestHandler(service: ReplicationServiceImpl, next: (req: Req, res: Res) => void): (req: Req, res: Res) => void {
  async function route(req: Req, res: Res, path: string, url: URL): Promise<void> {
    const method = req.method ?? "GET";
    const ctx = (name: keyof typeof ReplicationService.method): HandlerContext =>
      createHandlerContext({
        service: ReplicationService,
        method: ReplicationService.method[name],
        protocolName: "rest",
        requestMethod: method,
        url: req.url ?? "/",
        requestHeader: headersOf(req),
      });
    const allow = (m: string): void => {
      if (method === m || (m === "GET" && method === "HEAD")) return;
      res.setHeader("allow", m);
      throw Object.assign(new ConnectError(`${method} is not allowed on ${path}; use ${m}`, Code.Unimplemented), { httpStatus: 405 });
    };
    let m: RegExpExecArray | null;
    if (path === "/v1/operations") {
      allow("GET");
      const limit = url.searchParams.get("limit") ?? "0";
      if (!/^[0-9]{1,4}$/.test(limit)) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `limit=${JSON.stringify(limit)} is not a number; use ?limit=N with N from 1 to 1000`);
      const r = create(ListOperationsRequestSchema, { cluster: url.searchParams.get("cluster") ?? "", limit: Number(limit) });
      return sendMessage(res, ListOperationsResponseSchema, await service.listOperations(r, ctx("listOperations")));
    }
    if ((m = SWITCHOVER_PATH.exec(path)) !== null) {
      allow("POST");
      const body = await readJson(req, SwitchoverRequestSchema, { cluster: m[1]! });
      return sendMessage(res, SwitchoverResponseSchema, await service.switchover(body, ctx("switchover")));
    }
    if ((m = BACKENDS_PATH.exec(path)) !== null) {
      allow("POST");
      const body = await readJson(req, RegisterBackendRequestSchema, { cluster: m[1]! });
      return sendMessage(res, RegisterBackendResponseSchema, await service.registerBackend(body, ctx("registerBackend")));
    }
    if ((m = BACKEND_PATH.exec(path)) !== null) {
      allow("DELETE");
      const dry = url.searchParams.get("dryRun") ?? url.searchParams.get("dry_run");
      if (dry !== null && dry !== "true" && dry !== "false") throw new MgwError("MGW_ERR_API_BAD_REQUEST", `dryRun=${JSON.stringify(dry)}: use ?dryRun=true or leave it out`);
      const body = await readJson(req, UnregisterBackendRequestSchema, { cluster: m[1]!, backend: m[2]! });
      if (dry === "true") body.dryRun = true;
      return sendMessage(res, UnregisterBackendResponseSchema, await service.unregisterBackend(body, ctx("unregisterBackend")));
    }
    if ((m = VERB_PATH.exec(path)) !== null) {
      allow("POST");
      const ids = { cluster: m[1]!, backend: m[2]! };
      switch (m[3]) {
        case "attach":
          return sendMessage(res, AttachReplicaResponseSchema, await service.attachReplica(await readJson(req, AttachReplicaRequestSchema, ids), ctx("attachReplica")));
        case "detach":
          return sendMessage(res, DetachReplicaResponseSchema, await service.detachReplica(await readJson(req, DetachReplicaRequestSchema, ids), ctx("detachReplica")));
        case "pause":
          return sendMessage(res, PauseBackendResponseSchema, await service.pauseBackend(await readJson(req, PauseBackendRequestSchema, ids), ctx("pauseBackend")));
        case "resume":
          return sendMessage(res, ResumeBackendResponseSchema, await service.resumeBackend(await readJson(req, ResumeBackendRequestSchema, ids), ctx("resumeBackend")));
        default:
          return sendMessage(res, RejoinBackendResponseSchema, await service.rejoinBackend(await readJson(req, RejoinBackendRequestSchema, ids), ctx("rejoinBackend")));
      }
    }
    throw new ConnectError(`no route for ${method} ${path}; replication routes are: ${REPLICATION_REST_ROUTES.join(", ")}; see docs/api.md`, Code.NotFound);
  }

  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      path = url.pathname;
    }
    if (path !== "/v1/operations" && !path.startsWith("/v1/clusters/")) {
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
      sendJson(res, status ?? codeToHttpStatus(ce.code), restErrorBody(ce));
    });
  };
}

/** errorBody() of rest.ts, plus the OperationRecord detail a refused or failed operation carries. */
function restErrorBody(ce: ConnectError): JsonValue {
  const body = errorBody(ce) as JsonObject;
  const ops = ce.findDetails(OperationRecordSchema).map((r) => ({
    type: OperationRecordSchema.typeName,
    value: Buffer.from(toBinary(OperationRecordSchema, r)).toString("base64"),
    debug: toJson(OperationRecordSchema, r, { alwaysEmitImplicit: true }),
  }));
  return { ...body, details: [...((body.details as JsonValue[] | undefined) ?? []), ...ops] };
}

function headersOf(req: Req): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith(":") || v === undefined) continue;
    h.set(k, Array.isArray(v) ? v.join(", ") : v);
  }
  return h;
}

/** The request message from the body, the path's names filled in (a body that names others is refused). */
async function readJson<D extends DescMessage>(req: Req, schema: D, ids: Record<string, string>): Promise<MessageShape<D>> {
  const msg = await readJsonMessage(req, schema, MAX_BODY_BYTES, `send only the ${schema.typeName} fields`);
  const fields = msg as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(ids)) {
    const inBody = fields[k];
    if (typeof inBody === "string" && inBody !== "" && inBody !== v) {
      throw new MgwError("MGW_ERR_API_BAD_REQUEST", `the body names ${k} ${JSON.stringify(inBody)} but the path ${JSON.stringify(v)}; leave ${k} out of the body`);
    }
    fields[k] = v;
  }
  return msg;
}

/** Serves `impl` on a Connect router (gRPC, Connect, gRPC-Web); nothing when absent. */
export function registerReplicationService(router: ConnectRouter, impl: ReplicationServiceImpl | undefined): void {
  if (impl !== undefined) router.service(ReplicationService, impl);
}
