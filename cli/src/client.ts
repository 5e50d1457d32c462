import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AdminService } from "@mysqlgw/proto";

export type AdminClient = Client<typeof AdminService>;

/** Default bound on one API call. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * AdminService client over the Connect protocol on HTTP/1.1 (the same port
 * also serves gRPC and REST).
 */
export function createAdminClient(baseUrl: string): AdminClient {
  return createClient(AdminService, createConnectTransport({ httpVersion: "1.1", baseUrl }));
}
