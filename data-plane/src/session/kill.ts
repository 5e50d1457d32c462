import { Buffer } from "node:buffer";
import { BackendProtocolError, MgwError, toSqlError } from "../errors";
import { Capability, Command, ResponseHeader } from "../protocol/constants";
import { PacketWriter } from "../protocol/codec";
import { PacketFramer } from "../protocol/framer";
import { parseErr } from "../protocol/packets/err";
import { resolveSecretRef } from "../secrets";
import type { KillResult } from "../types";
import { BackendHandshake, type BackendLink } from "./backend-connection";
import type { BackendTarget } from "./config-snapshot";
import type { BackendTlsSettings } from "./tls";

/** What a session needs to have its backend thread killed by someone else. */
export interface KillTarget {
  /** The mysqlgw user owning the connection (only it may kill). */
  readonly user: string;
  readonly backend: BackendTarget;
  readonly backendUser: string;
  readonly secretRef: string;
  /** The backend's connection id (its greeting's), i.e. its thread id. */
  readonly threadId: number;
  /** TLS toward that backend, as the session's own connection uses. */
  readonly tls: BackendTlsSettings | null;
}

export const KILL_OK: KillResult = { errno: 0, sqlState: "00000", message: "" };

export function killResultOf(err: unknown): KillResult {
  const e = toSqlError(err);
  return { errno: e.errno, sqlState: e.sqlState, message: e.message };
}

const ADMIN_CAPS = (Capability.LongPassword | Capability.Protocol41 | Capability.Transactions | Capability.SecureConnection) >>> 0;

/**
 * Runs `KILL [QUERY] <threadId>` on the target's backend over a short-lived
 * connection logged in with the target's own backend credentials (MariaDB
 * lets a user kill its own threads). Resolves with the server's answer; never
 * rejects (connection trouble becomes a KillResult with 1105).
 */
export async function killBackendThread(
  t: KillTarget,
  query: boolean,
  options: { timeoutMs: number; maxHandshakePacketSize: number },
): Promise<KillResult> {
  let link: BackendLink;
  try {
    const password = await resolveSecretRef(t.secretRef);
    const hs = new BackendHandshake(t.backend, {
      user: t.backendUser,
      password,
      clientCapabilities: ADMIN_CAPS,
      maxPacketSize: 1 << 24,
      characterSet: 0,
      database: null,
      connectAttributes: new Map([["program_name", "mysqlgw-kill"]]),
      clientAddress: "mysqlgw",
      timeoutMs: options.timeoutMs,
      maxPacketSize4Handshake: options.maxHandshakePacketSize,
      tls: t.tls,
    });
    link = await hs.result;
    hs.takeLeftover();
  } catch (err) {
    return killResultOf(err instanceof MgwError ? err : new BackendProtocolError(String(err)));
  }
  const s = link.socket;
  return new Promise<KillResult>((resolve) => {
    let done = false;
    const finish = (r: KillResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.removeAllListeners("data");
      s.end(new PacketWriter(1).u8(Command.Quit).finish(0));
      setTimeout(() => s.destroy(), 1000).unref();
      resolve(r);
    };
    const timer = setTimeout(() => finish(killResultOf(new BackendProtocolError(`backend '${t.backend.name}': no answer to KILL`))), options.timeoutMs);
    const framer = new PacketFramer({ maxPacketSize: options.maxHandshakePacketSize }, (_seq, payload: Buffer) => {
      if (payload.length > 0 && payload[0] === ResponseHeader.Err) {
        const e = parseErr(payload);
        finish({ errno: e.errno, sqlState: e.sqlState, message: e.message });
      } else {
        finish(KILL_OK);
      }
    });
    s.on("data", (chunk: Buffer) => {
      try {
        framer.push(chunk);
      } catch (err) {
        finish(killResultOf(err));
      }
    });
    s.on("close", () => finish(killResultOf(new BackendProtocolError(`backend '${t.backend.name}' closed the connection during KILL`))));
    const sql = `KILL ${query ? "QUERY" : "CONNECTION"} ${t.threadId}`;
    s.write(new PacketWriter(8 + sql.length).u8(Command.Query).string(sql).finish(0));
    s.resume();
  });
}
