import * as mysql from "mysql2/promise";
import type { BackendState } from "./topology";
import { splitAddress } from "./topology";

/** Where and as whom an operation connects to one backend (the cluster's health.credentials). */
export interface BackendTarget {
  name: string;
  address: string;
  user: string;
  password: string;
}

/**
 * One connection to one backend for the length of an operation. Every
 * statement (and the connect) is bounded by `timeoutMs`; a statement that
 * overruns destroys the connection. Not for concurrent use.
 */
export interface BackendConnection {
  readonly target: BackendTarget;
  query(sql: string, params?: unknown[], timeoutMs?: number): Promise<Record<string, unknown>[]>;
  close(): void;
}

/** Opens connections (replaceable in tests). */
export type BackendConnector = (t: BackendTarget, timeoutMs: number) => Promise<BackendConnection>;

export const connectBackend: BackendConnector = async (t, timeoutMs) => {
  const [host, port] = splitAddress(t.address);
  let conn: mysql.Connection;
  try {
    conn = await bounded(
      mysql.createConnection({ host, port, user: t.user, password: t.password, connectTimeout: timeoutMs, supportBigNumbers: true, bigNumberStrings: true }),
      timeoutMs,
      () => undefined,
    );
  } catch (err) {
    throw new Error(describeSqlError(err, t, timeoutMs), { cause: err });
  }
  let dead = false;
  return {
    target: t,
    async query(sql, params, ms = timeoutMs) {
      if (dead) throw new Error(`${t.name} (${t.address}): the connection was closed after an earlier statement overran`);
      try {
        const [rows] = await bounded(conn.query(sql, params), ms, () => {
          dead = true;
          conn.destroy();
        });
        return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
      } catch (err) {
        throw new Error(describeSqlError(err, t, ms), { cause: err });
      }
    },
    close() {
      dead = true;
      conn.destroy();
    },
  };
};

class StatementTimeout extends Error {}

async function bounded<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new StatementTimeout(`no answer within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A SQL or connect error as one line that says where and, for the usual ones, what to check. */
export function describeSqlError(err: unknown, t: BackendTarget, timeoutMs: number): string {
  const e = err as { code?: string; errno?: number; sqlMessage?: string; message?: string };
  const where = `${t.name} (${t.address})`;
  if (err instanceof StatementTimeout) return `${where} did not answer within ${timeoutMs} ms`;
  switch (e.code) {
    case "ECONNREFUSED":
      return `${where} refused the connection; the server is not running or not listening there`;
    case "ETIMEDOUT":
      return `connecting to ${where} timed out after ${timeoutMs} ms; check the address and the network`;
    case "ER_ACCESS_DENIED_ERROR":
      return `${where} refused the account '${t.user}' of the cluster's health.credentials (${e.sqlMessage ?? "access denied"}); check the account and its password`;
    case "ER_SPECIFIC_ACCESS_DENIED_ERROR":
    case "ER_SPECIFIC_ACCESS_DENIED":
    case "ER_DBACCESS_DENIED_ERROR":
      return `the account '${t.user}' lacks a privilege on ${where} (${e.sqlMessage ?? ""}); replication operations need REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, RELOAD, SLAVE MONITOR and BINLOG MONITOR (docs/monitor.md)`;
    default:
      return `${where}: ${e.errno !== undefined ? `ERROR ${e.errno}: ` : e.code !== undefined ? `${e.code}: ` : ""}${e.sqlMessage ?? e.message ?? String(err)}`;
  }
}

const VARS_SQL =
  "SELECT @@GLOBAL.read_only AS ro, @@server_id AS sid, @@GLOBAL.log_bin AS log_bin, @@GLOBAL.gtid_binlog_pos AS binlog_pos, " +
  "@@GLOBAL.gtid_binlog_state AS binlog_state, @@GLOBAL.gtid_current_pos AS current_pos, @@GLOBAL.gtid_slave_pos AS slave_pos";

/** Reads what the operations decide on (3 statements, read-only). */
export async function readBackendState(c: BackendConnection): Promise<BackendState> {
  const vars = (await c.query(VARS_SQL))[0] ?? {};
  const slave = (await c.query("SHOW SLAVE STATUS"))[0];
  const semi = new Map((await c.query("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_%_enabled'")).map((r) => [String(r.Variable_name), String(r.Value)]));
  return stateFromRows(vars, slave, semi);
}

/** Pure part of readBackendState (for tests). */
export function stateFromRows(vars: Record<string, unknown>, slave: Record<string, unknown> | undefined, semi: ReadonlyMap<string, string>): BackendState {
  const str = (v: unknown): string => (v === null || v === undefined ? "" : String(v));
  const host = str(slave?.Master_Host);
  const configured = host !== "";
  const port = Number(slave?.Master_Port) || 3306;
  const onOff = (name: string): boolean | null => {
    const v = semi.get(name);
    return v === undefined ? null : v.toUpperCase() === "ON" || v === "1";
  };
  return {
    readOnly: Number(vars.ro) === 1,
    serverId: Number(vars.sid) || 0,
    logBin: Number(vars.log_bin) === 1,
    gtidBinlogPos: str(vars.binlog_pos),
    gtidBinlogState: str(vars.binlog_state),
    gtidCurrentPos: str(vars.current_pos),
    gtidSlavePos: str(vars.slave_pos),
    replicationConfigured: configured,
    ioRunning: configured && str(slave?.Slave_IO_Running) === "Yes",
    sqlRunning: configured && str(slave?.Slave_SQL_Running) === "Yes",
    sourceAddress: configured ? (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`) : "",
    masterUser: str(slave?.Master_User),
    lastIoError: str(slave?.Last_IO_Error),
    lastSqlError: str(slave?.Last_SQL_Error),
    semiSyncMaster: onOff("rpl_semi_sync_master_enabled"),
    semiSyncSlave: onOff("rpl_semi_sync_slave_enabled"),
  };
}
