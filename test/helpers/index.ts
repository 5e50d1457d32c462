/**
 * Test helpers: the real-server sandbox plus small client helpers.
 *
 * Importing this module from a jest test file registers `afterAll(stopAll)`,
 * so every etcd, MariaDB and mysqlgw process the file started is stopped and
 * its temp dir removed, whatever the outcome.
 */
import { stopAll } from "@mysqlgw/sandbox";

export * from "@mysqlgw/sandbox";
export { connect, connectTo } from "./mysql";
export type { ConnectOptions } from "./mysql";
export { runMariadbCli } from "./mariadb-cli";
export type { MariadbCliOptions, MariadbCliResult } from "./mariadb-cli";

if (typeof afterAll === "function") afterAll(() => stopAll(), 60_000);
