import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AdminService, AuditService, HistoryService } from "@mysqlgw/proto";
import { CliError } from "./cli-error";

export type AdminClient = Client<typeof AdminService>;
export type HistoryClient = Client<typeof HistoryService>;
export type AuditClient = Client<typeof AuditService>;

/** How the CLI authenticates to the API and checks its certificate (global options --token, --ca-file, --cert, --key). */
export interface ApiAuth {
  /** Bearer token (--token, MYSQLGW_TOKEN). */
  token?: string;
  /** PEM files: the CA that signed the control plane's certificate; a client certificate and its key (mTLS). */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

let apiAuth: ApiAuth = {};

/** Set once by the program from the global options, before a command builds its clients. */
export function setApiAuth(auth: ApiAuth): void {
  apiAuth = { ...auth };
}

function readPem(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new CliError("MGW_ERR_CLI_FILE", `${flag} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, "check the path", { exitCode: 2 });
  }
}

/** TLS options for https:// endpoints (none apply to http://). */
function tlsOptions(): https.RequestOptions {
  const o: https.RequestOptions = {};
  if (apiAuth.caFile !== undefined) o.ca = readPem("--ca-file", apiAuth.caFile);
  if (apiAuth.certFile !== undefined) o.cert = readPem("--cert", apiAuth.certFile);
  if (apiAuth.keyFile !== undefined) o.key = readPem("--key", apiAuth.keyFile);
  return o;
}

function authHeaders(): Record<string, string> {
  return apiAuth.token === undefined || apiAuth.token === "" ? {} : { authorization: `Bearer ${apiAuth.token}` };
}

/**
 * THE transport every API client of the CLI uses: Connect over HTTP/1.1
 * (http:// or https://), with the bearer token and TLS files of the global
 * options.
 */
export function apiTransport(baseUrl: string): Transport {
  const headers = authHeaders();
  return createConnectTransport({
    httpVersion: "1.1",
    baseUrl,
    nodeOptions: baseUrl.startsWith("https:") ? tlsOptions() : {},
    interceptors: [(next) => (req) => {
      for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
      return next(req);
    }],
  });
}

/** A GET on a REST route of the API (for routes with no RPC, e.g. /v1/digests), with the same token and TLS files. */
export function apiGet(url: URL, timeoutMs: number): Promise<{ status: number; ok: boolean; text: string }> {
  const mod = url.protocol === "https:" ? https : http;
  const options: https.RequestOptions = { method: "GET", headers: { accept: "application/json", ...authHeaders() }, timeout: timeoutMs, ...(url.protocol === "https:" ? tlsOptions() : {}) };
  return new Promise((resolve, reject) => {
    const req = mod.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ok: (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: "ETIMEDOUT" })));
    req.on("error", reject);
    req.end();
  });
}

/** Default bound on one API call. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * AdminService client over the Connect protocol on HTTP/1.1 (the same port
 * also serves gRPC and REST).
 */
export function createAdminClient(baseUrl: string): AdminClient {
  return createClient(AdminService, apiTransport(baseUrl));
}

/** HistoryService client (history and rollback), on the same port and protocol as the AdminService. */
export function createHistoryClient(baseUrl: string): HistoryClient {
  return createClient(HistoryService, apiTransport(baseUrl));
}

/** AuditService client (mysqlgw audit). */
export function createAuditClient(baseUrl: string): AuditClient {
  return createClient(AuditService, apiTransport(baseUrl));
}
