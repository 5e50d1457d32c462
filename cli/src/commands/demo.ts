import type { Command } from "commander";
import { CliError } from "../cli-error";

/**
 * `mysqlgw demo`: a local sandbox (MariaDB primary + replica, etcd, control
 * plane, data plane, the example policy). The work is in @mysqlgw/sandbox,
 * required lazily so that the CLI builds and runs without it.
 */
export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("run a local sandbox: MariaDB primary + replica, etcd, control plane, data plane and the example policy")
    .option("--dir <dir>", "working directory for the sandbox's data and logs", "./.mysqlgw/demo")
    .option("--port-base <n>", "first of the loopback ports to use (default: free ports)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1024 || n > 65000) throw new CliError("MGW_ERR_CLI_USAGE", `--port-base ${v} is not a port`, "use a number in 1024..65000", { exitCode: 2 });
      return n;
    })
    .action(async (opts: { dir: string; portBase?: number }) => {
      let sandbox: { runDemo(o: { dir: string; portBase?: number }): Promise<unknown> };
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        sandbox = require("@mysqlgw/sandbox");
      } catch (err) {
        throw new CliError("MGW_ERR_CLI_USAGE", "the demo needs the @mysqlgw/sandbox package, which is not installed or not built", "run npm install && npm run build in the mysqlgw checkout", { cause: err });
      }
      await sandbox.runDemo(opts);
    });
}
