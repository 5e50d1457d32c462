/**
 * MariaDB GTID lists ("0-1-100,1-2-5": domain-server-sequence, one per
 * replication domain), as in @@gtid_current_pos, @@gtid_slave_pos and
 * session_track_system_variables=last_gtid. Pure; never throws: anything that
 * is not a GTID list parses to null, and covers() answers false for it.
 *
 * Only domains and sequence numbers matter for "has this server applied that
 * transaction": within a domain sequence numbers only grow (MariaDB's
 * gtid_strict_mode enforces it; without it they still grow in practice), and
 * the server id only says who wrote the event.
 */

/** Domain id → highest sequence number seen in that domain. */
export type GtidList = ReadonlyMap<number, bigint>;

const EMPTY: GtidList = new Map();

/** Longest text accepted (a list with thousands of domains is not a real position). */
export const MAX_GTID_LIST_LENGTH = 64 * 1024;

const U32_MAX = 0xffffffff;
const U64_MAX = 0xffffffffffffffffn;

/**
 * Parses "d-s-n[,d-s-n…]" (whitespace around items allowed, as SHOW output
 * wraps long lists). "" (or only whitespace) is the empty list. A domain that
 * appears twice keeps its highest sequence number. Returns null for junk: a
 * missing part, a non-decimal digit, a domain or server id above 2^32-1, a
 * sequence number above 2^64-1, or text longer than MAX_GTID_LIST_LENGTH.
 */
export function parseGtidList(text: string): GtidList | null {
  if (typeof text !== "string" || text.length > MAX_GTID_LIST_LENGTH) return null;
  const s = text.trim();
  if (s === "") return EMPTY;
  const out = new Map<number, bigint>();
  for (const raw of s.split(",")) {
    const item = raw.trim();
    const parts = item.split("-");
    if (parts.length !== 3) return null;
    const [d, srv, n] = parts as [string, string, string];
    if (!isDecimal(d, 10) || !isDecimal(srv, 10) || !isDecimal(n, 20)) return null;
    const domain = Number(d);
    if (domain > U32_MAX || Number(srv) > U32_MAX) return null;
    const seq = BigInt(n);
    if (seq > U64_MAX) return null;
    const prev = out.get(domain);
    if (prev === undefined || seq > prev) out.set(domain, seq);
  }
  return out;
}

function isDecimal(s: string, maxDigits: number): boolean {
  if (s.length === 0 || s.length > maxDigits) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** Per-domain maximum of two lists (e.g. a replica's gtid_current_pos and gtid_slave_pos). */
export function mergeGtidLists(a: GtidList, b: GtidList): GtidList {
  if (a.size === 0) return b;
  if (b.size === 0) return a;
  const out = new Map(a);
  for (const [d, n] of b) {
    const prev = out.get(d);
    if (prev === undefined || n > prev) out.set(d, n);
  }
  return out;
}

/**
 * True when `applied` has, for every domain of `needed`, a sequence number at
 * least as high. An empty `needed` is covered by anything valid. Either side
 * given as text is parsed first; junk (or null) on either side → false.
 */
export function covers(applied: GtidList | string | null, needed: GtidList | string | null): boolean {
  const a = typeof applied === "string" ? parseGtidList(applied) : applied;
  const n = typeof needed === "string" ? parseGtidList(needed) : needed;
  if (a === null || n === null || a === undefined || n === undefined) return false;
  for (const [domain, seq] of n) {
    const have = a.get(domain);
    if (have === undefined || have < seq) return false;
  }
  return true;
}

