import { Buffer } from "node:buffer";
import { MalformedPacketError, UnsupportedProtocolError } from "../../errors";
import { PacketReader, PacketWriter } from "../codec";

/** Protocol::HandshakeV10, the server's greeting (sequence id 0). */
export interface HandshakeV10 {
  protocolVersion: number;
  serverVersion: string;
  connectionId: number;
  /** The nonce ("scramble"), normally 20 bytes, without the trailing NUL. */
  authPluginData: Buffer;
  /** Lower 32 bits of the server's capabilities (unsigned). */
  capabilities: number;
  /** MariaDB extended capabilities (bits 32..63), 0 when absent. */
  mariadbCapabilities: number;
  characterSet: number;
  statusFlags: number;
  authPluginName: string;
}

/** Builds the greeting as wire bytes (sequence id 0). */
export function buildHandshakeV10(h: HandshakeV10): Buffer {
  const nonce = h.authPluginData;
  if (nonce.length < 8) throw new RangeError("auth plugin data must be at least 8 bytes");
  const w = new PacketWriter(96 + h.serverVersion.length + h.authPluginName.length);
  w.u8(h.protocolVersion)
    .nulString(h.serverVersion)
    .u32(h.connectionId)
    .bytes(nonce.subarray(0, 8))
    .u8(0) // filler
    .u16(h.capabilities & 0xffff)
    .u8(h.characterSet)
    .u16(h.statusFlags)
    .u16(h.capabilities >>> 16)
    .u8(nonce.length + 1) // auth plugin data length, incl. the NUL
    .zeros(6)
    .u32(h.mariadbCapabilities);
  const part2 = nonce.subarray(8);
  w.bytes(part2);
  // at least 13 bytes of part 2, NUL included
  w.zeros(Math.max(13 - part2.length, 1));
  w.nulString(h.authPluginName);
  return w.finish(0);
}

/** Parses a server greeting (client side, toward backends). */
export function parseHandshakeV10(payload: Buffer): HandshakeV10 {
  const r = new PacketReader(payload);
  const protocolVersion = r.u8();
  if (protocolVersion !== 10) throw new UnsupportedProtocolError(`handshake protocol version ${protocolVersion} is not supported (need 10)`);
  const serverVersion = r.nulString();
  const connectionId = r.u32();
  const part1 = r.bytes(8);
  r.skip(1);
  let capabilities = r.u16();
  let characterSet = 0;
  let statusFlags = 0;
  let mariadbCapabilities = 0;
  let authPluginName = "";
  let dataLen = 0;
  let part2: Buffer = Buffer.alloc(0);
  if (!r.atEnd()) {
    characterSet = r.u8();
    statusFlags = r.u16();
    capabilities = (capabilities | (r.u16() << 16)) >>> 0;
    dataLen = r.u8();
    r.skip(6);
    mariadbCapabilities = r.u32();
    if ((capabilities & 0x1) !== 0) mariadbCapabilities = 0; // CLIENT_MYSQL set: not extended
    if ((capabilities & 0x8000) !== 0) {
      // SECURE_CONNECTION: max(13, len - 8) bytes, normally ending in NUL
      const n = Math.max(13, dataLen - 8);
      part2 = r.bytes(Math.min(n, r.remaining()));
      if (part2.length > 0 && part2[part2.length - 1] === 0) part2 = part2.subarray(0, part2.length - 1);
    }
    if ((capabilities & 0x80000) !== 0 && !r.atEnd()) {
      authPluginName = r.nulTerminatedOrRest().toString("latin1");
    }
  }
  if (part1.length !== 8) throw new MalformedPacketError("short nonce");
  const authPluginData = Buffer.concat([part1, part2]);
  return {
    protocolVersion,
    serverVersion,
    connectionId,
    authPluginData,
    capabilities,
    mariadbCapabilities,
    characterSet,
    statusFlags,
    authPluginName,
  };
}
