import * as fs from "node:fs";
import * as path from "node:path";
import { MgwError } from "./errors";
import type { EtcdServer } from "./etcd";
import { freePort } from "./ports";
import { spawnChild, type ChildHandle, type ExitInfo } from "./proc";
import { register, tempDir } from "./registry";

/** One stdout/stderr line: the parsed JSON object, or `{ msg: line, raw: true }`. */
export type LogRecord = Record<string, unknown> & { msg?: unknown };

export interface NodeProcess {
  readonly pid: number;
  /** Every line so far, in order (stdout and stderr). */
  readonly logs: readonly LogRecord[];
  /** Exit code once exited (null while running or when killed by a signal). */
  readonly exitCode: number | null;
  readonly exitSignal: NodeJS.Signals | null;
  readonly running: boolean;
  readonly exited: Promise<ExitInfo>;
  /**
   * Resolves with the first log record (from index `since`, default 0) that
   * matches; rejects when `timeoutMs` passes (default 10 s) or the process exits
   * first, with the last lines in the message.
   */
  waitForLog(predicate: (record: LogRecord) => boolean, timeoutMs?: number, since?: number): Promise<LogRecord>;
  /** The current number of log records, for `waitForLog(…, since)`. */
  mark(): number;
  /** Sends `signal` (default SIGTERM), SIGKILL after `timeoutMs` (default 15 s); resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** Sends a signal without waiting. */
  signal(sig: NodeJS.Signals): void;
  /** The last `n` raw lines, for failure messages. */
  tail(n?: number): string;
}

export interface ControlPlane extends NodeProcess {
  /** "127.0.0.1:<port>" as logged. */
  readonly address: string;
  /** "http://127.0.0.1:<port>", for the CLI's --api and REST calls. */
  readonly url: string;
  readonly port: number;
}

export interface DataPlane extends NodeProcess {
  readonly stateDir: string;
  /** The version of the newest "serving config" line, or null. */
  readonly servedVersion: bigint | null;
  /** Waits for a "serving config" line with version ≥ `version` (any version if omitted). */
  waitForConfig(version?: bigint | number | string, timeoutMs?: number): Promise<LogRecord>;
}

export interface StartControlPlaneOptions {
  /** A started etcd, or an endpoint URL. */
  etcd: EtcdServer | string;
  /** Default: a free port. */
  port?: number;
  env?: NodeJS.ProcessEnv;
  args?: string[];
  /** Bound on "control plane listening". Default 20 s. */
  startTimeoutMs?: number;
}

export interface StartDataPlaneOptions {
  etcd: EtcdServer | string;
  /** --workers; default 0 (serve in the main process). */
  workers?: number;
  /** --state-dir; default a temp dir. */
  stateDir?: string;
  /** --handshake-timeout MS */
  handshakeTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  args?: string[];
  /** Wait for a "serving config" line before resolving (any version if true). Default false. */
  waitForConfig?: boolean | bigint | number | string;
  /** Bound on waitForConfig. Default 20 s. */
  startTimeoutMs?: number;
}

/** The repository root: MYSQLGW_ROOT, else the nearest parent with a workspaces package.json. */
export function repoRoot(): string {
  const env = process.env.MYSQLGW_ROOT;
  if (env !== undefined && env !== "") return env;
  for (let d = __dirname; ; d = path.dirname(d)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(d, "package.json"), "utf8")) as { workspaces?: unknown };
      if (Array.isArray(pkg.workspaces)) return d;
    } catch {
      // keep climbing
    }
    if (path.dirname(d) === d) return process.cwd();
  }
}

function endpointOf(etcd: EtcdServer | string): string {
  return typeof etcd === "string" ? etcd : etcd.endpoint;
}

/**
 * Spawns `node control-plane/dist/main.js --listen 127.0.0.1:<port> --etcd <endpoint>`
 * (port 0 unless `options.port`: the control plane picks a free one and logs it)
 * and waits (bounded) for its "control plane listening" line.
 */
export async function startControlPlane(options: StartControlPlaneOptions): Promise<ControlPlane> {
  const main = builtMain("control-plane");
  for (let attempt = 1; ; attempt++) {
    // Port 0 by default: the control plane binds a free port and logs it, so no race.
    const port = options.port ?? (attempt === 1 ? 0 : await freePort());
    const proc = spawnNode("control-plane", main, ["--listen", `127.0.0.1:${port}`, "--etcd", endpointOf(options.etcd), ...(options.args ?? [])], options.env);
    try {
      const rec = await proc.waitForLog((r) => r.msg === "control plane listening", options.startTimeoutMs ?? 20_000);
      const address = typeof rec.address === "string" ? rec.address : `127.0.0.1:${port}`;
      const actualPort = Number(address.slice(address.lastIndexOf(":") + 1)) || port;
      return Object.assign(proc, { address, url: `http://127.0.0.1:${actualPort}`, port: actualPort });
    } catch (err) {
      await proc.stop("SIGKILL", 2000);
      if (attempt < 4 && options.port === undefined && /EADDRINUSE|cannot listen/.test(proc.tail(50))) continue;
      throw err;
    }
  }
}

/**
 * Spawns `node data-plane/dist/main.js --etcd <endpoint> --workers <n> --state-dir <dir>
 * [--handshake-timeout MS]`. Resolves once spawned, or with `waitForConfig` once
 * it logs "serving config".
 */
export async function startDataPlane(options: StartDataPlaneOptions): Promise<DataPlane> {
  const main = builtMain("data-plane");
  const stateDir = options.stateDir ?? tempDir("data-plane-state");
  fs.mkdirSync(stateDir, { recursive: true });
  const args = [
    "--etcd", endpointOf(options.etcd),
    "--workers", String(options.workers ?? 0),
    "--state-dir", stateDir,
    ...(options.handshakeTimeoutMs !== undefined ? ["--handshake-timeout", String(options.handshakeTimeoutMs)] : []),
    ...(options.args ?? []),
  ];
  const proc = spawnNode("data-plane", main, args, options.env);
  const isServing = (r: LogRecord): boolean => r.msg === "serving config";
  const latestServed = (): bigint | null => {
    for (let i = proc.logs.length - 1; i >= 0; i--) {
      const r = proc.logs[i];
      if (isServing(r)) return parseVersion(r.version);
    }
    return null;
  };
  // defineProperty, not Object.assign: assign would read the getter once.
  Object.defineProperty(proc, "servedVersion", { get: latestServed, enumerable: true });
  const dp = Object.assign(proc as NodeProcess & { readonly servedVersion: bigint | null }, {
    stateDir,
    waitForConfig(version?: bigint | number | string, timeoutMs = 20_000): Promise<LogRecord> {
      const want = version === undefined ? null : BigInt(version);
      return proc.waitForLog((r) => {
        if (!isServing(r)) return false;
        if (want === null) return true;
        const v = parseVersion(r.version);
        return v !== null && v >= want;
      }, timeoutMs);
    },
  }) as DataPlane;
  if (options.waitForConfig !== undefined && options.waitForConfig !== false) {
    try {
      await dp.waitForConfig(options.waitForConfig === true ? undefined : options.waitForConfig, options.startTimeoutMs ?? 20_000);
    } catch (err) {
      await proc.stop("SIGKILL", 2000);
      throw err;
    }
  }
  return dp;
}

function parseVersion(v: unknown): bigint | null {
  try {
    return typeof v === "string" || typeof v === "number" || typeof v === "bigint" ? BigInt(v) : null;
  } catch {
    return null;
  }
}

function builtMain(pkg: string): string {
  const main = path.join(repoRoot(), pkg, "dist", "main.js");
  if (!fs.existsSync(main)) {
    throw new MgwError("MGW_ERR_SANDBOX_BINARY_MISSING", `${main} does not exist; run \`npm run build\` first`);
  }
  return main;
}

const MAX_LOG_RECORDS = 100_000;

/** Spawns `node <main> …` capturing its JSON log lines. @internal */
export function spawnNode(label: string, main: string, args: string[], env?: NodeJS.ProcessEnv): NodeProcess {
  const logs: LogRecord[] = [];
  const raw: string[] = [];
  const waiters = new Set<() => void>();
  const onLine = (line: string): void => {
    if (line.trim() === "") return;
    raw.push(line);
    if (raw.length > 2000) raw.splice(0, 1000);
    let rec: LogRecord;
    try {
      const parsed: unknown = JSON.parse(line);
      rec = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as LogRecord) : { msg: line, raw: true };
    } catch {
      rec = { msg: line, raw: true };
    }
    if (logs.length < MAX_LOG_RECORDS) logs.push(rec);
    for (const w of [...waiters]) w();
  };
  const child: ChildHandle = spawnChild(process.execPath, [main, ...args], {
    // "serving config" and "control plane listening" are info lines: never run quieter than that.
    env: { ...process.env, ...(/^(warn|error|fatal|silent)$/.test(process.env.MYSQLGW_LOG_LEVEL ?? "") ? { MYSQLGW_LOG_LEVEL: "info" } : {}), ...env },
    cwd: repoRoot(),
    onLine,
    marker: [main, ...args.slice(0, 2)].join(" "),
  });
  void child.exited.then(() => {
    for (const w of [...waiters]) w();
  });
  const tail = (n = 30): string => raw.slice(-n).join("\n");
  const proc: NodeProcess = {
    pid: child.pid,
    logs,
    get exitCode() {
      return child.exit()?.code ?? null;
    },
    get exitSignal() {
      return child.exit()?.signal ?? null;
    },
    get running() {
      return child.running();
    },
    exited: child.exited,
    mark: () => logs.length,
    waitForLog(predicate, timeoutMs = 10_000, since = 0) {
      return new Promise<LogRecord>((resolve, reject) => {
        let next = since;
        const check = (): void => {
          for (; next < logs.length; next++) {
            if (predicate(logs[next])) {
              done();
              resolve(logs[next]);
              return;
            }
          }
          const exit = child.exit();
          if (exit !== null) {
            done();
            reject(
              new MgwError(
                "MGW_ERR_SANDBOX_EXITED",
                `${label} exited (${exit.error?.message ?? exit.signal ?? `code ${exit.code}`}) before the awaited log line; last lines:\n${tail()}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new MgwError("MGW_ERR_SANDBOX_TIMEOUT", `${label}: awaited log line not seen within ${timeoutMs} ms; last lines:\n${tail()}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(signal = "SIGTERM", timeoutMs = 15_000) {
      const exit = await child.terminate(signal, timeoutMs);
      return exit.code;
    },
    signal: (sig) => child.signal(sig),
    tail,
  };
  const unregister = register({
    label: `${label} pid ${child.pid}`,
    pids: () => (child.running() ? [child.pid] : []),
    destroy: async () => {
      await child.terminate("SIGTERM", 5000);
    },
  });
  void child.exited.then(() => unregister());
  return proc;
}
