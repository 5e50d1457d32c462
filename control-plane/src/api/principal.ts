import { AsyncLocalStorage } from "node:async_hooks";
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Role } from "./access";

/** Who is calling the API, as authenticated by api-security.ts. */
export interface Principal {
  /** The token's name, "CN=<subject CN>" for a client certificate, "anonymous" when the API runs without authentication. */
  readonly name: string;
  readonly role: Role;
  readonly via: "token" | "certificate" | "none";
}

/** A call's caller and where it came from. */
export interface CallIdentity {
  readonly principal: Principal;
  /** "127.0.0.1:50312", "[::1]:50312" */
  readonly peer: string;
}

/** Without --tokens-file or --tls-client-ca every caller is this one. */
export const ANONYMOUS: Principal = Object.freeze({ name: "anonymous", role: "admin", via: "none" });

/** Set by the Connect interceptor on each call's context values. */
export const CALL_IDENTITY = createContextKey<CallIdentity | null>(null, { description: "mysqlgw API caller" });

/**
 * The identity of the call in progress, for both transports: the Connect
 * interceptor and the REST entry run the handler inside `run`, so service code
 * reached from either (and what it awaits) sees it.
 * @internal
 */
export const callIdentityStorage = new AsyncLocalStorage<CallIdentity>();

/**
 * THE way for service code to learn who is calling: the authenticated
 * principal of the call in progress (over gRPC, Connect or REST), or null
 * outside an API call (internal calls, tests that call a service directly).
 */
export function principalOf(ctx?: HandlerContext): Principal | null {
  return ctx?.values.get(CALL_IDENTITY)?.principal ?? callIdentityStorage.getStore()?.principal ?? null;
}

/** The peer address of the call in progress ("" outside an API call). */
export function peerOf(ctx?: HandlerContext): string {
  return ctx?.values.get(CALL_IDENTITY)?.peer ?? callIdentityStorage.getStore()?.peer ?? "";
}

/**
 * What to record as applied_by / requested_by: the authenticated principal's
 * name, followed by what the client said about itself ("ci-deploy via
 * cli:alice@laptop"); without authentication (or outside an API call) what the
 * client said, else `fallback`.
 */
export function appliedByOf(ctx: HandlerContext | undefined, requested: string, fallback = "api"): string {
  const p = principalOf(ctx);
  if (p === null || p.via === "none") return requested === "" ? fallback : requested;
  return requested === "" || requested === p.name ? p.name : `${p.name} via ${requested}`;
}
