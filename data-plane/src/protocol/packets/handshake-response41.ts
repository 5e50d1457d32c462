import { Buffer } from "node:buffer";
import { MalformedPacketError, UnsupportedProtocolError } from "../../errors";
import { Capability } from "../constants";
import { PacketReader, PacketWriter } from "../codec";

/** Protocol::HandshakeResponse41, the client's answer to the greeting. */
export interface HandshakeResponse41 {
  /** Lower 32 bits of the client's capabilities (unsigned). */
  capabilities: number;
  /** MariaDB extended capabilities from the filler (0 if none). */
  mariadbCapabilities: number;
  maxPacketSize: number;
  characterSet: number;
  username: string;
  /** Auth response (a copy, safe to keep). */
  authResponse: Buffer;
  /** Initial schema, or null when CLIENT_CONNECT_WITH_DB is not set. */
  database: string | null;
  /** Auth plugin the response was made for, or null without CLIENT_PLUGIN_AUTH. */
  authPluginName: string | null;
  /** Connection attributes in order, empty without CLIENT_CONNECT_ATTRS. */
  connectAttributes: Map<string, string>;
}

/** Payload length of an SSLRequest (caps, max packet, collation, filler). */
const SSL_REQUEST_LENGTH = 32;

/**
 * Parses the client's handshake response (server side). Copies what it keeps.
 * Which optional fields are present depends on the capabilities both sides
 * have: pass what the server announced (libmariadb sets CONNECT_WITH_DB in its
 * flags but omits the schema when the server did not announce it).
 * `capabilities` in the result is the client's, unmasked.
 * Throws MalformedPacketError on truncation, UnsupportedProtocolError for an
 * SSLRequest or a pre-4.1 client.
 */
export function parseHandshakeResponse41(payload: Buffer, serverCapabilities = 0xffffffff): HandshakeResponse41 {
  const r = new PacketReader(payload);
  if (payload.length < 4) throw new MalformedPacketError("handshake response too short");
  const capabilities = r.u32();
  const caps = (capabilities & serverCapabilities) >>> 0;
  if ((capabilities & Capability.Protocol41) === 0) {
    throw new UnsupportedProtocolError("client does not support the 4.1 protocol");
  }
  const maxPacketSize = r.u32();
  const characterSet = r.u8();
  r.skip(19);
  const mariadbCapabilities = (caps & Capability.LongPassword) === 0 ? r.u32() : (r.skip(4), 0);
  if ((capabilities & Capability.Ssl) !== 0 && payload.length === SSL_REQUEST_LENGTH) {
    throw new UnsupportedProtocolError("TLS was requested but is not enabled on this listener");
  }
  const username = r.nulString();
  let authResponse: Buffer;
  if ((caps & Capability.PluginAuthLenencClientData) !== 0) {
    authResponse = r.lenEncBytes();
  } else if ((caps & Capability.SecureConnection) !== 0) {
    authResponse = r.bytes(r.u8());
  } else {
    authResponse = r.nulTerminatedOrRest();
  }
  let database: string | null = null;
  if ((caps & Capability.ConnectWithDb) !== 0) {
    database = r.atEnd() ? "" : r.nulTerminatedOrRest().toString("utf8");
  }
  let authPluginName: string | null = null;
  if ((caps & Capability.PluginAuth) !== 0) {
    authPluginName = r.atEnd() ? "" : r.nulTerminatedOrRest().toString("latin1");
  }
  const connectAttributes = new Map<string, string>();
  if ((caps & Capability.ConnectAttrs) !== 0 && !r.atEnd()) {
    const total = r.lenEncInt();
    if (total < 0 || total > r.remaining()) throw new MalformedPacketError("connect attributes length exceeds packet");
    const end = r.pos + total;
    const attrs = new PacketReader(payload, r.pos, end);
    while (!attrs.atEnd()) {
      const key = attrs.lenEncString();
      const value = attrs.lenEncString();
      connectAttributes.set(key, value);
    }
    r.pos = end;
  }
  return {
    capabilities,
    mariadbCapabilities,
    maxPacketSize,
    characterSet,
    username,
    authResponse: Buffer.from(authResponse),
    database,
    authPluginName,
    connectAttributes,
  };
}

/**
 * Builds a handshake response (client side, toward a backend) with sequence
 * id `seq`. The fields are written as `capabilities` says: the auth response
 * lenenc with PLUGIN_AUTH_LENENC_CLIENT_DATA, else length-prefixed; database
 * only with CONNECT_WITH_DB; plugin name only with PLUGIN_AUTH; attributes
 * only with CONNECT_ATTRS. MariaDB capabilities go in the filler's last 4
 * bytes when CLIENT_MYSQL (LongPassword) is clear.
 */
export function buildHandshakeResponse41(h: HandshakeResponse41, seq: number): Buffer {
  const caps = h.capabilities >>> 0;
  const w = new PacketWriter(128 + h.authResponse.length);
  w.u32(caps).u32(h.maxPacketSize).u8(h.characterSet).zeros(19);
  w.u32((caps & Capability.LongPassword) === 0 ? h.mariadbCapabilities : 0);
  w.nulString(h.username);
  if ((caps & Capability.PluginAuthLenencClientData) !== 0) {
    w.lenEncBytes(h.authResponse);
  } else if ((caps & Capability.SecureConnection) !== 0) {
    if (h.authResponse.length > 255) throw new RangeError("auth response longer than 255 bytes");
    w.u8(h.authResponse.length).bytes(h.authResponse);
  } else {
    w.bytes(h.authResponse).u8(0);
  }
  if ((caps & Capability.ConnectWithDb) !== 0) w.nulString(h.database ?? "");
  if ((caps & Capability.PluginAuth) !== 0) w.nulString(h.authPluginName ?? "");
  if ((caps & Capability.ConnectAttrs) !== 0) {
    const attrs = new PacketWriter(256);
    for (const [k, v] of h.connectAttributes) attrs.lenEncString(k).lenEncString(v);
    const body = attrs.finish(0).subarray(4);
    w.lenEncBytes(body);
  }
  return w.finish(seq);
}
