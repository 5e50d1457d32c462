import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import type { Req, Res } from "./rest-json";
import { MgwError } from "../errors";
import { DEFAULT_DIGESTS_LIMIT, MAX_DIGESTS_LIMIT, type DigestSource } from "../digests/published-digests";
import { toConnectError } from "./connect-errors";
import { errorBody } from "./rest";


export const DIGESTS_REST_ROUTES = ["GET /v1/digests[?limit=N&user=U&schema=S]"] as const;

/**
 * GET /v1/digests: the query digests of every live data plane, merged, the
 * `limit` (default 20, at most 1000) largest by total time, optionally only
 * one user's / schema's; any other path goes to `next`. Errors in the Connect
 * error JSON shape like the other REST routes.
 */
export function createDigestsRestHandler(source: DigestSource, next: (req: Req, res: Res) => void): (req: Req, res: Res) => void {
  async function route(req: Req, res: Res, url: URL): Promise<void> {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      res.setHeader("allow", "GET");
      throw Object.assign(new ConnectError(`${method} is not allowed on /v1/digests; use GET`, Code.Unimplemented), { httpStatus: 405 });
    }
    const raw = url.searchParams.get("limit") ?? String(DEFAULT_DIGESTS_LIMIT);
    if (!/^[0-9]{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_DIGESTS_LIMIT) {
      throw new MgwError("MGW_ERR_API_BAD_REQUEST", `limit=${JSON.stringify(raw)} is not a number from 1 to ${MAX_DIGESTS_LIMIT}; use ?limit=N`);
    }
    const user = url.searchParams.get("user");
    const schema = url.searchParams.get("schema");
    const filtered = user !== null || schema !== null;
    const answer = await source.digests(filtered ? MAX_DIGESTS_LIMIT : Number(raw));
    if (filtered) {
      answer.digests = answer.digests.filter((d) => (user === null || d.user === user) && (schema === null || d.schema === schema)).slice(0, Number(raw));
    }
    const text = JSON.stringify(answer, null, 2) + "\n";
    res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
    if (method === "HEAD") res.end();
    else res.end(text);
  }

  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (decodeURIComponent(url.pathname) !== "/v1/digests") {
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
      const text = JSON.stringify(errorBody(ce), null, 2) + "\n";
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
  };
}
