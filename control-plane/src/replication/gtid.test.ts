import { describeMissing, formatGtidSet, missingGtids, parseGtidSet, unionGtidSets } from "./gtid";

const set = (s: string) => {
  const r = parseGtidSet(s);
  if (r === null) throw new Error(`does not parse: ${s}`);
  return r;
};

describe("parseGtidSet", () => {
  test("MariaDB lists, with whitespace and newlines as in gtid_binlog_state; the highest seq per (domain, server)", () => {
    expect(formatGtidSet(set(""))).toBe("");
    expect(formatGtidSet(set("0-1-100"))).toBe("0-1-100");
    expect(formatGtidSet(set("1-2-7,\n0-1-100, 0-2-57,0-1-99"))).toBe("0-1-100,0-2-57,1-2-7");
    expect(set("0-1-18446744073709551615").get(0)!.get(1)).toBe(18446744073709551615n);
  });
  test("junk is null", () => {
    for (const s of ["0-1", "a-b-c", "0-1-2,", "0-1-2;0-1-3", "-1-1-1"]) expect(parseGtidSet(s)).toBeNull();
  });
});

describe("missingGtids", () => {
  test("a replica behind the primary lacks nothing", () => {
    expect(missingGtids(set("0-1-90"), set("0-1-100"))).toEqual([]);
    expect(missingGtids(set(""), set("0-1-100"))).toEqual([]);
    expect(missingGtids(set("0-1-100"), set("0-1-100"))).toEqual([]);
  });
  test("a write on a detached replica (its own server id) is errant even when the primary's seq is higher", () => {
    // primary server 1 went on to seq 105 in domain 0; the replica (server 3) wrote 0-3-101
    const m = missingGtids(set("0-1-100,0-3-101"), set("0-1-105"));
    expect(m).toEqual([{ domain: 0, server: 3, seq: 101n, haveUpTo: null }]);
    expect(describeMissing(m, "db1")).toBe("0-3-101 (db1 has no transaction of server 3 in domain 0)");
  });
  test("an old primary's writes lost at failover: the new primary has that server's only up to a lower seq", () => {
    // db1 (server 1) wrote up to 0-1-101; db2 received up to 0-1-100, then wrote 0-2-101..150 as the new primary
    const m = missingGtids(set("0-1-101"), set("0-1-100,0-2-150"));
    expect(m).toEqual([{ domain: 0, server: 1, seq: 101n, haveUpTo: 100n }]);
    expect(describeMissing(m, "db2")).toBe("up to 0-1-101 (db2 has server 1's in domain 0 only up to 0-1-100)");
  });
  test("an old primary that lost nothing is covered by the new primary's binlog state", () => {
    expect(missingGtids(set("0-1-100"), set("0-1-100,0-2-150"))).toEqual([]);
  });
  test("domains are separate: a domain the primary never saw is missing", () => {
    expect(missingGtids(set("0-1-5,1-1-3"), set("0-1-9"))).toEqual([{ domain: 1, server: 1, seq: 3n, haveUpTo: null }]);
    expect(missingGtids(set("1-1-3,0-1-5,0-4-2"), set("0-1-9")).map((x) => `${x.domain}-${x.server}`)).toEqual(["0-4", "1-1"]);
  });
  test("union: binlog state and slave pos together (a primary without log_slave_updates has its source's GTIDs in gtid_slave_pos only)", () => {
    const primary = unionGtidSets(set("0-2-150"), set("0-1-100"));
    expect(missingGtids(set("0-1-100"), primary)).toEqual([]);
    expect(formatGtidSet(primary)).toBe("0-1-100,0-2-150");
  });
});
