import { runProcess, type ProcessResult } from "./run-process";

export interface MariadbCliOptions {
  host?: string;
  port: number;
  user: string;
  password?: string;
  database?: string;
  /** The SQL given to -e. */
  sql: string;
  /** More arguments, e.g. ["--skip-column-names"]. */
  args?: string[];
  /** The client is killed after this long. Default 15 s. */
  timeoutMs?: number;
}

export type MariadbCliResult = ProcessResult;

/**
 * Runs the real `mariadb` command-line client:
 * `mariadb --no-defaults --protocol=TCP -h127.0.0.1 -P… -u… -p… [-D db] -e SQL --batch`.
 * Never rejects for a failing statement: look at `code` and `stderr`
 * (e.g. "ERROR 1045 (28000): Access denied …").
 */
export function runMariadbCli(options: MariadbCliOptions): Promise<MariadbCliResult> {
  const bin = process.env.MYSQLGW_MARIADB_CLI ?? "mariadb";
  const password = options.password ?? "";
  const args = [
    "--no-defaults",
    "--protocol=TCP",
    `-h${options.host ?? "127.0.0.1"}`,
    `-P${options.port}`,
    `-u${options.user}`,
    password === "" ? "--password=" : `-p${password}`,
    "--connect-timeout=5",
    ...(options.database !== undefined ? [`-D${options.database}`] : []),
    ...(options.args ?? []),
    "-e",
    options.sql,
    "--batch",
  ];
  return runProcess(bin, args, { timeoutMs: options.timeoutMs ?? 15_000 });
}
