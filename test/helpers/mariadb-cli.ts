import { spawn } from "node:child_process";

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

export interface MariadbCliResult {
  /** Exit code; null if killed at the timeout. */
  code: number | null;
  stdout: string;
  stderr: string;
}

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
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 15_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
