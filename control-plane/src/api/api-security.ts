import type * as tls from "node:tls";
import { fromJson, toJson, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, createContextValues, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import type { NodeHandler, Req, Res } from "./rest-json";
import { AdminService, AuditService, HistoryService, ReplicationService } from "@mysqlgw/proto";
import { Counter, type Registry } from "prom-client";
import { MgwError } from "../errors";
import { accessOfRest, accessOfRpc, allows, type AccessRule } from "./access";
import { auditRequestJson, outcomeOf, type AuditLog, type AuditRecordInit } from "./audit";
import { toConnectError } from "./connect-errors";
import { CALL_IDENTITY, callIdentityStorage, type CallIdentity, type Principal } from "./principal";
import { errorBody } from "./rest";
import type { Authenticator } from "./tokens";


export interface ApiSecurityLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ApiSecurityOptions {
  authenticator: Authenticator;
  /** Where mutating and refused calls are recorded; null: not recorded. */
  audit: AuditLog | null;
  logger?: ApiSecurityLogger;
  /** Refused (401/403) calls recorded per second at most, in bursts of 10×; the rest are counted in a log line. Default 10. */
  refusedAuditPerSecond?: number;
  /** Largest REST body read to audit a mutating call. Default 4 MiB. */
  maxBodyBytes?: number;
  /** Where mysqlgw_api_refused_total and mysqlgw_audit_records_total are registered (the control plane's /metrics); absent: not counted. */
  metricsRegistry?: Registry;
}

/**
 * Authentication, authorisation (api/access.ts) and the audit log for every
 * transport, in two places: `interceptor` (with `contextValues`) for
 * everything Connect routes (gRPC, Connect, gRPC-Web), `rest` around the REST
 * fallback. Both run the handler inside callIdentityStorage, so principalOf()
 * answers in service code.
 */
export interface ApiSecurity {
  /** connectNodeAdapter's contextValues: the peer and client certificate of the Node request. */
  contextValues(req: Req): ContextValues;
  interceptor: Interceptor;
  rest(next: NodeHandler): NodeHandler;
}

/** What the Connect interceptor cannot see: the TCP/TLS connection. */
interface Connection {
  peer: string;
  certificateCn: string | null;
  /** A client certificate was sent but did not verify: why. */
  certificateError?: string;
}
const CONNECTION_KEY = createContextKey<Connection>({ peer: "", certificateCn: null }, { description: "mysqlgw connection" });

/** Every service the server may route, for REST responses → messages. */
const METHODS = new Map<string, DescMethod>(
  [AdminService, HistoryService, AuditService, ReplicationService].flatMap((s) => s.methods.map((m) => [`${s.typeName}/${m.name}`, m] as const)),
);

export function connectionOf(req: Req): Connection {
  const stream = (req as { stream?: { session?: { socket?: unknown } } }).stream;
  const socket = (stream?.session?.socket ?? req.socket) as tls.TLSSocket | undefined;
  const addr = socket?.remoteAddress ?? "";
  const peer = addr === "" ? "" : `${addr.includes(":") ? `[${addr}]` : addr}:${socket?.remotePort ?? 0}`;
  if (socket === undefined || typeof socket.getPeerCertificate !== "function") return { peer, certificateCn: null };
  // Only certificates the TLS layer verified against --tls-client-ca count (it asks without requiring, so that health and metrics stay open).
  const cert = socket.getPeerCertificate();
  const sent = cert !== null && cert !== undefined && Object.keys(cert).length > 0;
  if (socket.authorized !== true) return { peer, certificateCn: null, ...(sent ? { certificateError: String(socket.authorizationError ?? "not verified") } : {}) };
  const cn = cert?.subject?.CN as string | string[] | undefined;
  return { peer, certificateCn: Array.isArray(cn) ? (cn[0] ?? null) : (cn ?? null) };
}

function statusName(code: Code | null): string {
  return code === null ? "OK" : codeToString(code).toUpperCase();
}

export function createApiSecurity(options: ApiSecurityOptions): ApiSecurity {
  const { authenticator, audit, logger: log } = options;
  const maxBody = options.maxBodyBytes ?? 4 * 1024 * 1024;
  const registers = options.metricsRegistry === undefined ? [] : [options.metricsRegistry];
  const refusedTotal = new Counter({
    name: "mysqlgw_api_refused_total",
    help: "API calls refused before their handler (gRPC, Connect and REST alike), by reason: unauthenticated (401) or permission_denied (403).",
    labelNames: ["reason"],
    registers,
  });
  const auditTotal = new Counter({
    name: "mysqlgw_audit_records_total",
    help: "Audit records by result: written, failed (etcd refused or did not answer; logged), dropped (refusals over the audit rate).",
    labelNames: ["result"],
    registers,
  });
  for (const r of ["unauthenticated", "permission_denied"]) refusedTotal.inc({ reason: r }, 0);
  for (const r of ["written", "failed", "dropped"]) auditTotal.inc({ result: r }, 0);

  // Refused calls cost an etcd write each: bounded, so that a flood of bad tokens cannot fill etcd.
  const rate = options.refusedAuditPerSecond ?? 10;
  const burst = rate * 10;
  let allowance = burst;
  let last = Date.now();
  let dropped = 0;
  let droppedLogged = 0;
  function takeRefusedSlot(): boolean {
    const now = Date.now();
    allowance = Math.min(burst, allowance + ((now - last) / 1000) * rate);
    last = now;
    if (allowance >= 1) {
      allowance -= 1;
      return true;
    }
    dropped++;
    auditTotal.inc({ result: "dropped" });
    if (now - droppedLogged >= 10_000) {
      droppedLogged = now;
      log?.warn({ dropped }, "refused API calls over the audit rate are not recorded individually (a client is failing authentication repeatedly)");
    }
    return false;
  }

  async function record(r: AuditRecordInit): Promise<void> {
    if (audit === null) return;
    try {
      await audit.append(r);
      auditTotal.inc({ result: "written" });
    } catch (err) {
      auditTotal.inc({ result: "failed" });
      log?.error({ err: err instanceof Error ? err.message : String(err), method: r.method }, "cannot write the audit record of an API call");
    }
  }

  /** Authenticates and authorises; throws MgwErrors (after recording the refusal). */
  async function admit(rule: AccessRule, method: string, conn: Connection, authorization: string | undefined, requestJson: () => string): Promise<Principal | null> {
    if (rule.access === "open") return null;
    let p: Principal;
    try {
      p = authenticator.authenticate({ authorization, certificateCn: conn.certificateCn, certificateError: conn.certificateError });
    } catch (err) {
      refusedTotal.inc({ reason: "unauthenticated" });
      if (takeRefusedSlot()) await record({ principal: "", role: "", peer: conn.peer, method, requestJson: requestJson(), status: "UNAUTHENTICATED", error: (err as Error).message });
      throw err;
    }
    if (!allows(p.role, rule.access)) {
      const err = new MgwError("MGW_ERR_API_PERMISSION_DENIED",
        `${p.via === "certificate" ? "client certificate" : "token"} "${p.name}" has role ${p.role}; ${method} needs ${rule.access}; use a token with role ${rule.access} or higher (an admin creates one with mysqlgw token create --role ${rule.access})`);
      refusedTotal.inc({ reason: "permission_denied" });
      if (takeRefusedSlot()) await record({ principal: p.name, role: p.role, peer: conn.peer, method, requestJson: requestJson(), status: "PERMISSION_DENIED", error: err.message });
      throw err;
    }
    return p;
  }

  const interceptor: Interceptor = (next) => async (req) => {
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const rule = accessOfRpc(rpc);
    const method = `/${rpc}`;
    const conn = req.contextValues.get(CONNECTION_KEY);
    const json = (): string => (req.stream ? "" : auditRequestJson(toJson(req.method.input, req.message) as JsonValue));
    let principal: Principal | null;
    try {
      principal = await admit(rule, method, conn, req.header.get("authorization") ?? undefined, json);
    } catch (err) {
      throw toConnectError(err);
    }
    if (principal === null) return next(req);
    const identity: CallIdentity = { principal, peer: conn.peer };
    req.contextValues.set(CALL_IDENTITY, identity);
    if (!rule.mutating || audit === null) return callIdentityStorage.run(identity, () => next(req));
    const base = { principal: principal.name, role: principal.role, peer: conn.peer, method, requestJson: json() };
    try {
      const res = await callIdentityStorage.run(identity, () => next(req));
      const { changes, resultingVersion } = res.stream ? { changes: [], resultingVersion: 0n } : outcomeOf(res.message);
      await record({ ...base, status: "OK", changes, resultingVersion });
      return res;
    } catch (err) {
      const ce = toConnectError(err);
      await record({ ...base, status: statusName(ce.code), error: ce.rawMessage });
      throw ce;
    }
  };

  function rest(next: NodeHandler): NodeHandler {
    async function handle(req: Req, res: Res): Promise<void> {
      const url = new URL(req.url ?? "/", "http://localhost");
      let path: string;
      try {
        path = decodeURIComponent(url.pathname);
      } catch {
        sendError(res, new ConnectError(`the path ${url.pathname} is not valid percent-encoding; see docs/api.md for the routes`, Code.InvalidArgument));
        return;
      }
      const httpMethod = req.method ?? "GET";
      const rule = accessOfRest(httpMethod, path);
      const method = `${httpMethod} ${path}`;
      const conn = connectionOf(req);
      const authorization = headerOf(req, "authorization");
      let principal: Principal | null;
      try {
        // a refused REST call is recorded without its body (not read)
        principal = await admit(rule, method, conn, authorization, () => "");
      } catch (err) {
        sendError(res, toConnectError(err));
        return;
      }
      if (principal === null) {
        next(req, res);
        return;
      }
      const identity: CallIdentity = { principal, peer: conn.peer };
      if (!rule.mutating || audit === null) {
        callIdentityStorage.run(identity, () => next(req, res));
        return;
      }
      // A mutating call's body is read here (and replayed to the handler) so that the audit record holds it.
      const body = await readBody(req, maxBody);
      replayBody(req, body);
      const base = { principal: principal.name, role: principal.role, peer: conn.peer, method, requestJson: requestJsonOf(body) };
      const end = res.end.bind(res) as (...args: unknown[]) => unknown;
      (res as unknown as { end: (...args: unknown[]) => unknown }).end = (...args: unknown[]) => {
        const chunk = args[0];
        const text = typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString("utf8") : "";
        void record(restOutcome(base, rule, res.statusCode, text)).finally(() => end(...args));
        return res;
      };
      callIdentityStorage.run(identity, () => next(req, res));
    }
    return (req, res) => {
      handle(req, res).catch((err: unknown) => sendError(res, toConnectError(err)));
    };
  }

  return {
    contextValues(req) {
      const v = createContextValues();
      v.set(CONNECTION_KEY, connectionOf(req));
      return v;
    },
    interceptor,
    rest,
  };
}

function headerOf(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function requestJsonOf(body: Buffer): string {
  const text = body.toString("utf8");
  if (text.trim() === "") return "{}";
  try {
    return auditRequestJson(JSON.parse(text) as JsonValue);
  } catch {
    return JSON.stringify({ unparsed: `${body.length} bytes that are not JSON` });
  }
}

/** The audit record of a REST call from its HTTP status and JSON answer. */
function restOutcome(base: Omit<AuditRecordInit, "status">, rule: AccessRule, status: number, text: string): AuditRecordInit {
  let json: JsonValue = null;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch {
    // not JSON: status only
  }
  if (status >= 400) {
    const e = (json ?? {}) as { code?: string; message?: string };
    return { ...base, status: typeof e.code === "string" ? e.code.toUpperCase() : `HTTP_${status}`, error: e.message ?? "" };
  }
  const desc = rule.rpc === null ? undefined : METHODS.get(rule.rpc);
  let outcome = { changes: [] as string[], resultingVersion: 0n };
  if (desc !== undefined && json !== null) {
    try {
      outcome = outcomeOf(fromJson(desc.output, json, { ignoreUnknownFields: true }));
    } catch {
      // an answer we cannot read: recorded without its changes
    }
  }
  return { ...base, status: "OK", ...outcome };
}

async function readBody(req: Req, maxBody: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBody) throw new ConnectError(`request body is over ${maxBody} bytes; split the policy or raise --max-body-bytes`, Code.ResourceExhausted);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The REST handlers read bodies with `for await`: hand them the bytes already read. */
function replayBody(req: Req, body: Buffer): void {
  Object.defineProperty(req, Symbol.asyncIterator, {
    configurable: true,
    value: async function* () {
      if (body.length > 0) yield body;
    },
  });
}

function sendError(res: Res, err: ConnectError): void {
  if (res.headersSent) {
    res.destroy?.();
    return;
  }
  const text = JSON.stringify(errorBody(err), null, 2) + "\n";
  const headers: Record<string, string | number> = { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) };
  if (err.code === Code.Unauthenticated) headers["www-authenticate"] = 'Bearer realm="mysqlgw"';
  res.writeHead(codeToHttpStatus(err.code), headers);
  res.end(text);
}
