import { covers, mergeGtidLists, parseGtidList, MAX_GTID_LIST_LENGTH } from "./gtid";

describe("parseGtidList", () => {
  it("parses MariaDB GTID lists by domain", () => {
    expect(parseGtidList("0-1-100")).toEqual(new Map([[0, 100n]]));
    expect(parseGtidList("0-1-100,1-2-5")).toEqual(new Map([[0, 100n], [1, 5n]]));
    // SHOW output wraps long lists; spaces and newlines around items are allowed
    expect(parseGtidList(" 0-1-100,\n1-2-5 ")).toEqual(new Map([[0, 100n], [1, 5n]]));
  });

  it("takes the empty string as the empty list", () => {
    expect(parseGtidList("")).toEqual(new Map());
    expect(parseGtidList("  ")).toEqual(new Map());
  });

  it("keeps the highest sequence number of a domain named twice", () => {
    expect(parseGtidList("0-1-7,0-2-9,0-3-8")).toEqual(new Map([[0, 9n]]));
  });

  it("keeps sequence numbers up to 2^64-1 exactly", () => {
    expect(parseGtidList("4294967295-4294967295-18446744073709551615")).toEqual(new Map([[4294967295, 18446744073709551615n]]));
    expect(parseGtidList("0-1-9007199254740993")?.get(0)).toBe(9007199254740993n);
  });

  it.each([
    ["0-1", "two parts"],
    ["0-1-2-3", "four parts"],
    ["0-1-", "empty sequence"],
    ["-1-2", "empty domain"],
    ["a-1-2", "letters"],
    ["0-1-0x10", "hex"],
    ["0-1-1e3", "exponent"],
    ["0-1--2", "negative"],
    ["0-1-2,", "trailing comma"],
    [",0-1-2", "leading comma"],
    ["0-1-2,,1-1-1", "empty item"],
    ["0 -1-2", "space inside an item"],
    ["4294967296-1-2", "domain above 2^32-1"],
    ["0-4294967296-2", "server id above 2^32-1"],
    ["0-1-18446744073709551616", "sequence above 2^64-1"],
    ["0-1-123456789012345678901", "21 digits"],
    ["0-1-١٢", "non-ASCII digits"],
  ])("returns null for %j (%s)", (text) => {
    expect(parseGtidList(text)).toBeNull();
  });

  it("returns null for overlong text and non-strings, without throwing", () => {
    expect(parseGtidList("0-1-1,".repeat(MAX_GTID_LIST_LENGTH / 6 + 1) + "0-1-1")).toBeNull();
    expect(parseGtidList(undefined as unknown as string)).toBeNull();
    expect(parseGtidList(42 as unknown as string)).toBeNull();
  });
});

describe("covers", () => {
  it("is true when every needed domain is applied at least as far", () => {
    expect(covers("0-1-100", "0-1-100")).toBe(true);
    expect(covers("0-1-101", "0-1-100")).toBe(true);
    expect(covers("0-1-100,1-2-5", "1-2-5")).toBe(true);
    // server ids do not matter: the sequence of the domain does
    expect(covers("0-2-100", "0-1-99")).toBe(true);
  });

  it("is false when a needed domain is behind or missing", () => {
    expect(covers("0-1-99", "0-1-100")).toBe(false);
    expect(covers("0-1-100", "0-1-100,1-2-1")).toBe(false);
    expect(covers("", "0-1-1")).toBe(false);
  });

  it("compares sequence numbers beyond 2^53 exactly", () => {
    expect(covers("0-1-9007199254740992", "0-1-9007199254740993")).toBe(false);
    expect(covers("0-1-9007199254740993", "0-1-9007199254740993")).toBe(true);
  });

  it("treats an empty needed list as covered", () => {
    expect(covers("0-1-1", "")).toBe(true);
    expect(covers("", "")).toBe(true);
  });

  it("is false for junk on either side, never throwing", () => {
    expect(covers("garbage", "0-1-1")).toBe(false);
    expect(covers("0-1-100", "garbage")).toBe(false);
    expect(covers(null, "0-1-1")).toBe(false);
    expect(covers("0-1-1", null)).toBe(false);
    expect(covers(undefined as unknown as string, "0-1-1")).toBe(false);
  });

  it("accepts parsed lists", () => {
    const a = parseGtidList("0-1-10,1-1-3");
    const n = parseGtidList("1-1-3");
    expect(covers(a, n)).toBe(true);
    expect(covers(n, a)).toBe(false);
  });
});

describe("mergeGtidLists", () => {
  it("takes the per-domain maximum", () => {
    const m = mergeGtidLists(parseGtidList("0-1-10,1-1-3")!, parseGtidList("0-1-7,2-1-4")!);
    expect(m).toEqual(new Map([[0, 10n], [1, 3n], [2, 4n]]));
  });
});
