import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as mysql from "mysql2/promise";
import { MgwError } from "./errors";
import { freePort, isPortFree } from "./ports";
import { findBinary, runCommand, spawnChild, tailFile, type ChildHandle } from "./proc";
import { isTempDir, register, tempDir } from "./registry";
import type { ServerState } from "./etcd";
import { sleep } from "./wait-for";

export type Row = Record<string, unknown>;

export interface MariaDBAccount {
  user: string;
  password: string;
  /** Default '%'. */
  host?: string;
  /** Default "ALL PRIVILEGES". Granted ON *.* */
  grants?: string;
}

export interface StartMariaDBOptions {
  /** Where datadir, socket and logs go. Default: a temp dir removed by `destroy()`/`stopAll()`. */
  dir?: string;
  /** Unique within a replication topology. Default 1. */
  serverId?: number;
  /** Default: a free port chosen by the OS. */
  port?: number;
  /** Default: random. Set for root@localhost (socket) and root@127.0.0.1. */
  rootPassword?: string;
  /** Accounts created at first start, with sql_log_bin=0 so that they never replicate. */
  accounts?: MariaDBAccount[];
  /** Starts with --read-only (a replica). */
  readOnly?: boolean;
  /** More mariadbd options, e.g. ["--proxy-protocol-networks=127.0.0.1"]. */
  extraArgs?: string[];
  /** A name for logs and errors. Default "mariadb-<serverId>". */
  name?: string;
  /** Bound on the wait for readiness. Default 30 s. */
  startTimeoutMs?: number;
  /** Bound on a clean shutdown before SIGKILL. Default 20 s. */
  stopTimeoutMs?: number;
}

export interface MariaDBServer {
  readonly name: string;
  readonly serverId: number;
  readonly host: "127.0.0.1";
  readonly port: number;
  /** "127.0.0.1:<port>", as a policy file's backend address. */
  readonly address: string;
  /** Unix socket; root@localhost connects through it. */
  readonly socket: string;
  readonly rootPassword: string;
  readonly dir: string;
  readonly dataDir: string;
  readonly errorLog: string;
  readonly state: ServerState;
  readonly pid: number | null;
  /**
   * Runs SQL as root over the socket (one lazily opened connection, multiple
   * statements allowed). Resolves with the rows of a result set, or [] for a
   * statement without one.
   */
  query<T extends Row = Row>(sql: string, params?: unknown[]): Promise<T[]>;
  /** A new mysql2 promise connection as root over the socket. Close it yourself. */
  connectAsRoot(): Promise<mysql.Connection>;
  /** Clean shutdown (SIGTERM, SIGKILL after the bound). Keeps the datadir. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. Keeps the datadir. */
  kill(): Promise<void>;
  /** Starts again on the same port and datadir (stopping first if running). */
  restart(): Promise<void>;
  /** Stops and removes the dir if it is a temp dir. Idempotent. */
  destroy(): Promise<void>;
  errorLogTail(lines?: number): string;
}

/** The options given to both mariadb-install-db and mariadbd. */
const INNODB_ARGS = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"];

/**
 * Starts a MariaDB server (Debian mariadbd) on a free loopback port with GTID
 * binlogs (strict mode, ROW, log-slave-updates), waits (bounded) until it
 * answers on its socket, sets the root password and creates `accounts`.
 *
 * The datadir is a copy of a template that mariadb-install-db builds once per
 * machine and MariaDB version (os.tmpdir()/mysqlgw-mariadb-template-<hash>),
 * so a start costs a copy (~0.3 s) and the server's own start (~0.2 s), not an
 * install (~2 s). MYSQLGW_SANDBOX_NO_TEMPLATE=1 installs every time.
 */
export async function startMariaDB(options: StartMariaDBOptions = {}): Promise<MariaDBServer> {
  const mariadbd = findBinary("mariadbd", "MYSQLGW_MARIADBD_BIN");
  const serverId = options.serverId ?? 1;
  const name = options.name ?? `mariadb-${serverId}`;
  const dir = options.dir ?? tempDir(name);
  fs.mkdirSync(dir, { recursive: true });
  const dataDir = path.join(dir, "data");
  // sun_path holds 108 bytes: a deep dir gets its socket in a short temp dir instead.
  const socket = Buffer.byteLength(path.join(dir, "mariadbd.sock")) <= 100 ? path.join(dir, "mariadbd.sock") : path.join(tempDir("sock"), `${name}.sock`);
  const errorLog = path.join(dir, "error.log");
  const rootPassword = options.rootPassword ?? randomPassword();
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 20_000;

  if (fs.existsSync(dataDir) && fs.readdirSync(dataDir).length > 0) {
    throw new MgwError(
      "MGW_ERR_SANDBOX_BAD_STATE",
      `${dataDir} already holds a datadir (from an earlier run?); remove it, or keep the MariaDBServer and call restart()`,
    );
  }
  await createDataDir(dataDir);

  let port = 0;
  let child: ChildHandle | null = null;
  let state: ServerState = "stopped";
  let destroyed = false;
  let passwordSet = false;
  let conn: Promise<mysql.Connection> | null = null;

  const args = (): string[] => [
    "--no-defaults",
    ...(process.getuid?.() === 0 ? ["--user=root"] : []),
    `--datadir=${dataDir}`,
    `--socket=${socket}`,
    `--port=${port}`,
    "--bind-address=127.0.0.1",
    `--server-id=${serverId}`,
    "--log-basename=mariadb",
    "--log-bin",
    "--gtid-strict-mode=ON",
    "--log-slave-updates",
    "--binlog-format=ROW",
    "--skip-name-resolve",
    ...INNODB_ARGS,
    // A sandbox: durability traded for speed; nothing here survives a host crash anyway.
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
    "--sync-binlog=0",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    "--max-allowed-packet=64M",
    `--log-error=${errorLog}`,
    `--pid-file=${path.join(dir, "mariadbd.pid")}`,
    ...(options.readOnly === true ? ["--read-only"] : []),
    ...(options.extraArgs ?? []),
  ];

  const connectRoot = (withPassword: boolean): Promise<mysql.Connection> =>
    mysql.createConnection({
      socketPath: socket,
      user: "root",
      password: withPassword ? rootPassword : "",
      multipleStatements: true,
      connectTimeout: 5000,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
    });

  const launch = async (): Promise<void> => {
    fs.appendFileSync(errorLog, `--- mysqlgw sandbox: starting ${name} on 127.0.0.1:${port} ${new Date().toISOString()} ---\n`);
    const c = spawnChild(mariadbd, args(), { logFile: path.join(dir, "mariadbd.out"), marker: `--datadir=${dataDir}` });
    child = c;
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      const exit = c.exit();
      if (exit !== null) {
        const tail = tailFile(errorLog, 25);
        const inUse = /Address already in use|errno: 98|error: 98/i.test(tail);
        throw new MgwError(
          "MGW_ERR_SANDBOX_START_FAILED",
          `${name}: mariadbd exited during start (${exit.error?.message ?? exit.signal ?? `exit ${exit.code}`})${inUse ? " [address in use]" : ""}; error log ${errorLog}:\n${tail}\n${tailFile(path.join(dir, "mariadbd.out"), 5)}`,
        );
      }
      if (fs.existsSync(socket)) {
        try {
          const probe = await connectRoot(passwordSet);
          await probe.end();
          return;
        } catch {
          // not ready yet
        }
      }
      if (Date.now() >= deadline) {
        await c.terminate("SIGKILL", 1000);
        throw new MgwError("MGW_ERR_SANDBOX_TIMEOUT", `${name}: not ready within ${startTimeoutMs} ms; error log ${errorLog}:\n${tailFile(errorLog, 25)}`);
      }
      await sleep(40);
    }
  };

  for (let attempt = 1; ; attempt++) {
    port = attempt === 1 && options.port !== undefined ? options.port : await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      if (options.port === undefined && attempt < 4 && err instanceof MgwError && err.message.includes("[address in use]")) continue;
      throw err;
    }
  }
  state = "running";

  // First start: lock root down and create the accounts, none of it binlogged.
  {
    const c = await connectRoot(false);
    try {
      const statements: Array<[string, unknown[]]> = [
        ["SET SESSION sql_log_bin = 0", []],
        [`DROP USER IF EXISTS 'root'@'${os.hostname().replace(/'/g, "")}'`, []],
        ["ALTER USER 'root'@'localhost' IDENTIFIED BY ?", [rootPassword]],
        ["ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY ?", [rootPassword]],
        ["ALTER USER 'root'@'::1' IDENTIFIED BY ?", [rootPassword]],
      ];
      for (const a of options.accounts ?? []) {
        const who = `${quoteString(a.user)}@${quoteString(a.host ?? "%")}`;
        statements.push([`CREATE USER IF NOT EXISTS ${who} IDENTIFIED BY ?`, [a.password]]);
        statements.push([`GRANT ${a.grants ?? "ALL PRIVILEGES"} ON *.* TO ${who}`, []]);
      }
      for (const [sql, params] of statements) await c.query(sql, params);
    } finally {
      await c.end();
    }
    passwordSet = true;
  }

  const closeConn = async (): Promise<void> => {
    const c = conn;
    conn = null;
    if (c !== null) {
      try {
        (await c).destroy();
      } catch {
        // never opened, or already closed
      }
    }
  };

  const halt = async (sig: NodeJS.Signals, next: ServerState): Promise<void> => {
    await closeConn();
    const c = child;
    if (c !== null && c.running()) await c.terminate(sig, stopTimeoutMs);
    child = null;
    if (state === "running") state = next;
  };

  const server: MariaDBServer = {
    name,
    serverId,
    host: "127.0.0.1",
    port,
    address: `127.0.0.1:${port}`,
    socket,
    rootPassword,
    dir,
    dataDir,
    errorLog,
    get state() {
      return state;
    },
    get pid() {
      return child !== null && child.running() ? child.pid : null;
    },
    async query<T extends Row = Row>(sql: string, params?: unknown[]): Promise<T[]> {
      if (state !== "running") throw new MgwError("MGW_ERR_SANDBOX_NOT_RUNNING", `${name} is ${state}`);
      if (conn === null) {
        const opening = connectRoot(true).then((c) => {
          c.on("error", () => {
            if (conn === opening) conn = null;
          });
          return c;
        });
        opening.catch(() => {
          if (conn === opening) conn = null;
        });
        conn = opening;
      }
      const [result] = await (await conn).query(sql, params);
      return (Array.isArray(result) ? result : []) as T[];
    },
    connectAsRoot: () => connectRoot(true),
    stop: () => halt("SIGTERM", "stopped"),
    kill: () => halt("SIGKILL", "killed"),
    async restart() {
      if (destroyed) throw new MgwError("MGW_ERR_SANDBOX_BAD_STATE", `${name} was destroyed; start a new one`);
      await halt("SIGTERM", "stopped");
      if (!(await isPortFree(port))) {
        throw new MgwError("MGW_ERR_SANDBOX_START_FAILED", `cannot restart ${name}: 127.0.0.1:${port} was taken by another process meanwhile`);
      }
      await launch();
      state = "running";
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      unregister();
      await halt("SIGKILL", "stopped");
      if (isTempDir(dir)) fs.rmSync(dir, { recursive: true, force: true });
    },
    errorLogTail: (lines = 30) => tailFile(errorLog, lines),
  };
  const unregister = register({
    label: `${name} ${server.address}`,
    pids: () => (child !== null && child.running() ? [child.pid] : []),
    destroy: () => server.destroy(),
  });
  return server;
}

export function randomPassword(): string {
  return crypto.randomBytes(12).toString("base64url");
}

function quoteString(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** Copies the template datadir into `dataDir` (building the template first if needed). */
async function createDataDir(dataDir: string): Promise<void> {
  if (process.env.MYSQLGW_SANDBOX_NO_TEMPLATE === "1") {
    await installDataDir(dataDir);
    return;
  }
  const template = await ensureTemplate();
  fs.cpSync(template, dataDir, { recursive: true });
}

let templatePromise: Promise<string> | null = null;

function ensureTemplate(): Promise<string> {
  templatePromise ??= buildTemplate().catch((err: unknown) => {
    templatePromise = null;
    throw err;
  });
  return templatePromise;
}

async function buildTemplate(): Promise<string> {
  const mariadbd = findBinary("mariadbd", "MYSQLGW_MARIADBD_BIN");
  const { stdout } = await runCommand(mariadbd, ["--version"], { timeoutMs: 20_000 });
  const key = crypto
    .createHash("sha256")
    .update(`${stdout.trim()}|${INNODB_ARGS.join(" ")}|${process.getuid?.() ?? ""}|v1`)
    .digest("hex")
    .slice(0, 12);
  const template = path.join(os.tmpdir(), `mysqlgw-mariadb-template-${key}`);
  const done = path.join(template, "complete");
  if (fs.existsSync(done) && fs.existsSync(path.join(template, "data", "mysql", "global_priv.MAI"))) return path.join(template, "data");
  const build = tempDir("mariadb-template");
  await installDataDir(path.join(build, "data"));
  fs.writeFileSync(path.join(build, "complete"), `${stdout.trim()}\n`);
  try {
    fs.renameSync(build, template);
  } catch {
    // Another process won the race (or a broken leftover is in the way).
    if (!fs.existsSync(done) || !fs.existsSync(path.join(template, "data", "mysql", "global_priv.MAI"))) {
      fs.rmSync(template, { recursive: true, force: true });
      try {
        fs.renameSync(build, template);
      } catch {
        return path.join(build, "data");
      }
    } else {
      fs.rmSync(build, { recursive: true, force: true });
    }
  }
  return path.join(template, "data");
}

async function installDataDir(dataDir: string): Promise<void> {
  const installDb = findBinary("mariadb-install-db", "MYSQLGW_MARIADB_INSTALL_DB_BIN");
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  await runCommand(
    installDb,
    [
      "--no-defaults",
      `--datadir=${dataDir}`,
      "--auth-root-authentication-method=normal",
      "--skip-test-db",
      ...(process.getuid?.() === 0 ? ["--user=root"] : []),
      ...INNODB_ARGS,
    ],
    { timeoutMs: 120_000 },
  );
}
