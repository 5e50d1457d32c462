import { spawn } from "node:child_process";

export interface ProcessResult {
  /** Exit code; null if killed at the timeout. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion, collecting its output. Never rejects for a
 * non-zero exit (look at `code`); rejects only if it cannot be started.
 * Killed with SIGKILL after `timeoutMs` (default 15 s).
 */
export function runProcess(bin: string, args: string[], options: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"], ...(options.env === undefined ? {} : { env: { ...process.env, ...options.env } }) });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    if (options.input !== undefined) child.stdin?.end(options.input);
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
