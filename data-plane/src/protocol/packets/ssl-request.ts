import type { Buffer } from "node:buffer";
import { Capability } from "../constants";
import { PacketWriter } from "../codec";

/**
 * Protocol::SSLRequest: the first 32 bytes of a HandshakeResponse41 (caps with
 * CLIENT_SSL, max packet size, collation, 23-byte filler whose last 4 bytes
 * carry MariaDB's extended capabilities), sent before the TLS handshake.
 */
export const SSL_REQUEST_LENGTH = 32;

/** True for an SSLRequest payload (a full HandshakeResponse41 is always longer). */
export function isSslRequest(payload: Buffer): boolean {
  return payload.length === SSL_REQUEST_LENGTH && (payload.readUInt32LE(0) & Capability.Ssl) !== 0;
}

/** Builds an SSLRequest (client side, toward a backend) with sequence id `seq`. */
export function buildSslRequest(capabilities: number, maxPacketSize: number, characterSet: number, mariadbCapabilities: number, seq: number): Buffer {
  const caps = (capabilities | Capability.Ssl) >>> 0;
  const w = new PacketWriter(SSL_REQUEST_LENGTH);
  w.u32(caps).u32(maxPacketSize).u8(characterSet).zeros(19);
  w.u32((caps & Capability.LongPassword) === 0 ? mariadbCapabilities : 0);
  return w.finish(seq);
}
