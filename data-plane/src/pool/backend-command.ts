import { Buffer } from "node:buffer";
import type * as net from "node:net";
import { BackendLostError, BackendProtocolError, MgwError } from "../errors";
import { framePayload } from "../protocol/codec";
import { Command, ResponseHeader, ServerStatus } from "../protocol/constants";
import { PacketFramer } from "../protocol/framer";
import { parseErr } from "../protocol/packets/err";
import { parseOk } from "../protocol/packets/ok";

/** The answer to a command whose response is OK/ERR packets only. */
export interface CommandOutcome {
  /** True when every statement succeeded (the last packet was an OK without SERVER_MORE_RESULTS_EXISTS). */
  ok: boolean;
  /** Of the ERR packet; 0 when ok. */
  errno: number;
  /** Of the ERR packet; "" when ok. */
  sqlState: string;
  /** Of the ERR packet; "" when ok. */
  message: string;
  /** Status flags of the last OK packet (0 when the answer was an ERR). */
  statusFlags: number;
  /**
   * Bytes the backend sent after the response (a server sends none: anything
   * here means the connection is in an unknown state and should be discarded);
   * null when none.
   */
  leftover: Buffer | null;
}

export interface BackendCommandOptions {
  /** Largest response packet accepted; default 1 MiB (an OK with session-state tracking is far smaller). */
  maxPacketSize?: number;
}

const DEFAULT_MAX_RESPONSE_PACKET = 1024 * 1024;

/**
 * Runs one command on an idle backend connection (no command in flight, socket
 * paused with no 'data' listener) whose response consists of OK/ERR packets
 * only: COM_PING, COM_INIT_DB, COM_RESET_CONNECTION, or COM_QUERY of SET
 * statements (several separated by ';' need CLIENT_MULTI_STATEMENTS on the
 * connection): OK packets are read until one without SERVER_MORE_RESULTS_EXISTS,
 * or an ERR, which ends the response.
 *
 * `payload` is the command byte and its arguments (see protocol/packets/commands.ts);
 * it is framed here with sequence id 0.
 *
 * Resolves once the response is complete, leaving the socket paused without a
 * 'data' listener, ready for the next command (an ERR answer leaves it usable too).
 * Rejects with an MgwError — and then the connection is unusable (the socket
 * is destroyed, except after a close, where it already is):
 * - BackendLostError when the connection closes or fails, or no complete
 *   response arrives within `timeoutMs`;
 * - BackendProtocolError when the response is anything else (a result set,
 *   a LOCAL INFILE request, a malformed or oversized packet).
 *
 * Not reentrant: one command at a time per socket (the caller serialises).
 */
export function runBackendCommand(
  socket: net.Socket,
  payload: Buffer,
  timeoutMs: number,
  options: BackendCommandOptions = {},
): Promise<CommandOutcome> {
  return new Promise<CommandOutcome>((resolve, reject) => {
    const where = `backend connection ${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
    const what = commandName(payload);
    if (socket.destroyed || !socket.writable) {
      reject(new BackendLostError(`${where} is closed; cannot send ${what}`));
      return;
    }
    let settled = false;
    let outcome: CommandOutcome | null = null;

    const finish = (err: MgwError | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("close", onClose);
      socket.removeListener("end", onEnd);
      socket.removeListener("error", onError);
      if (err !== null) {
        socket.destroy();
        reject(err);
        return;
      }
      socket.pause();
      const o = outcome as CommandOutcome;
      o.leftover = framer.takeLeftover();
      resolve(o);
    };

    const onPacket = (_seq: number, p: Buffer): void => {
      if (outcome !== null) return;
      if (p.length === 0) throw new BackendProtocolError(`${where}: empty packet in the answer to ${what}`);
      if (p[0] === ResponseHeader.Err) {
        const e = parseErr(p);
        outcome = { ok: false, errno: e.errno, sqlState: e.sqlState, message: e.message, statusFlags: 0, leftover: null };
        framer.stop();
        return;
      }
      if (p[0] === ResponseHeader.Ok) {
        // capabilities 0: the session-state info is not decoded (status flags are all we need)
        const ok = parseOk(p, 0);
        if ((ok.statusFlags & ServerStatus.MoreResultsExist) !== 0) return;
        outcome = { ok: true, errno: 0, sqlState: "", message: "", statusFlags: ok.statusFlags, leftover: null };
        framer.stop();
        return;
      }
      throw new BackendProtocolError(
        `${where}: ${what} was answered with a packet of type 0x${p[0].toString(16)} (a result set?) instead of OK/ERR; ` +
          `only commands without result sets may be run this way`,
      );
    };
    const framer = new PacketFramer({ maxPacketSize: options.maxPacketSize ?? DEFAULT_MAX_RESPONSE_PACKET }, onPacket);

    const onData = (chunk: Buffer): void => {
      try {
        framer.push(chunk);
      } catch (err) {
        finish(err instanceof MgwError ? err : new BackendProtocolError(`${where}: ${String(err)}`, { cause: err }));
        return;
      }
      if (outcome !== null) finish(null);
    };
    const onEnd = (): void => finish(new BackendLostError(`${where} was closed by the server before it answered ${what}`));
    const onClose = (): void => finish(new BackendLostError(`${where} closed before it answered ${what}`));
    const onError = (err: NodeJS.ErrnoException): void =>
      finish(new BackendLostError(`${where} failed before it answered ${what}: ${err.code ?? err.message}`, { cause: err }));
    const timer = setTimeout(
      () => finish(new BackendLostError(`${where} did not answer ${what} within ${timeoutMs} ms; the connection is closed`)),
      timeoutMs,
    );

    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("close", onClose);
    socket.on("error", onError);
    socket.write(framePayload(payload, 0));
    socket.resume();
  });
}

/** For messages: "COM_PING", "COM_QUERY", … */
function commandName(payload: Buffer): string {
  switch (payload[0]) {
    case Command.Quit:
      return "COM_QUIT";
    case Command.InitDb:
      return "COM_INIT_DB";
    case Command.Query:
      return "COM_QUERY";
    case Command.Ping:
      return "COM_PING";
    case Command.ResetConnection:
      return "COM_RESET_CONNECTION";
    default:
      return `command 0x${(payload[0] ?? 0).toString(16)}`;
  }
}
