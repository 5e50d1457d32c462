import type { HandlerContext } from "@connectrpc/connect";
import { appliedByOf } from "../api/principal";

/** Header in which a client says who it acts for ("cli:alice@laptop"); the CLI sets it. */
export const REQUESTED_BY_HEADER = "x-mysqlgw-requested-by";

/**
 * THE one place where an operation's requested_by is computed: the
 * authenticated principal of the call (api/principal.ts), followed by what the
 * client said about itself in the x-mysqlgw-requested-by header (printable, at
 * most 200 characters): "ops-token via cli:alice@laptop"; without
 * authentication what the client said, else "api".
 */
export function requestedBy(ctx: HandlerContext | undefined): string {
  const said = (ctx?.requestHeader.get(REQUESTED_BY_HEADER) ?? "").replace(/[^\x20-\x7e]/g, "").trim().slice(0, 200);
  return appliedByOf(ctx, said, "api");
}
