/**
 * Test helpers: the real-server sandbox plus small client helpers.
 *
 * Every etcd, MariaDB and mysqlgw process a test file starts is stopped, and
 * its temp dir removed, when the file ends, whatever the outcome (see below).
 */
import { stopAll } from "@mysqlgw/sandbox";

export * from "@mysqlgw/sandbox";
export { connect, connectTo } from "./mysql";
export type { ConnectOptions } from "./mysql";
export { runMariadbCli } from "./mariadb-cli";
export type { MariadbCliOptions, MariadbCliResult } from "./mariadb-cli";
export { runCli } from "./cli";
export { applyPolicy } from "./policy";
export type { CliResult } from "./cli";
export { runProcess } from "./run-process";
export type { ProcessResult } from "./run-process";
export { nativePasswordHash } from "./password";
export { parseExposition, scrape } from "./prometheus";
export type { Exposition, Sample } from "./prometheus";

// The integration project's jest environment (sandbox-environment.js) stops
// everything at teardown, after the file's own afterAll hooks; under any other
// environment, an afterAll here does it (before the file's own afterAll hooks).
const g = globalThis as { __mysqlgwSandboxEnvironment?: boolean };
if (g.__mysqlgwSandboxEnvironment !== true && typeof afterAll === "function") afterAll(() => stopAll(), 60_000);
