#!/usr/bin/env node
// mysqlgw-data-plane: the MySQL proxy process. The supervisor (node:cluster
// primary, or the only process with --workers 0) talks to etcd and moves the
// workers' listeners to each new config; see supervisor/run.ts.
import { parseFlags, USAGE } from "./config/flags";
import { createLogger, exitWithError, isClusterWorker, runSupervisor, runWorker } from "./supervisor/run";
import { createListenerManager } from "./listener-manager";
import { setEtcdTls } from "@mysqlgw/proto";

function main(): void {
  let parsed;
  try {
    parsed = parseFlags(process.argv.slice(2), process.env);
  } catch (err) {
    exitWithError(createLogger("info", { role: "supervisor" }), (err as Error).message);
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (isClusterWorker()) {
    runWorker(parsed.flags, createListenerManager);
    return;
  }
  try {
    setEtcdTls(parsed.flags.etcdTls); // every etcd client the supervisor makes (proto/src/etcd-security.ts)
  } catch (err) {
    exitWithError(createLogger("info", { role: "supervisor" }), (err as Error).message);
  }
  runSupervisor(parsed.flags, createListenerManager).catch((err: Error) =>
    exitWithError(createLogger("info", { role: "supervisor" }), `data plane failed to start: ${err.message}`),
  );
}

main();
