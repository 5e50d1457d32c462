import * as mysql from "mysql2/promise";
import { MgwError } from "../errors";
import { observe, type ProbeObservation, type SlaveStatusRow } from "./health";

export interface ProbeTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  timeoutMs: number;
}

const VARS_SQL = "SELECT @@read_only, @@server_id, @@gtid_binlog_pos, @@gtid_current_pos, @@gtid_slave_pos";

/**
 * One health probe: a fresh connection (so a probe also proves that new
 * connections are accepted), the variables and SHOW SLAVE STATUS, then close.
 * The whole probe is bounded by `timeoutMs`; on timeout the socket is
 * destroyed. Throws MgwError MGW_ERR_MONITOR_PROBE with what to check.
 */
export async function probeBackend(t: ProbeTarget): Promise<ProbeObservation> {
  let conn: mysql.Connection | undefined;
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new MgwError("MGW_ERR_MONITOR_PROBE", `no answer from ${t.host}:${t.port} within ${t.timeoutMs} ms (probe timeout); check that the server runs and is reachable from the control plane`));
    }, t.timeoutMs);
  });
  const run = async (): Promise<ProbeObservation> => {
    conn = await mysql.createConnection({
      host: t.host,
      port: t.port,
      user: t.user,
      password: t.password,
      connectTimeout: t.timeoutMs,
      supportBigNumbers: true,
      bigNumberStrings: true,
    });
    if (timedOut) throw new MgwError("MGW_ERR_MONITOR_PROBE", "probe timed out");
    const [vars] = await conn.query<mysql.RowDataPacket[]>(VARS_SQL);
    const [slave] = await conn.query<mysql.RowDataPacket[]>("SHOW SLAVE STATUS");
    return observe(vars[0] ?? {}, slave[0] as SlaveStatusRow | undefined);
  };
  try {
    return await Promise.race([run(), timeout]);
  } catch (err) {
    if (err instanceof MgwError) throw err;
    throw new MgwError("MGW_ERR_MONITOR_PROBE", describeProbeError(err, t), { cause: err });
  } finally {
    clearTimeout(timer);
    const c = conn as mysql.Connection | undefined;
    if (c !== undefined) {
      // end() sends COM_QUIT and waits for the close; a server that never
      // closes is cut off after the probe timeout, so no socket outlives it.
      if (timedOut) c.destroy();
      else {
        const cut = setTimeout(() => c.destroy(), t.timeoutMs);
        cut.unref();
        c.end().then(() => clearTimeout(cut), () => {
          clearTimeout(cut);
          c.destroy();
        });
      }
    }
  }
}

function describeProbeError(err: unknown, t: ProbeTarget): string {
  const e = err as { code?: string; errno?: number; sqlMessage?: string; message?: string };
  const where = `${t.host}:${t.port}`;
  switch (e.code) {
    case "ECONNREFUSED":
      return `connection to ${where} refused; the server is not running or not listening there`;
    case "ETIMEDOUT":
      return `connecting to ${where} timed out after ${t.timeoutMs} ms; check the address and the network`;
    case "ER_ACCESS_DENIED_ERROR":
      return `${where} refused the monitor account '${t.user}' (${e.sqlMessage ?? "access denied"}); check health.credentials and the account's password`;
    case "ER_SPECIFIC_ACCESS_DENIED_ERROR":
      return `the monitor account '${t.user}' lacks a privilege on ${where} (${e.sqlMessage ?? ""}); grant it REPLICATION CLIENT (SLAVE MONITOR on MariaDB ≥ 10.5.9)`;
    default:
      return `probe of ${where} failed: ${e.code !== undefined ? `${e.code}: ` : ""}${e.sqlMessage ?? e.message ?? String(err)}`;
  }
}
