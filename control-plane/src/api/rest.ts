import { readFile } from "node:fs/promises";
import { create, toBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import {
  ListBackendHealthRequestSchema,
  ListBackendHealthResponseSchema,
  ListFailoversRequestSchema,
  ListFailoversResponseSchema,
  AdminService,
  ApplyPolicyRequestSchema,
  ApplyPolicyResponseSchema,
  DiffPolicyRequestSchema,
  DiffPolicyResponseSchema,
  GetHealthResponseSchema,
  GetPolicyRequestSchema,
  GetPolicyResponseSchema,
  ListDataPlanesRequestSchema,
  ListDataPlanesResponseSchema,
  GetHealthRequestSchema,
  PolicyViolationsSchema,
} from "@mysqlgw/proto";
import { MgwError } from "../errors";
import type { AdminServiceImpl } from "./admin-service";
import { toConnectError } from "./connect-errors";

import { readJsonMessage, sendJson, sendMessage, type Req, type Res } from "./rest-json";

const TOO_LARGE = "split the policy or raise --max-body-bytes";

export interface RestHandlerOptions {
  /** Largest request body accepted, in bytes. Default 4 MiB. */
  maxBodyBytes?: number;
  /** FileDescriptorSet served at GET /v1/descriptor (for grpcurl -protoset). */
  descriptorSetPath?: string;
  /** Prometheus text served at GET /metrics; absent: 404. */
  metrics?: () => Promise<string>;
}

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** REST routes: path → method → handler. All call the same AdminService implementation. */
export const REST_ROUTES = [
  "POST /v1/policy:apply",
  "GET /v1/policy[?version=N]",
  "POST /v1/policy:diff",
  "GET /v1/dataplanes",
  "GET /v1/health",
  "GET /v1/backends[?cluster=C]",
  "GET /v1/descriptor",
  "GET /metrics",
] as const;

/**
 * REST JSON for curl over the AdminService handlers. Bodies are the proto3 JSON
 * of the request message (unknown fields rejected); responses are the proto3
 * JSON of the response with every field present. Errors are
 * {"code","message","details"} with the HTTP status Connect uses for the code;
 * details carry a readable "debug" copy of PolicyViolations.
 */
export function createRestHandler(service: AdminServiceImpl, options: RestHandlerOptions = {}): (req: Req, res: Res) => void {
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  async function route(req: Req, res: Res): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = decodeURIComponent(url.pathname);
    const method = req.method ?? "GET";
    const ctx = (name: keyof typeof AdminService.method): HandlerContext => createHandlerContext({
      service: AdminService,
      method: AdminService.method[name],
      protocolName: "rest",
      requestMethod: method,
      url: req.url ?? "/",
    });
    const allow = (m: string): boolean => {
      if (method === m || (m === "GET" && method === "HEAD")) return true;
      res.setHeader("allow", m);
      throw RestMethodError(`${method} is not allowed on ${path}; use ${m}`);
    };

    switch (path) {
      case "/v1/policy:apply": {
        allow("POST");
        const body = await readJsonMessage(req, ApplyPolicyRequestSchema, maxBody, TOO_LARGE);
        const out = await service.applyPolicy(body, ctx("applyPolicy"));
        return sendMessage(res, ApplyPolicyResponseSchema, out);
      }
      case "/v1/policy:diff": {
        allow("POST");
        const body = await readJsonMessage(req, DiffPolicyRequestSchema, maxBody, TOO_LARGE);
        return sendMessage(res, DiffPolicyResponseSchema, await service.diffPolicy(body, ctx("diffPolicy")));
      }
      case "/v1/policy": {
        allow("GET");
        const v = url.searchParams.get("version") ?? "0";
        if (!/^[0-9]{1,20}$/.test(v)) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `version=${JSON.stringify(v)} is not a version number; use ?version=N with N ≥ 1, or leave it out for the current version`);
        const r = create(GetPolicyRequestSchema, { version: BigInt(v) });
        return sendMessage(res, GetPolicyResponseSchema, await service.getPolicy(r, ctx("getPolicy")));
      }
      case "/v1/dataplanes": {
        allow("GET");
        return sendMessage(res, ListDataPlanesResponseSchema, await service.listDataPlanes(create(ListDataPlanesRequestSchema), ctx("listDataPlanes")));
      }
      case "/v1/backends": {
        allow("GET");
        const r = create(ListBackendHealthRequestSchema, { cluster: url.searchParams.get("cluster") ?? "" });
        return sendMessage(res, ListBackendHealthResponseSchema, await service.listBackendHealth(r, ctx("listBackendHealth")));
      }
      case "/v1/failovers": {
        allow("GET");
        const r = create(ListFailoversRequestSchema, { cluster: url.searchParams.get("cluster") ?? "" });
        return sendMessage(res, ListFailoversResponseSchema, await service.listFailovers(r, ctx("listFailovers")));
      }
      case "/v1/health": {
        allow("GET");
        const h = create(GetHealthResponseSchema, await service.getHealth(create(GetHealthRequestSchema), ctx("getHealth")));
        // 503 lets a load balancer or `curl -f` see that etcd is out of reach.
        return sendMessage(res, GetHealthResponseSchema, h, h.status === "SERVING" ? 200 : 503);
      }
      case "/v1/descriptor": {
        allow("GET");
        if (options.descriptorSetPath === undefined) throw new ConnectError("no descriptor set configured", Code.NotFound);
        const bytes = await readFile(options.descriptorSetPath);
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length });
        res.end(bytes);
        return;
      }
      case "/metrics": {
        allow("GET");
        if (options.metrics === undefined) throw new ConnectError("metrics are not served by this server", Code.NotFound);
        const text = await options.metrics();
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "content-length": Buffer.byteLength(text) });
        if (method === "HEAD") res.end();
        else res.end(text);
        return;
      }
      default:
        throw new ConnectError(`no route for ${method} ${path}; REST routes are: ${REST_ROUTES.join(", ")}; see docs/api.md`, Code.NotFound);
    }
  }

  return (req, res) => {
    route(req, res).catch((err: unknown) => sendError(res, toConnectError(err)));
  };
}

/** The Connect error JSON shape, with a readable "debug" copy of our detail. */
export function errorBody(err: ConnectError): JsonValue {
  const details = err.findDetails(PolicyViolationsSchema).map((v) => ({
    type: PolicyViolationsSchema.typeName,
    value: Buffer.from(toBinary(PolicyViolationsSchema, v)).toString("base64"),
    debug: toJson(PolicyViolationsSchema, v, { alwaysEmitImplicit: true }),
  }));
  return { code: codeToString(err.code), message: err.rawMessage, details };
}

/**
 * 405: the one REST status that has no Connect code of its own. (Not a
 * subclass: ConnectError's Symbol.hasInstance would match every ConnectError.)
 */
const METHOD_NOT_ALLOWED = Symbol("methodNotAllowed");
function RestMethodError(message: string): ConnectError {
  return Object.assign(new ConnectError(message, Code.Unimplemented), { [METHOD_NOT_ALLOWED]: true });
}

function sendError(res: Res, err: ConnectError): void {
  if (res.headersSent) {
    res.destroy?.();
    return;
  }
  sendJson(res, METHOD_NOT_ALLOWED in err ? 405 : codeToHttpStatus(err.code), errorBody(err));
}
