import { createTableExtractor, parseTables } from "./tables";

describe("parseTables", () => {
  it.each([
    ["SELECT c FROM sbtest1 WHERE id=1", [{ schema: null, table: "sbtest1" }]],
    ["SELECT * FROM db.t JOIN u ON t.a=u.a", [{ schema: "db", table: "t" }, { schema: null, table: "u" }]],
    ["SELECT * FROM t WHERE a IN (SELECT a FROM t)", [{ schema: null, table: "t" }]],
    ["INSERT INTO `shop`.`orders` (a) VALUES (1)", [{ schema: "shop", table: "orders" }]],
    ["UPDATE t SET a=(SELECT MAX(b) FROM u)", expect.arrayContaining([{ schema: null, table: "t" }, { schema: null, table: "u" }])],
    ["DELETE FROM t WHERE id=1", [{ schema: null, table: "t" }]],
    ["SELECT 1", []],
  ])("%s", (sql, tables) => {
    expect(parseTables(sql)).toEqual(tables);
  });

  it("returns null for what it cannot parse", () => {
    expect(parseTables("SELECT FROM WHERE")).toBeNull();
    expect(parseTables("\u0000\u0001")).toBeNull();
  });
});

describe("createTableExtractor", () => {
  it("caches by digest hash, failures too", () => {
    const x = createTableExtractor();
    const a = x.get("SELECT * FROM t WHERE id=1", "00000000000000aa");
    expect(a).toEqual([{ schema: null, table: "t" }]);
    expect(x.get("SELECT * FROM t WHERE id=2", "00000000000000aa")).toBe(a);
    expect(x.get("SELECT FROM WHERE", "00000000000000bb")).toBeNull();
    expect(x.get("SELECT FROM WHERE", "00000000000000bb")).toBeNull();
    expect(x.stats()).toEqual({ hits: 2, misses: 2, parseFailures: 1, size: 2 });
    expect(Object.isFrozen(a)).toBe(true);
  });

  it("evicts the least recently used entry at maxEntries", () => {
    const x = createTableExtractor({ maxEntries: 2 });
    x.get("SELECT * FROM a", "a");
    x.get("SELECT * FROM b", "b");
    x.get("SELECT * FROM a", "a"); // a is now the most recent
    x.get("SELECT * FROM c", "c"); // evicts b
    expect(x.stats().size).toBe(2);
    x.get("SELECT * FROM a", "a");
    expect(x.stats()).toMatchObject({ hits: 2, misses: 3 });
    x.get("SELECT * FROM b", "b");
    expect(x.stats()).toMatchObject({ hits: 2, misses: 4 });
    x.clear();
    expect(x.stats().size).toBe(0);
  });

  it("refuses a non-positive size", () => {
    expect(() => createTableExtractor({ maxEntries: 0 })).toThrow(RangeError);
  });
});
