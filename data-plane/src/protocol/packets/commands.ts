import { Buffer } from "node:buffer";
import { Command } from "../constants";

/**
 * Command payloads the gateway itself sends to a backend (client → server,
 * sequence id 0): the command byte and its arguments, WITHOUT the 4-byte
 * packet header — frame them with `framePayload(payload, 0)` or hand them to
 * the pool's runBackendCommand, which does.
 *
 * The argument-less ones are built once and shared: do not modify them.
 */

/** COM_PING (0x0e): answered by an OK packet. */
export const COM_PING: Buffer = Buffer.from([Command.Ping]);

/**
 * COM_RESET_CONNECTION (0x1f): answered by an OK packet. The server drops
 * user variables, temporary tables, prepared statements, named locks and
 * rolls back an open transaction; session variables go back to their
 * global values. (MariaDB keeps the current database: see docs/policy.md.)
 */
export const COM_RESET_CONNECTION: Buffer = Buffer.from([Command.ResetConnection]);

/** COM_QUIT (0x01): the server closes the connection without an answer. */
export const COM_QUIT: Buffer = Buffer.from([Command.Quit]);

/** COM_INIT_DB (0x02) + schema name (rest of the packet, utf8): answered by OK, or ERR 1049 for an unknown schema. */
export function buildInitDb(schema: string): Buffer {
  const name = Buffer.from(schema, "utf8");
  const out = Buffer.allocUnsafe(1 + name.length);
  out[0] = Command.InitDb;
  name.copy(out, 1);
  return out;
}

/** COM_QUERY (0x03) + statement text (rest of the packet, utf8; no query attributes). */
export function buildQuery(sql: string): Buffer {
  const text = Buffer.from(sql, "utf8");
  const out = Buffer.allocUnsafe(1 + text.length);
  out[0] = Command.Query;
  text.copy(out, 1);
  return out;
}
