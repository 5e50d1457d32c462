import { Buffer } from "node:buffer";
import { PacketWriter } from "../codec";
import { ResponseHeader } from "../constants";

/** MYSQL_TYPE_VAR_STRING. */
const VAR_STRING = 0xfd;
/** utf8mb4_general_ci. */
const UTF8MB4 = 45;

/**
 * A text-protocol result set of string columns, as a server would send it
 * for a COM_QUERY (sequence ids from `seq`): column count, definitions,
 * [EOF], rows (NULL as 0xFB), then EOF — or, with CLIENT_DEPRECATE_EOF, an
 * OK packet with the 0xFE header. For answers the gateway gives itself.
 * `extendedMetadata`: the client negotiated MariaDB's
 * MARIADB_CLIENT_EXTENDED_METADATA, whose column definitions carry one more
 * (here empty) field after org_name.
 */
export function buildTextResultSet(
  columns: readonly string[],
  rows: readonly (readonly (string | null)[])[],
  deprecateEof: boolean,
  statusFlags: number,
  seq = 1,
  extendedMetadata = false,
): Buffer {
  const out: Buffer[] = [];
  let s = seq;
  out.push(new PacketWriter(1).lenEncInt(columns.length).finish(s++));
  for (const name of columns) {
    const w = new PacketWriter(32 + name.length * 2).lenEncString("def").lenEncString("").lenEncString("").lenEncString("").lenEncString(name).lenEncString(name);
    if (extendedMetadata) w.lenEncInt(0);
    out.push(
      w
        .lenEncInt(0x0c)
        .u16(UTF8MB4)
        .u32(1024)
        .u8(VAR_STRING)
        .u16(0)
        .u8(0)
        .u16(0)
        .finish(s++),
    );
  }
  if (!deprecateEof) out.push(eof(statusFlags, s++));
  for (const row of rows) {
    const w = new PacketWriter(64);
    for (let i = 0; i < columns.length; i++) {
      const v = row[i] ?? null;
      if (v === null) w.u8(0xfb);
      else w.lenEncString(v);
    }
    out.push(w.finish(s++));
  }
  out.push(deprecateEof ? new PacketWriter(8).u8(ResponseHeader.Eof).lenEncInt(0).lenEncInt(0).u16(statusFlags).u16(0).finish(s++) : eof(statusFlags, s++));
  return Buffer.concat(out);
}

function eof(statusFlags: number, seq: number): Buffer {
  return new PacketWriter(5).u8(ResponseHeader.Eof).u16(0).u16(statusFlags).finish(seq);
}
