import { Buffer } from "node:buffer";
import { MalformedPacketError } from "../../errors";
import { ResponseHeader } from "../constants";
import { PacketReader, PacketWriter } from "../codec";

export interface ErrPacket {
  errno: number;
  /** Five characters; "HY000" when the packet carries none. */
  sqlState: string;
  message: string;
}

/** Builds a (protocol 4.1) ERR packet: 0xFF, errno, '#', SQLSTATE, message. */
export function buildErr(err: ErrPacket, seq: number): Buffer {
  const state = err.sqlState.length === 5 ? err.sqlState : "HY000";
  const w = new PacketWriter(16 + err.message.length * 3);
  w.u8(ResponseHeader.Err).u16(err.errno).u8(0x23).string(state).string(err.message);
  return w.finish(seq);
}

export function parseErr(payload: Buffer): ErrPacket {
  const r = new PacketReader(payload);
  if (r.u8() !== ResponseHeader.Err) throw new MalformedPacketError("not an ERR packet");
  const errno = r.u16();
  let sqlState = "HY000";
  if (!r.atEnd() && r.buf[r.pos] === 0x23) {
    r.skip(1);
    sqlState = r.bytes(5).toString("latin1");
  }
  const message = r.rest().toString("utf8");
  return { errno, sqlState, message };
}
