import * as path from "node:path";
import { repoRoot } from "@mysqlgw/sandbox";
import { runProcess, type ProcessResult } from "./run-process";

export type CliResult = ProcessResult;

/**
 * Runs the real, built `mysqlgw` CLI (`node cli/dist/main.js --api URL …args`).
 * Never rejects for a failing command: look at `code` and `stderr`.
 */
export function runCli(api: string, args: string[], options: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const main = path.join(repoRoot(), "cli", "dist", "main.js");
  return runProcess(process.execPath, [main, "--api", api, ...args], { timeoutMs: options.timeoutMs ?? 20_000, input: options.input ?? "", env: options.env });
}
