import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AdminService, HistoryService } from "@mysqlgw/proto";

export type AdminClient = Client<typeof AdminService>;
export type HistoryClient = Client<typeof HistoryService>;

/** Default bound on one API call. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * AdminService client over the Connect protocol on HTTP/1.1 (the same port
 * also serves gRPC and REST).
 */
export function createAdminClient(baseUrl: string): AdminClient {
  return createClient(AdminService, createConnectTransport({ httpVersion: "1.1", baseUrl }));
}

/** HistoryService client (history and rollback), on the same port and protocol as the AdminService. */
export function createHistoryClient(baseUrl: string): HistoryClient {
  return createClient(HistoryService, createConnectTransport({ httpVersion: "1.1", baseUrl }));
}
