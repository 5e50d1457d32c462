/**
 * MariaDB GTID sets as the replication operations compare them (pure).
 *
 * A MariaDB GTID is domain-server-seq. @@gtid_binlog_state lists, for every
 * (domain, server id) pair, the last GTID that server wrote to the binlog in
 * that domain; @@gtid_binlog_pos and @@gtid_slave_pos list one GTID per domain.
 * Sequence numbers grow within a domain whoever writes, so comparing sequence
 * numbers per domain alone is wrong: a write made on a detached replica (server
 * 3) gets seq N+1 in domain 0 while the primary (server 1) goes on to N+5 —
 * "0-1-N+5 ≥ 0-3-N+1" by seq, yet the primary never had 0-3-N+1. So a server's
 * transactions are compared per (domain, server id): the primary has a
 * server's transactions in a domain up to the last seq its own state lists for
 * that pair (gtid_strict_mode keeps each pair's stream in order).
 */

/** domain → server id → last seq. */
export type GtidSet = Map<number, Map<number, bigint>>;

/** One GTID. */
export interface Gtid {
  domain: number;
  server: number;
  seq: bigint;
}

/**
 * Parses a MariaDB GTID list ("0-1-100,0-2-57,1-1-4"; whitespace and newlines
 * allowed, as in @@gtid_binlog_state) into a set; each (domain, server) pair
 * keeps its highest seq. "" → empty set. Null when an element is not
 * domain-server-seq.
 */
export function parseGtidSet(text: string): GtidSet | null {
  const out: GtidSet = new Map();
  const t = text.trim();
  if (t === "") return out;
  for (const part of t.split(",")) {
    const m = /^\s*(\d{1,10})-(\d{1,10})-(\d{1,20})\s*$/.exec(part);
    if (m === null) return null;
    addGtid(out, { domain: Number(m[1]), server: Number(m[2]), seq: BigInt(m[3]!) });
  }
  return out;
}

function addGtid(set: GtidSet, g: Gtid): void {
  let servers = set.get(g.domain);
  if (servers === undefined) {
    servers = new Map();
    set.set(g.domain, servers);
  }
  const have = servers.get(g.server);
  if (have === undefined || have < g.seq) servers.set(g.server, g.seq);
}

/** The union of sets (each pair's highest seq). */
export function unionGtidSets(...sets: readonly GtidSet[]): GtidSet {
  const out: GtidSet = new Map();
  for (const s of sets) for (const [domain, servers] of s) for (const [server, seq] of servers) addGtid(out, { domain, server, seq });
  return out;
}

/** What `have` lacks of one server's transactions in one domain. */
export interface MissingGtid extends Gtid {
  /** The last seq `have` holds for that (domain, server) pair; null: none of that server's in that domain. */
  haveUpTo: bigint | null;
}

/**
 * The transactions of `set` that `have` lacks: for each (domain, server) pair
 * of `set`, its last GTID when `have` holds that pair only up to a lower seq,
 * or not at all. Sorted by domain, then server. Empty: `have` covers `set`.
 */
export function missingGtids(set: GtidSet, have: GtidSet): MissingGtid[] {
  const out: MissingGtid[] = [];
  for (const [domain, servers] of set) {
    for (const [server, seq] of servers) {
      const h = have.get(domain)?.get(server);
      if (h === undefined || h < seq) out.push({ domain, server, seq, haveUpTo: h ?? null });
    }
  }
  return out.sort((a, b) => a.domain - b.domain || a.server - b.server);
}

export function formatGtid(g: Gtid): string {
  return `${g.domain}-${g.server}-${g.seq}`;
}

/** "0-3-7 (the primary has none of server 3's in domain 0)", "0-1-101 (the primary has server 1's in domain 0 only up to 0-1-100)". */
export function describeMissing(missing: readonly MissingGtid[], haveName: string): string {
  return missing
    .map((m) =>
      m.haveUpTo === null
        ? `${formatGtid(m)} (${haveName} has no transaction of server ${m.server} in domain ${m.domain})`
        : `up to ${formatGtid(m)} (${haveName} has server ${m.server}'s in domain ${m.domain} only up to ${m.domain}-${m.server}-${m.haveUpTo})`,
    )
    .join(", ");
}

/** A set back to MariaDB's text form, domains then servers ascending ("0-1-100,0-2-57"). */
export function formatGtidSet(set: GtidSet): string {
  const parts: string[] = [];
  for (const domain of [...set.keys()].sort((a, b) => a - b)) {
    const servers = set.get(domain)!;
    for (const server of [...servers.keys()].sort((a, b) => a - b)) parts.push(`${domain}-${server}-${servers.get(server)!}`);
  }
  return parts.join(",");
}
