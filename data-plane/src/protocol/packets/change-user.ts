import { Buffer } from "node:buffer";
import { MalformedPacketError } from "../../errors";
import { Capability, Command } from "../constants";
import { PacketReader, PacketWriter } from "../codec";

/** COM_CHANGE_USER (0x11), client → server, sequence id 0. */
export interface ChangeUser {
  username: string;
  /** A copy, safe to keep. */
  authResponse: Buffer;
  /** "" for none. */
  database: string;
  /** Collation id, or null when the client sent none (the connection's stays). */
  characterSet: number | null;
  /** null without CLIENT_PLUGIN_AUTH or when absent. */
  authPluginName: string | null;
  connectAttributes: Map<string, string>;
}

/**
 * Parses COM_CHANGE_USER as the client wrote it for the capabilities
 * negotiated with it: user NUL; auth response (1-byte length with
 * SECURE_CONNECTION, else NUL-terminated); schema NUL; then, if more follows,
 * collation (2 bytes), plugin name NUL (PLUGIN_AUTH), attributes (CONNECT_ATTRS).
 */
export function parseChangeUser(payload: Buffer, capabilities: number): ChangeUser {
  const r = new PacketReader(payload);
  if (r.u8() !== Command.ChangeUser) throw new MalformedPacketError("not a COM_CHANGE_USER packet");
  const username = r.nulString();
  const authResponse =
    (capabilities & Capability.SecureConnection) !== 0 ? r.bytes(r.u8()) : r.nulTerminatedOrRest();
  const database = r.atEnd() ? "" : r.nulTerminatedOrRest().toString("utf8");
  let characterSet: number | null = null;
  let authPluginName: string | null = null;
  const connectAttributes = new Map<string, string>();
  if (r.remaining() >= 2) {
    characterSet = r.u16();
    if ((capabilities & Capability.PluginAuth) !== 0 && !r.atEnd()) {
      authPluginName = r.nulTerminatedOrRest().toString("latin1");
    }
    if ((capabilities & Capability.ConnectAttrs) !== 0 && !r.atEnd()) {
      const total = r.lenEncInt();
      if (total < 0 || total > r.remaining()) throw new MalformedPacketError("connect attributes length exceeds packet");
      const attrs = new PacketReader(payload, r.pos, r.pos + total);
      for (let guard = 0; !attrs.atEnd() && guard < 4096; guard++) {
        connectAttributes.set(attrs.lenEncString(), attrs.lenEncString());
      }
      r.pos += total;
    }
  }
  return { username, authResponse: Buffer.from(authResponse), database, characterSet, authPluginName, connectAttributes };
}

/** Builds COM_CHANGE_USER (sequence id 0) for a server with `capabilities` (what we negotiated with it). */
export function buildChangeUser(c: ChangeUser, capabilities: number): Buffer {
  const w = new PacketWriter(64 + c.username.length + c.authResponse.length + c.database.length);
  w.u8(Command.ChangeUser).nulString(c.username);
  if ((capabilities & Capability.SecureConnection) !== 0) {
    if (c.authResponse.length > 255) throw new RangeError("auth response longer than 255 bytes");
    w.u8(c.authResponse.length).bytes(c.authResponse);
  } else {
    w.bytes(c.authResponse).u8(0);
  }
  w.nulString(c.database);
  w.u16(c.characterSet ?? 0);
  if ((capabilities & Capability.PluginAuth) !== 0) w.nulString(c.authPluginName ?? "");
  if ((capabilities & Capability.ConnectAttrs) !== 0) {
    const attrs = new PacketWriter(256);
    for (const [k, v] of c.connectAttributes) attrs.lenEncString(k).lenEncString(v);
    w.lenEncBytes(attrs.finish(0).subarray(4));
  }
  return w.finish(0);
}
