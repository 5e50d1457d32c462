// The admin SQL port of the data plane (docs/observability.md).
import type { Logger } from "pino";
import type { ObserveFlags } from "../observe/flags";
import type { Supervisor } from "../supervisor/supervisor";
import { startAdminServer, type AdminServer } from "./admin-server";
import { adminTables } from "./admin-tables";
import type { FiguresGatherer } from "./gather";

export { startAdminServer, ADMIN_SERVER_VERSION, type AdminServer, type AdminServerOptions } from "./admin-server";
export { parseAdminQuery, runSelect, AdminSqlError, type VirtualTable, type AdminQuery } from "./admin-sql";
export { adminTables, type AdminSources } from "./admin-tables";
export { createFiguresGatherer, type FiguresGatherer } from "./gather";
export { createDigestPublisher, digestsKey, publishedDigests, type DigestPublisher, type PublishedDigests } from "./digest-publisher";

/**
 * Starts --admin-listen on the supervisor: its tables read every worker's
 * figures over IPC (or `local`'s with --workers 0) and the supervisor's config.
 */
export async function startAdminPort(options: {
  flags: ObserveFlags & { adminListen: { host: string; port: number } };
  supervisor: Pick<Supervisor, "serving">;
  /** Every worker's figures (admin/gather.ts). */
  gatherer: FiguresGatherer;
  logger: Logger;
  id: string;
  workers: number;
}): Promise<AdminServer> {
  const gatherer = options.gatherer;
  const tables = adminTables({ figures: () => gatherer.figures(), serving: () => options.supervisor.serving(), id: options.id, workers: options.workers });
  const server = await startAdminServer({
    host: options.flags.adminListen.host,
    port: options.flags.adminListen.port,
    user: options.flags.adminUser,
    passwordHash: options.flags.adminPasswordHash,
    tables: () => tables,
    logger: options.logger,
  });
  return {
    address: server.address,
    async close() {
      await server.close();
    },
  };
}
