import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_ETCD_PREFIX } from "@mysqlgw/proto";
import { SupervisorError } from "../supervisor/errors";

/** Deployment settings of one `mysqlgw-data-plane` process, from flags and environment. */
export interface DataPlaneFlags {
  /** etcd client URLs, e.g. ["http://127.0.0.1:2379"]. */
  etcdEndpoints: string[];
  etcdPrefix: string;
  /** Worker processes sharing the listeners; 0 = serve in this process without node:cluster. */
  workers: number;
  /** Directory holding config.json, the last config every worker served. */
  stateDir: string;
  id: string;
  drainTimeoutMs: number;
  handshakeTimeoutMs: number;
  backendConnectTimeoutMs: number;
  /** Bound on each etcd call, and on waiting for etcd at startup before serving from disk. */
  etcdTimeoutMs: number;
  /** Largest client packet payload accepted. */
  maxPacketSize: number;
  logLevel: string;
}

export const USAGE = `Usage: mysqlgw-data-plane [options]

  --etcd URL[,URL]              etcd endpoints [MYSQLGW_ETCD] (default http://127.0.0.1:2379)
  --etcd-prefix P               key prefix [MYSQLGW_ETCD_PREFIX] (default ${DEFAULT_ETCD_PREFIX})
  --workers N                   worker processes sharing the listeners [MYSQLGW_WORKERS]
                                (default: available CPUs; 0 = one process, no node:cluster)
  --state-dir DIR               where the last good config is kept [MYSQLGW_STATE_DIR]
                                (default ./.mysqlgw/data-plane)
  --id ID                       registry id [MYSQLGW_DATA_PLANE_ID] (default <hostname>-<pid>)
  --drain-timeout MS            on SIGTERM, wait this long for connections to end [MYSQLGW_DRAIN_TIMEOUT] (default 30000)
  --handshake-timeout MS        client handshake deadline [MYSQLGW_HANDSHAKE_TIMEOUT] (default 10000)
  --backend-connect-timeout MS  backend connect+auth deadline [MYSQLGW_BACKEND_CONNECT_TIMEOUT] (default 5000)
  --etcd-timeout MS             per etcd call, and wait at startup before serving the disk copy
                                [MYSQLGW_ETCD_TIMEOUT] (default 3000)
  --max-packet-size BYTES       largest client packet accepted [MYSQLGW_MAX_PACKET_SIZE] (default 67108864)
  --log-level LEVEL             pino level [MYSQLGW_LOG_LEVEL] (default info)
  -h, --help                    show this help
`;

/** A flag or environment value that cannot be used; `message` says which and what to do. */
function flagError(message: string): SupervisorError {
  return new SupervisorError("MGW_ERR_FLAGS_INVALID", message);
}

export type ParseFlagsResult = { help: true } | { help: false; flags: DataPlaneFlags };

const LOG_LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/**
 * Parses argv (without node and script) with environment fallbacks. Pure apart
 * from the defaults taken from `os`. Throws SupervisorError MGW_ERR_FLAGS_INVALID.
 */
export function parseFlags(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  defaults: { cpus: number; hostname: string; pid: number } = {
    cpus: os.availableParallelism(),
    hostname: os.hostname(),
    pid: process.pid,
  },
): ParseFlagsResult {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        etcd: { type: "string" },
        "etcd-prefix": { type: "string" },
        workers: { type: "string" },
        "state-dir": { type: "string" },
        id: { type: "string" },
        "drain-timeout": { type: "string" },
        "handshake-timeout": { type: "string" },
        "backend-connect-timeout": { type: "string" },
        "etcd-timeout": { type: "string" },
        "max-packet-size": { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw flagError(`${(err as Error).message}; run mysqlgw-data-plane --help for the options`);
  }
  if (values.help === true) return { help: true };

  const pick = (flag: string, envName: string): string | undefined => {
    const v = values[flag];
    if (typeof v === "string") return v;
    const e = env[envName];
    return e === undefined || e === "" ? undefined : e;
  };
  const int = (flag: string, envName: string, dflt: number, min: number): number => {
    const raw = pick(flag, envName);
    if (raw === undefined) return dflt;
    if (!/^\d+$/.test(raw.trim())) {
      throw flagError(`--${flag} (or ${envName}) must be a whole number, got "${raw}"`);
    }
    const n = Number(raw.trim());
    if (!Number.isSafeInteger(n) || n < min) {
      throw flagError(`--${flag} (or ${envName}) must be at least ${min}, got "${raw}"`);
    }
    return n;
  };

  const etcdRaw = pick("etcd", "MYSQLGW_ETCD") ?? "http://127.0.0.1:2379";
  const etcdEndpoints = etcdRaw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (etcdEndpoints.length === 0) throw flagError("--etcd (or MYSQLGW_ETCD) names no endpoint");
  for (const e of etcdEndpoints) {
    let u: URL;
    try {
      u = new URL(e);
    } catch {
      throw flagError(`--etcd endpoint "${e}" is not a URL; use http://HOST:PORT`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw flagError(`--etcd endpoint "${e}" must start with http:// or https://`);
    }
  }

  const etcdPrefix = pick("etcd-prefix", "MYSQLGW_ETCD_PREFIX") ?? DEFAULT_ETCD_PREFIX;
  if (!etcdPrefix.startsWith("/")) {
    throw flagError(`--etcd-prefix must start with "/", got "${etcdPrefix}"`);
  }
  const workers = int("workers", "MYSQLGW_WORKERS", Math.max(1, defaults.cpus), 0);
  if (workers > 256) throw flagError(`--workers must be at most 256, got ${workers}`);

  const logLevel = pick("log-level", "MYSQLGW_LOG_LEVEL") ?? "info";
  if (!LOG_LEVELS.has(logLevel)) {
    throw flagError(`--log-level must be one of ${[...LOG_LEVELS].join(", ")}, got "${logLevel}"`);
  }
  const id = pick("id", "MYSQLGW_DATA_PLANE_ID") ?? `${defaults.hostname}-${defaults.pid}`;
  if (id.includes("/") || id.trim() === "") {
    throw flagError(`--id must be non-empty and contain no "/", got "${id}"`);
  }

  return {
    help: false,
    flags: {
      etcdEndpoints,
      etcdPrefix,
      workers,
      stateDir: path.resolve(pick("state-dir", "MYSQLGW_STATE_DIR") ?? path.join(".mysqlgw", "data-plane")),
      id,
      drainTimeoutMs: int("drain-timeout", "MYSQLGW_DRAIN_TIMEOUT", 30000, 0),
      handshakeTimeoutMs: int("handshake-timeout", "MYSQLGW_HANDSHAKE_TIMEOUT", 10000, 1),
      backendConnectTimeoutMs: int("backend-connect-timeout", "MYSQLGW_BACKEND_CONNECT_TIMEOUT", 5000, 1),
      etcdTimeoutMs: int("etcd-timeout", "MYSQLGW_ETCD_TIMEOUT", 3000, 1),
      maxPacketSize: int("max-packet-size", "MYSQLGW_MAX_PACKET_SIZE", 64 * 1024 * 1024, 1024),
      logLevel,
    },
  };
}
