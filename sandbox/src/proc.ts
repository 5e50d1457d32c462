import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { MgwError } from "./errors";
import { recordPid } from "./registry";

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be spawned at all (ENOENT, EACCES). */
  error: Error | null;
}

/** A spawned child and its exit. @internal */
export interface ChildHandle {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  /** Null while running. */
  exit(): ExitInfo | null;
  running(): boolean;
  signal(sig: NodeJS.Signals): void;
  /** Sends `sig`, waits up to `timeoutMs`, then SIGKILLs and waits for the exit. */
  terminate(sig?: NodeJS.Signals, timeoutMs?: number): Promise<ExitInfo>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout and stderr go to this file (appended). */
  logFile?: string;
  /** Called for each stdout/stderr line (instead of a log file). */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** A string in the child's command line (e.g. its data dir), checked before a crash reaper kills the pid. Default: the last argument. */
  marker?: string;
}

/**
 * Spawns `cmd` in its own process group (so a terminal's Ctrl-C reaches only us
 * and we stop children in order), stdin closed.
 */
export function spawnChild(cmd: string, args: readonly string[], options: SpawnOptions = {}): ChildHandle {
  let fd: number | null = null;
  if (options.logFile !== undefined) fd = fs.openSync(options.logFile, "a");
  const out = fd !== null ? fd : options.onLine !== undefined ? "pipe" : "ignore";
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", out, out],
    detached: true,
  });
  if (fd !== null) fs.closeSync(fd);
  let exitInfo: ExitInfo | null = null;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("error", (error) => {
      if (child.pid === undefined) {
        exitInfo = { code: null, signal: null, error };
        resolve(exitInfo);
      }
    });
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal, error: null };
      resolve(exitInfo);
    });
  });
  if (options.onLine !== undefined && child.stdout !== null && child.stderr !== null) {
    const onLine = options.onLine;
    splitLines(child.stdout, (l) => onLine(l, "stdout"));
    splitLines(child.stderr, (l) => onLine(l, "stderr"));
  }
  const pid = child.pid ?? -1;
  if (pid > 0) recordPid(pid, options.marker ?? args[args.length - 1] ?? cmd);
  const handle: ChildHandle = {
    child,
    pid,
    exited,
    exit: () => exitInfo,
    running: () => exitInfo === null && pid > 0,
    signal(sig) {
      if (handle.running()) {
        try {
          process.kill(pid, sig);
        } catch {
          // raced with exit
        }
      }
    },
    async terminate(sig = "SIGTERM", timeoutMs = 10_000) {
      if (!handle.running()) return exitInfo ?? (await exited);
      if (sig === "SIGKILL") killGroup(pid);
      else handle.signal(sig);
      const timer = setTimeout(() => killGroup(pid), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return handle;
}

/** SIGKILLs the process group led by `pid` (children were spawned detached), then the pid itself. */
export function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {
      // gone
    }
  }
}

function splitLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    rest += chunk;
    let i: number;
    while ((i = rest.indexOf("\n")) >= 0) {
      onLine(rest.slice(0, i));
      rest = rest.slice(i + 1);
    }
    if (rest.length > 1 << 20) {
      onLine(rest);
      rest = "";
    }
  });
  stream.on("end", () => {
    if (rest.length > 0) onLine(rest);
  });
}

/** The absolute path of a binary: an env override, then $PATH, then the sbin dirs. */
export function findBinary(name: string, envOverride?: string): string {
  const override = envOverride !== undefined ? process.env[envOverride] : undefined;
  if (override !== undefined && override !== "") return override;
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const d of dirs) {
    if (d === "") continue;
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  throw new MgwError(
    "MGW_ERR_SANDBOX_BINARY_MISSING",
    `${name} not found in $PATH or /usr/sbin; install the Debian packages: apt-get install -y mariadb-server mariadb-client etcd-server etcd-client`,
  );
}

/** The last `lines` lines of a text file, or "" if it cannot be read. */
export function tailFile(file: string, lines = 30): string {
  try {
    const text = fs.readFileSync(file, "utf8");
    return text.split("\n").slice(-lines - 1).join("\n").trimEnd();
  } catch {
    return "";
  }
}

/** Runs a command to completion with a bound; rejects with its output when it fails. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new MgwError("MGW_ERR_SANDBOX_COMMAND_FAILED", `${cmd}: ${err.message}`, { cause: err }));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(
          new MgwError(
            "MGW_ERR_SANDBOX_COMMAND_FAILED",
            `${path.basename(cmd)} ${args.join(" ")} failed (${signal ?? `exit ${code}`}${signal === "SIGKILL" ? `, killed after ${timeoutMs} ms` : ""}):\n${(stdout + stderr).trim().split("\n").slice(-30).join("\n")}`,
          ),
        );
    });
  });
}
