import { Buffer } from "node:buffer";
import { MalformedPacketError } from "../../errors";
import { ResponseHeader } from "../constants";
import { PacketReader, PacketWriter } from "../codec";

/** Protocol::AuthSwitchRequest: 0xFE, plugin name NUL, plugin data. */
export interface AuthSwitchRequest {
  pluginName: string;
  /** Plugin data (the nonce for password plugins) without a trailing NUL; a copy. */
  pluginData: Buffer;
}

/**
 * Builds an AuthSwitchRequest. For mysql_native_password and
 * caching_sha2_password the data is the 20-byte nonce followed by a NUL, as
 * servers send it.
 */
export function buildAuthSwitchRequest(pluginName: string, nonce: Buffer, seq: number): Buffer {
  const w = new PacketWriter(32 + pluginName.length + nonce.length);
  w.u8(ResponseHeader.Eof).nulString(pluginName).bytes(nonce).u8(0);
  return w.finish(seq);
}

export function parseAuthSwitchRequest(payload: Buffer): AuthSwitchRequest {
  const r = new PacketReader(payload);
  if (r.u8() !== ResponseHeader.Eof) throw new MalformedPacketError("not an AuthSwitchRequest");
  const pluginName = r.nulTerminatedOrRest().toString("latin1");
  let data = r.rest();
  if (data.length > 0 && data[data.length - 1] === 0) data = data.subarray(0, data.length - 1);
  return { pluginName, pluginData: Buffer.from(data) };
}
