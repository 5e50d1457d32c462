/**
 * Hints in regular block comments of a statement:
 * - `/* mysqlgw:primary *\/`, `/* mysqlgw:replica *\/` (case-insensitive; the
 *   first one found wins);
 * - a sqlcommenter `traceparent='…'` key (https://google.github.io/sqlcommenter/spec/),
 *   whose value's offsets are returned undecoded (sqlcommenter URL-encodes values).
 * Executable comments are SQL, not hints. Pure; reads only [start, end).
 */
import { RouteHint, type Classification } from "./statement-kind";

const MYSQLGW = bytesOf("MYSQLGW:");
const PRIMARY = bytesOf("PRIMARY");
const REPLICA = bytesOf("REPLICA");
const TRACEPARENT = bytesOf("TRACEPARENT");

function bytesOf(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/** Whether buf[p, …) starts with the upper-case ASCII `word`, case-insensitively. */
function startsWithCi(buf: Uint8Array, p: number, end: number, word: Uint8Array): boolean {
  if (end - p < word.length) return false;
  for (let i = 0; i < word.length; i++) {
    const c = buf[p + i];
    if ((c >= 0x61 && c <= 0x7a ? c - 0x20 : c) !== word[i]) return false;
  }
  return true;
}

function isWordByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
}

/** Looks for hints in the content buf[start, end) of one block comment; records them in `out`. */
export function scanCommentHints(buf: Uint8Array, start: number, end: number, out: Classification): void {
  let p = start;
  while (p < end && (buf[p] === 0x20 || buf[p] === 0x09 || buf[p] === 0x0a || buf[p] === 0x0d)) p++;
  if (out.hint === RouteHint.None && startsWithCi(buf, p, end, MYSQLGW)) {
    const w = p + MYSQLGW.length;
    const after = w + 7; // both words have 7 letters
    if (after >= end || !isWordByte(buf[after])) {
      if (startsWithCi(buf, w, end, PRIMARY)) out.hint = RouteHint.Primary;
      else if (startsWithCi(buf, w, end, REPLICA)) out.hint = RouteHint.Replica;
    }
  }
  if (out.traceparentStart >= 0) return;
  // sqlcommenter: key='value'[,key='value']…; find the traceparent key at a key position
  for (let i = p; i + TRACEPARENT.length < end; i++) {
    const c = buf[i];
    if ((c | 0x20) !== 0x74) continue; // 't'
    if (i > start && isWordByte(buf[i - 1])) continue;
    if (!startsWithCi(buf, i, end, TRACEPARENT)) continue;
    let q = i + TRACEPARENT.length;
    while (q < end && buf[q] === 0x20) q++;
    if (q >= end || buf[q] !== 0x3d) continue; // '='
    q++;
    while (q < end && buf[q] === 0x20) q++;
    if (q >= end || buf[q] !== 0x27) continue; // opening quote
    const vs = q + 1;
    let ve = vs;
    while (ve < end && buf[ve] !== 0x27) ve++;
    if (ve >= end) return; // unterminated value: not a hint
    out.traceparentStart = vs;
    out.traceparentEnd = ve;
    return;
  }
}
