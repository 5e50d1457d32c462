import { Buffer } from "node:buffer";
import { MalformedPacketError } from "../../errors";
import { Capability, ResponseHeader, ServerStatus } from "../constants";
import { PacketReader, PacketWriter } from "../codec";

export interface OkPacket {
  affectedRows: number;
  lastInsertId: number;
  statusFlags: number;
  warnings: number;
  /** Human-readable info; "" when absent. */
  info: string;
}

/** Builds a (protocol 4.1) OK packet. With SESSION_TRACK the info is lenenc. */
export function buildOk(ok: Partial<OkPacket>, capabilities: number, seq: number): Buffer {
  const w = new PacketWriter(32 + (ok.info?.length ?? 0));
  w.u8(ResponseHeader.Ok)
    .lenEncInt(ok.affectedRows ?? 0)
    .lenEncInt(ok.lastInsertId ?? 0)
    .u16(ok.statusFlags ?? ServerStatus.Autocommit)
    .u16(ok.warnings ?? 0);
  const info = ok.info ?? "";
  if ((capabilities & Capability.SessionTrack) !== 0) w.lenEncString(info);
  else if (info !== "") w.string(info);
  return w.finish(seq);
}

/** Parses an OK packet (header 0x00, or 0xFE as the DEPRECATE_EOF terminator). */
export function parseOk(payload: Buffer, capabilities: number): OkPacket {
  const r = new PacketReader(payload);
  const h = r.u8();
  if (h !== ResponseHeader.Ok && h !== ResponseHeader.Eof) throw new MalformedPacketError("not an OK packet");
  const affectedRows = r.lenEncInt();
  const lastInsertId = r.lenEncInt();
  const statusFlags = r.u16();
  const warnings = r.u16();
  let info = "";
  if (!r.atEnd()) {
    info = (capabilities & Capability.SessionTrack) !== 0 ? r.lenEncString() : r.rest().toString("utf8");
  }
  return { affectedRows, lastInsertId, statusFlags, warnings, info };
}
