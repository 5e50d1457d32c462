/**
 * @mysqlgw/sandbox: real servers on free loopback ports for tests, benchmarks
 * and `mysqlgw demo`. Everything started registers in a process-wide set that
 * `stopAll()` (and an exit handler) stops.
 */
export { startEtcd } from "./etcd";
export type { EtcdServer, StartEtcdOptions, ServerState } from "./etcd";
export { startMariaDB, randomPassword } from "./mariadb";
export type { MariaDBServer, MariaDBAccount, StartMariaDBOptions, Row } from "./mariadb";
export { startReplicatedCluster, startReplication, waitForReplica } from "./cluster";
export type { ReplicatedCluster, StartReplicatedClusterOptions, Credentials } from "./cluster";
export { startControlPlane, startDataPlane, repoRoot } from "./planes";
export type { ControlPlane, DataPlane, NodeProcess, LogRecord, StartControlPlaneOptions, StartDataPlaneOptions } from "./planes";
export { runDemo, startDemo, DEMO_USER, DEMO_PASSWORD, DEMO_BACKEND_PASSWORD_ENV } from "./demo";
export type { Demo, DemoOptions, DemoListener } from "./demo";
export { stopAll, tempDir, claimSignals } from "./registry";
export { freePort, isPortFree } from "./ports";
export { waitFor, sleep } from "./wait-for";
export type { WaitForOptions } from "./wait-for";
export { MgwError } from "./errors";
export type { SandboxErrorCode } from "./errors";
export type { ExitInfo } from "./proc";
