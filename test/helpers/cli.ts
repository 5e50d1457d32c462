import { spawn } from "node:child_process";
import * as path from "node:path";
import { repoRoot } from "@mysqlgw/sandbox";

export interface CliResult {
  /** Exit code; null if killed at the timeout. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real, built `mysqlgw` CLI (`node cli/dist/main.js --api URL …args`).
 * Never rejects for a failing command: look at `code` and `stderr`.
 */
export function runCli(api: string, args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<CliResult> {
  const main = path.join(repoRoot(), "cli", "dist", "main.js");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, "--api", api, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.stdin.end(options.input ?? "");
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 20_000);
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
